"""SPEC section 3 metadata on ONNX files (``metadata_props``), readable without torch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import onnx

PREFIX = "lineinspect."
REQUIRED = ("task", "classes", "input_size", "channels", "mean", "std", "version", "dataset")


@dataclass(frozen=True)
class ModelMeta:
    """Parsed ``lineinspect.*`` metadata of a released model."""

    task: str
    classes: list[str]
    input_size: list[int]
    channels: int
    mean: list[float]
    std: list[float]
    version: str
    dataset: str

    def to_props(self) -> dict[str, str]:
        """String key/value pairs for ``metadata_props``."""
        return {
            PREFIX + "task": self.task,
            PREFIX + "classes": json.dumps(self.classes),
            PREFIX + "input_size": json.dumps(list(self.input_size)),
            PREFIX + "channels": str(self.channels),
            PREFIX + "mean": json.dumps(list(self.mean)),
            PREFIX + "std": json.dumps(list(self.std)),
            PREFIX + "version": self.version,
            PREFIX + "dataset": self.dataset,
        }

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "model") -> ModelMeta:
        """Parse and validate ``metadata_props`` (ValueError naming what is wrong)."""
        missing = [k for k in REQUIRED if PREFIX + k not in props]
        if missing:
            raise ValueError(f"{source}: missing metadata {[PREFIX + k for k in missing]}")
        try:
            meta = cls(
                task=props[PREFIX + "task"],
                classes=json.loads(props[PREFIX + "classes"]),
                input_size=[int(v) for v in json.loads(props[PREFIX + "input_size"])],
                channels=int(props[PREFIX + "channels"]),
                mean=[float(v) for v in json.loads(props[PREFIX + "mean"])],
                std=[float(v) for v in json.loads(props[PREFIX + "std"])],
                version=props[PREFIX + "version"],
                dataset=props[PREFIX + "dataset"],
            )
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{source}: malformed lineinspect metadata: {exc}") from exc
        if meta.task not in ("classify", "segment"):
            raise ValueError(f"{source}: task must be classify or segment, not {meta.task!r}")
        if (
            meta.channels not in (1, 3)
            or len(meta.mean) != meta.channels
            or len(meta.std) != meta.channels
        ):
            raise ValueError(f"{source}: channels/mean/std inconsistent")
        if len(meta.input_size) != 2 or not meta.classes:
            raise ValueError(f"{source}: input_size must be [H, W] and classes non-empty")
        if meta.task == "segment" and meta.classes[0] != "background":
            raise ValueError(f"{source}: segmentation classes must start with 'background'")
        return meta


def read_meta(path: str | Path) -> ModelMeta:
    """Read the metadata of an ONNX file without loading its weights into a session."""
    model = onnx.load(str(path), load_external_data=False)
    return ModelMeta.from_props({p.key: p.value for p in model.metadata_props}, str(path))


def write_meta(path: str | Path, meta: ModelMeta, extra: dict[str, str] | None = None) -> None:
    """Replace the ``lineinspect.*`` metadata of an ONNX file in place.

    ``extra`` adds further ``lineinspect.<key>`` entries beyond the SPEC ones, e.g. ``arch``
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


def read_props(path: str | Path) -> dict[str, str]:
    """All ``metadata_props`` of an ONNX file (SPEC keys and extras like ``lineinspect.arch``)."""
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def trained_tile(path: str | Path) -> int:
    """Frame-pixel tile a segmenter was trained on (``lineinspect.tile``); 0 = whole image."""
    return int(read_props(path).get(PREFIX + "tile", 0))
