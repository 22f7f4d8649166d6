"""Recipe: one YAML file per product type saying how a line is inspected.

A recipe names the camera settings (geometry, exposure, trigger, GigE transport), the
models that run with their tile size and stride, the per-class score and minimum-area
thresholds, the optional AlexNet-SVM screen (cascade) and the rule that makes a frame NG.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.settings import RECIPES_DIR, REPO_ROOT, Engine, Settings

log = logging.getLogger(__name__)


def _int8_of(int8: Path, fp32: Path) -> bool:
    """Whether ``int8`` was quantised from ``fp32``: its artifact version is the fp32 one's
    plus ``+int8`` (``lineinspect quantize`` writes it so); a replaced fp32 model makes the
    old INT8 file stale."""
    from core.model_meta import read_props

    try:
        v8 = read_props(int8).get("lineinspect.version", "")
        v32 = read_props(fp32).get("lineinspect.version", "")
    except Exception:  # noqa: BLE001 - unreadable: not the INT8 file of this model
        return False
    return bool(v32) and v8 == f"{v32}+int8"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class TransportSettings(_Strict):
    """GigE Vision transport settings that prevent incompletely grabbed buffers."""

    #: GevSCPSPacketSize in bytes; 9000 needs jumbo frames on the NIC, 1500 without.
    packet_size: int = 1500
    #: GevSCPD inter-packet delay in timestamp ticks (raise when packets are lost).
    inter_packet_delay: int = 0
    #: GevSCFTD frame transmission delay in ticks (stagger several cameras on one NIC).
    frame_transmission_delay: int = 0
    #: Stream grabber socket buffer size in KiB.
    socket_buffer_kb: int = 2048
    #: Number of grab buffers (InstantCamera MaxNumBuffer).
    grab_buffers: int = 16


class CameraSettings(_Strict):
    """Camera configuration applied through GenICam node names when the node exists."""

    pixel_format: str = "Mono8"
    #: 0 = keep the camera's current/maximum width/height (never hard-code geometry).
    width: int = 0
    height: int = 0
    offset_x: int = 0
    offset_y: int = 0
    exposure_us: float = 3000.0
    gain_db: float = 0.0
    frame_rate: float = 30.0
    #: ``hardware``: each edge on ``trigger_source`` is one part; ``software``: the same with
    #: ``TriggerSource=Software`` (``TriggerSoftware`` is the edge; tests, commissioning). In
    #: both trigger modes the frame id is the part id (docs/DECISIONS.md, "Trigger = parts").
    trigger_mode: Literal["free_run", "hardware", "software"] = "free_run"
    trigger_source: str = "Line1"
    trigger_activation: str = "RisingEdge"
    transport: TransportSettings = Field(default_factory=TransportSettings)

    @property
    def triggered(self) -> bool:
        """One frame per trigger (hardware or software): frames are parts."""
        return self.trigger_mode != "free_run"


class ModelSpec(_Strict):
    """One model in the recipe and how its output becomes defects."""

    name: str
    #: ONNX path, relative to the repository root or absolute.
    path: str
    #: Tile edge in frame pixels (classify) or tile edge for segmentation (0 = whole frame).
    tile: int = 224
    #: Stride between tiles in frame pixels (0 = same as tile: no overlap).
    stride: int = 0
    #: Default minimum score for a class to count as a defect.
    threshold: float = 0.5
    thresholds: dict[str, float] = Field(default_factory=dict)
    #: Default minimum defect area in frame pixels.
    min_area: int = 0
    min_areas: dict[str, int] = Field(default_factory=dict)
    #: Classes that are not defects (e.g. ``defect_free``; ``background``/``ok`` always).
    ok_classes: list[str] = Field(default_factory=lambda: ["defect_free", "background", "ok"])
    #: Tiles per engine call; 0 = all of a frame's tiles in one call (one batch per model and
    #: frame); a positive value caps it (e.g. GPU memory).
    batch_size: int = 0
    #: Run only on tiles that overlap a defect found by this (earlier) model. For classifiers
    #: trained on defect-only sets (NEU-CLS, X-SDD have no defect-free class) the segmenter
    #: finds *where*, the classifier names *what*.
    gate: str | None = None
    #: ``int8``: run the INT8 static-quantised file ``<dir>/<stem>.int8.onnx`` made by
    #: ``lineinspect quantize`` instead of ``path`` (see docs/PERFORMANCE.md for the trade).
    quantize: Literal["none", "int8"] = "none"
    #: The model's defect classes -> the recipe's product ``classes`` (when the recipe
    #: declares them, every defect class of the model must be mapped; see ``Recipe.classes``).
    class_map: dict[str, str] = Field(default_factory=dict)
    #: Weight of this model's vote when detections of one region are merged into one defect.
    vote_weight: float = Field(default=1.0, ge=0.0)

    def threshold_for(self, cls: str) -> float:
        """Score threshold for ``cls``."""
        return self.thresholds.get(cls, self.threshold)

    def min_area_for(self, cls: str) -> int:
        """Minimum area in pixels for ``cls``."""
        return self.min_areas.get(cls, self.min_area)

    @property
    def effective_stride(self) -> int:
        """Stride in pixels (the tile size when not set)."""
        return self.stride or self.tile

    def resolved_path(self) -> Path:
        """Absolute path of the ONNX file (the ``.int8.onnx`` one with ``quantize: int8``)."""
        p = Path(self.path)
        p = p if p.is_absolute() else REPO_ROOT / p
        if self.quantize == "int8":
            q = p.with_name(f"{p.stem}.int8.onnx")
            if not q.is_file():
                raise FileNotFoundError(
                    f"model {self.name}: quantize: int8 needs {q}; make it with "
                    f"`lineinspect quantize --model {p} --data <training data>`"
                )
            if not _int8_of(q, p):
                log.error(
                    "model %s: %s was not quantised from this %s (versions differ): running "
                    "the fp32 file; re-quantise with `lineinspect quantize --model %s`",
                    self.name, q.name, p.name, p,
                )
                return p
            return q
        return p


class ScreenSpec(_Strict):
    """Cascade: an OK/NG screen model gates the heavier models."""

    model: ModelSpec
    #: Defect probability above which the heavy models run.
    threshold: float = 0.5
    #: ``frame``: screen the whole frame once; ``tile``: screen per tile of ``model.tile``.
    scope: Literal["frame", "tile"] = "frame"
    #: Whether the screen's own positive counts as a defect when the heavy models find none.
    report_screen_defect: bool = True


class VerdictRule(_Strict):
    """What makes a frame NG."""

    #: Classes that make a frame NG (empty = any defect class).
    ng_classes: list[str] = Field(default_factory=list)
    #: Minimum number of defects for NG.
    min_defects: int = 1


class DriftSpec(_Strict):
    """Rolling drift statistics of a line (``inference.drift``)."""

    #: Frames in the rolling window the drift gauges average over.
    window: int = Field(default=50, ge=1)
    #: First frames of a line that make its reference signature (kept in Redis until reset).
    reference: int = Field(default=200, ge=1)


class ReviewSpec(_Strict):
    """Which frames are sampled for a QA look (``inference.review_sampler``; the daily cap
    per line is the setting ``review_daily_cap``)."""

    #: Reasons sampled: ``disagreement`` (the shadow candidate disagrees), ``uncertain`` (the
    #: frame's highest defect score within ``uncertain_band`` of its threshold), ``drift``
    #: (the line's drift distance above ``drift_distance``).
    reasons: list[Literal["disagreement", "uncertain", "drift"]] = Field(
        default_factory=lambda: ["disagreement", "uncertain", "drift"])
    #: Score band above the model's threshold that counts as uncertain.
    uncertain_band: float = Field(default=0.1, ge=0.0, le=1.0)
    #: Drift distance above which frames are sampled (the LineinspectFrameDrift alert's 0.2).
    drift_distance: float = Field(default=0.2, gt=0.0, le=1.0)
    #: Sample every n-th frame of a drift window (a window lasts many frames).
    drift_every: int = Field(default=10, ge=1)


class ShadowSpec(_Strict):
    """A candidate run in shadow beside the live recipe (``inference.shadow``): same frames,
    off the verdict path, results logged beside the live ones."""

    #: Candidate recipe (name or path); empty = this recipe with ``models`` swapped.
    recipe: str = ""
    #: Model name -> candidate ONNX path, replacing that model of the live recipe.
    models: dict[str, str] = Field(default_factory=dict)
    #: Largest share of wall time the shadow may compute (frames beyond it are skipped).
    max_share: float = Field(default=0.5, gt=0.0, le=1.0)
    #: Frames that may wait for the shadow; a frame arriving at a full queue is skipped.
    queue: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _one_candidate(self) -> ShadowSpec:
        if bool(self.recipe) == bool(self.models):
            raise ValueError("shadow: give either recipe or models")
        return self


class Recipe(_Strict):
    """A product type's inspection recipe."""

    name: str
    description: str = ""
    camera: CameraSettings = Field(default_factory=CameraSettings)
    #: Region of interest in frame pixels ``[x, y, w, h]``; None = whole frame.
    roi: tuple[int, int, int, int] | None = None
    models: list[ModelSpec] = Field(default_factory=list)
    screen: ScreenSpec | None = None
    verdict: VerdictRule = Field(default_factory=VerdictRule)
    #: Inference engine of this recipe's models (None = ``Settings.engine``).
    engine: Engine | None = None
    #: Verdicts older than this answer UNKNOWN to the PLC (the worker writes it into every
    #: verdict record it publishes, see ``core.bus.publish_verdict``).
    stale_after_ms: int = 1000
    #: Redis stream cap (XADD MAXLEN ~).
    stream_maxlen: int = 2000
    #: The product's defect classes (one taxonomy for the log, charts, mask and verdict).
    #: Empty = every model's own classes (no mapping). When set, each model maps its defect
    #: classes onto these with ``class_map``, and ``verdict.ng_classes`` must be among them.
    classes: list[str] = Field(default_factory=list)
    #: Detections of several models (or fragments of one) whose boxes are at most this many
    #: pixels apart are one defect: one record, one class, one score, the rest as evidence.
    merge_gap_px: int = Field(default=8, ge=0)
    #: Frames that waited longer than this in the stream are not inspected: the worker skips
    #: them (acked, counted in ``lineinspect_frames_skipped_total``) and reports overload
    #: (PLC reason ``overloaded``, ``lineinspect_overloaded``). 0 = never skip.
    max_backlog_ms: int = Field(default=5000, ge=0)
    #: Drift statistics (issue 21).
    drift: DriftSpec = Field(default_factory=DriftSpec)
    #: Candidate in shadow (issue 21); None = no shadow.
    shadow: ShadowSpec | None = None
    #: Sampling of frames for QA review (issue 21.5).
    review: ReviewSpec = Field(default_factory=ReviewSpec)

    @model_validator(mode="after")
    def _unique_model_names(self) -> Recipe:
        names = [m.name for m in self.models]
        if len(names) != len(set(names)):
            raise ValueError(f"duplicate model names in recipe: {names}")
        return self

    @model_validator(mode="after")
    def _one_taxonomy(self) -> Recipe:
        if len(self.classes) != len(set(self.classes)):
            raise ValueError(f"duplicate classes in recipe: {self.classes}")
        if set(self.classes) & {"background", "ok"}:
            raise ValueError("'background' and 'ok' are not defect classes")
        specs = list(self.models) + ([self.screen.model] if self.screen else [])
        if not self.classes:
            if any(s.class_map for s in specs):
                raise ValueError("class_map needs the recipe's classes: list")
            return self
        for spec in specs:
            unknown = sorted(set(spec.class_map.values()) - set(self.classes))
            if unknown:
                raise ValueError(f"model {spec.name}: class_map targets {unknown} are not in "
                                 f"the recipe's classes {self.classes}")
        unknown = sorted(set(self.verdict.ng_classes) - set(self.classes))
        if unknown:
            raise ValueError(f"verdict.ng_classes {unknown} are not in classes {self.classes}")
        return self


def recipe_path(name_or_path: str | Path, settings: Settings | None = None) -> Path:
    """The YAML file of a recipe given by file stem (in ``recipes_dir``) or by path."""
    p = Path(name_or_path)
    if not p.suffix:
        base = settings.recipes_dir if settings else RECIPES_DIR
        p = base / f"{name_or_path}.yaml"
    if not p.exists():
        raise FileNotFoundError(f"recipe not found: {p}")
    return p


def parse_recipe(text: str) -> Recipe:
    """A recipe from its YAML text (ValueError when it is not a valid recipe)."""
    return Recipe.model_validate(yaml.safe_load(text) or {})


def load_recipe(name_or_path: str | Path, settings: Settings | None = None) -> Recipe:
    """Load a recipe by file stem (from ``recipes_dir``) or by path."""
    return parse_recipe(recipe_path(name_or_path, settings).read_text())
