"""The model artifact contract: ``lineinspect.*`` metadata on ONNX files (docs/CONTRACT.md,
Model artifacts), read, written and validated here and nowhere else.

Training writes it (``models.export``, the AlexNet-SVM composer), the service and the
benchmarks read it; every reader gets the same validation (:class:`ModelMeta`). Only ``onnx``
is needed (no torch, no inference engine).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import onnx

PREFIX = "lineinspect."
#: Keys every artifact carries (``lineinspect.<key>``).
REQUIRED = ("task", "classes", "input_size", "channels", "mean", "std", "version", "dataset")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?$")


class ModelMetadataError(ValueError):
    """An ONNX file lacks, or has malformed, ``lineinspect.*`` metadata."""


@dataclass(frozen=True)
class ModelMeta:
    """The validated ``lineinspect.*`` metadata of one artifact.

    Constructing one validates it (:class:`ModelMetadataError` says what is wrong); sequences
    are stored as tuples.
    """

    task: Literal["classify", "segment"]
    classes: tuple[str, ...]
    input_size: tuple[int, int]
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    version: str
    dataset: str
    #: Frame pixels per tile the network was trained on (``lineinspect.tile``; 0 = whole
    #: images or not recorded): a recipe must cut frames the same way.
    tile: int = 0
    #: Where the metadata came from, for error messages (not part of the artifact).
    source: str = field(default="model", compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("classes", "input_size", "mean", "std"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise self._bad(name, value, "must be a list")
            object.__setattr__(self, name, tuple(value))
        self._validate()

    def _bad(self, key: str, value: Any, why: str) -> ModelMetadataError:
        return ModelMetadataError(f"{self.source}: {PREFIX}{key}={value!r}: {why}")

    def _validate(self) -> None:
        if self.task not in ("classify", "segment"):
            raise self._bad("task", self.task, "must be 'classify' or 'segment'")
        classes = self.classes
        if not classes or not all(isinstance(c, str) and c for c in classes):
            raise self._bad("classes", classes, "must be a non-empty list of class names")
        if len(set(classes)) != len(classes):
            raise self._bad("classes", classes, "class names must be unique")
        if self.task == "segment" and (classes[0] != "background" or len(classes) < 2):
            raise self._bad("classes", classes, "segmentation classes must start with 'background'")
        if self.task == "classify" and len(classes) < 2:
            raise self._bad("classes", classes, "a classifier needs at least two classes")
        if len(self.input_size) != 2 or not all(_positive_int(v) for v in self.input_size):
            raise self._bad("input_size", self.input_size, "must be [H, W] of positive integers")
        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            raise self._bad("channels", self.channels, "must be 1 or 3")
        for key in ("mean", "std"):
            vals = getattr(self, key)
            if len(vals) != self.channels or not all(_number(v) for v in vals):
                raise self._bad(key, vals, f"must be {self.channels} numbers (one per channel)")
        if any(v <= 0 for v in self.std):
            raise self._bad("std", self.std, "must be positive")
        if not _SEMVER.match(self.version):
            raise self._bad("version", self.version, "must be a semantic version MAJOR.MINOR.PATCH")
        if not self.dataset.strip():
            raise self._bad("dataset", self.dataset, "must name the data set")
        if not isinstance(self.tile, int) or self.tile < 0:
            raise self._bad("tile", self.tile, "must be a non-negative integer")

    def to_props(self) -> dict[str, str]:
        """String key/value pairs for ``metadata_props`` (``tile`` only when set)."""
        props = {
            PREFIX + "task": self.task,
            PREFIX + "classes": json.dumps(list(self.classes)),
            PREFIX + "input_size": json.dumps(list(self.input_size)),
            PREFIX + "channels": str(self.channels),
            PREFIX + "mean": json.dumps(list(self.mean)),
            PREFIX + "std": json.dumps(list(self.std)),
            PREFIX + "version": self.version,
            PREFIX + "dataset": self.dataset,
        }
        if self.tile:
            props[PREFIX + "tile"] = str(self.tile)
        return props

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "model") -> ModelMeta:
        """Parse and validate ``metadata_props``; :class:`ModelMetadataError` says what is wrong."""
        missing = [PREFIX + k for k in REQUIRED if not props.get(PREFIX + k)]
        if missing:
            raise ModelMetadataError(
                f"{source}: missing ONNX metadata_props {missing} (docs/CONTRACT.md requires "
                f"{[PREFIX + k for k in REQUIRED]})"
            )

        def load(key: str) -> Any:
            raw = props[PREFIX + key]
            try:
                return json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ModelMetadataError(
                    f"{source}: {PREFIX}{key} is not valid JSON: {raw!r}"
                ) from exc

        channels = load("channels")
        if isinstance(channels, str) and channels.isdigit():
            channels = int(channels)
        tile = props.get(PREFIX + "tile", "0").strip() or "0"
        if not tile.isdigit():
            raise ModelMetadataError(
                f"{source}: {PREFIX}tile={tile!r}: must be a non-negative integer"
            )
        return cls(
            task=props[PREFIX + "task"].strip(),  # type: ignore[arg-type]
            classes=load("classes"),
            input_size=load("input_size"),
            channels=channels,
            mean=load("mean"),
            std=load("std"),
            version=props[PREFIX + "version"].strip(),
            dataset=props[PREFIX + "dataset"].strip(),
            tile=int(tile),
            source=source,
        )


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_signature(meta: ModelMeta, in_shape: Sequence[Any], out_shape: Sequence[Any]) -> None:
    """The graph's input/output shapes (ints or symbolic names) agree with ``meta``: input
    NCHW with ``channels`` channels; output ``[N, C]`` (classify) or ``[N, C, H, W]``
    (segment) with one channel per class."""
    src = meta.source
    if len(in_shape) != 4:
        raise ModelMetadataError(f"{src}: input must be NCHW, got shape {list(in_shape)}")
    if isinstance(in_shape[1], int) and in_shape[1] != meta.channels:
        raise ModelMetadataError(
            f"{src}: input has {in_shape[1]} channels, metadata says {meta.channels}"
        )
    want_rank = 2 if meta.task == "classify" else 4
    if len(out_shape) != want_rank:
        raise ModelMetadataError(
            f"{src}: {meta.task} output must have rank {want_rank}, got {list(out_shape)}"
        )
    if isinstance(out_shape[1], int) and out_shape[1] != len(meta.classes):
        raise ModelMetadataError(
            f"{src}: output has {out_shape[1]} classes, metadata lists {len(meta.classes)}"
        )


def read_props(path: str | Path) -> dict[str, str]:
    """All ``metadata_props`` of an ONNX file (the contract's keys and extras such as
    ``lineinspect.arch``), without loading external weights."""
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def read_meta(path: str | Path) -> ModelMeta:
    """The validated metadata of an ONNX file."""
    return ModelMeta.from_props(read_props(path), str(path))


def write_meta(path: str | Path, meta: ModelMeta, extra: dict[str, str] | None = None) -> None:
    """Replace the ``lineinspect.*`` metadata of an ONNX file in place.

    ``extra`` adds further ``lineinspect.<key>`` entries beyond the contract's, e.g. ``arch``
    and ``variant`` (what ``lineinspect bench models`` needs to rebuild the PyTorch net).
    """
    model = onnx.load(str(path))
    keep = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    props = meta.to_props()
    props.update({(k if k.startswith(PREFIX) else PREFIX + k): v for k, v in (extra or {}).items()})
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
