"""The inspection pipeline: one frame -> defects, frame mask and verdict.

How a frame flows through :meth:`Inspector.inspect`:

1. **decode** (:meth:`Inspector.inspect_frame` only): the stream's raw bytes become a read-only
   ``uint8`` view ``(H, W)`` / ``(H, W, 3)`` without a copy (:meth:`core.frame.Frame.array`).
2. **ROI**: the recipe's ``roi`` ``[x, y, w, h]`` is clipped to the frame; only that area is
   tiled. Everything downstream (tile rects, defect boxes, the mask) stays in frame coordinates.
3. **screen** (optional cascade, ``recipe.screen``): ``scope: frame`` runs the screen once on the
   whole area resized to its ``input_size``; when its defect probability (sum over its non-OK
   classes) is below ``screen.threshold`` the heavy models do not run and the frame is OK.
   ``scope: tile`` runs it per tile of ``screen.model.tile``; only heavy-model tiles that overlap
   a flagged screen tile are run (the other pixels count as defect-free). When the screen
   fires but the heavy models find nothing, the screen's positive is reported as a defect of
   its own class (``report_screen_defect``) covering the flagged area.
4. **tiling** (:mod:`inference.tiler`): per distinct ``(tile, stride)`` the area is cut into
   tiles (views; border tiles aligned to the border; areas smaller than a tile are
   reflection-padded). ``tile: 0`` = the whole area as one tile.
5. **inference** (:mod:`inference.model` on the engine of :mod:`inference.backends`): per
   model, tiles are preprocessed (:func:`core.preprocess.preprocess`) into a preallocated
   buffer and run as one batch per frame (``batch_size`` 0, the default; a positive
   ``batch_size`` caps the tiles per engine call); ``lineinspect_model_inference_seconds{model}``
   observes the engine's time per frame.
6. **stitching / postprocessing** (:mod:`inference.postprocess`): classifiers -> max-over-tiles
   score maps -> thresholded connected regions; segmenters -> averaged probability map ->
   argmax -> connected components filtered by min area and mean probability.
   **Gated models** (``ModelSpec.gate``: an earlier model of the recipe) run only on their
   tiles that contain pixels of the gate model's accepted defects (and, with a tile screen,
   that the screen flagged); nothing runs when the gate found nothing. A gated classifier
   (defect-only classifiers: NEU-CLS, X-SDD have no defect-free class) *names* each gate
   defect: best defect class of the tiles holding its pixels (pixel-weighted mean), reported
   with the gate defect's box, area and pixels (``gated_classification_defects``).
7. **merge and mask** (:mod:`inference.merge`): every model's classes are mapped onto the
   recipe's taxonomy (``Recipe.classes``); detections of one region (boxes at most
   ``merge_gap_px`` apart) become one defect with one class (score-weighted vote), one score
   and the segmenters' pixels, the other detections kept as its ``evidence``. The frame mask
   (uint8 over :attr:`Inspector.mask_classes` = background + the taxonomy) paints each
   defect's pixels, highest score first.
8. **verdict** (:mod:`inference.verdict`): the recipe's ``VerdictRule``.

``Inspector.timings`` holds the last frame's stage times in milliseconds: ``decode``,
``tiling``, ``preprocess:<model>``, ``infer:<model>``, ``stitch:<model>`` (postprocessing),
``mask``, ``total``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import cv2
import numpy as np

from core.frame import Frame
from core.metrics import MODEL_INFERENCE
from core.recipe import ModelSpec, Recipe
from core.result import Defect, InspectionResult
from core.settings import Settings
from inference.backends.probe import PROBE_BATCH
from inference.merge import Taxonomy, merge_findings
from inference.model import OnnxModel, load_model
from inference.postprocess import (
    Finding,
    SegmentationStitcher,
    classification_defects,
    defect_classes,
    gated_classification_defects,
    paint_mask,
    segmentation_defects,
    softmax,
    tiles_touching,
)
from inference.tiler import Rect, TileSet, clip_roi, make_tiles
from inference.verdict import decide


def _check_spec(spec: ModelSpec) -> None:
    if spec.tile < 0 or spec.stride < 0:
        raise ValueError(f"model {spec.name}: tile and stride must be >= 0")
    if spec.tile and spec.effective_stride > spec.tile:
        raise ValueError(
            f"model {spec.name}: stride {spec.stride} > tile {spec.tile} would leave pixels "
            "uninspected"
        )
    if spec.batch_size < 0:
        raise ValueError(f"model {spec.name}: batch_size must be >= 0 (0 = a frame's tiles)")


def _check_tile(spec: ModelSpec, model: OnnxModel) -> None:
    """A network trained on tiles of N frame px must be run on tiles of N frame px: other
    tile sizes change the scale of every defect it sees (``lineinspect.tile``)."""
    trained = model.meta.tile
    if trained and spec.tile != trained:
        cut = f"tile {spec.tile}" if spec.tile else "whole frames (tile 0)"
        raise ValueError(
            f"model {spec.name}: the recipe cuts {cut} but {model.path.name} was trained on "
            f"{trained}-px frame tiles (lineinspect.tile); set tile: {trained}"
        )


def _batch(spec: ModelSpec, tiles: Sequence[np.ndarray]) -> int:
    """Tiles per engine call: the recipe's ``batch_size``, 0 = all of the frame's tiles."""
    return spec.batch_size or max(1, len(tiles))


def _overlapping(rects: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """Indices of ``rects`` that overlap (positive area) any of ``flagged``."""
    if len(flagged) == 0 or len(rects) == 0:
        return np.zeros(0, dtype=np.int64)
    r, f = rects[:, None, :], flagged[None, :, :]
    hit = (
        (r[..., 0] < f[..., 0] + f[..., 2])
        & (f[..., 0] < r[..., 0] + r[..., 2])
        & (r[..., 1] < f[..., 1] + f[..., 3])
        & (f[..., 1] < r[..., 1] + r[..., 3])
    )
    return np.flatnonzero(hit.any(axis=1))


class Inspector:
    """Runs a recipe's models on frames; one instance per process (thread-safe ``inspect``)."""

    def __init__(
        self,
        recipe: Recipe,
        settings: Settings | None = None,
        *,
        models: Mapping[str, OnnxModel] | None = None,
    ) -> None:
        """Load every model of ``recipe`` (and its screen) on the recipe's engine (else
        ``settings.engine``) with the providers/threads of ``settings``; ``models`` (name ->
        loaded model) skips loading those (tests, API reuse)."""
        settings = settings or Settings()
        self.recipe = recipe
        self.settings = settings
        preloaded = dict(models or {})

        def load(spec: ModelSpec) -> OnnxModel:
            _check_spec(spec)
            if spec.name in preloaded:
                model = preloaded[spec.name]
            else:
                model = load_model(
                    spec.resolved_path(), settings, name=spec.name, engine=recipe.engine,
                    probe_batch=min(spec.batch_size or PROBE_BATCH, PROBE_BATCH),
                )
            _check_tile(spec, model)
            return model

        self.models: list[tuple[ModelSpec, OnnxModel]] = [(s, load(s)) for s in recipe.models]
        earlier: set[str] = set()
        for spec in recipe.models:
            if spec.gate is not None and spec.gate not in earlier:
                raise ValueError(
                    f"model {spec.name}: gate {spec.gate!r} must name a model listed before it"
                )
            earlier.add(spec.name)
        self.screen = recipe.screen
        self.screen_model: OnnxModel | None = None
        if self.screen is not None:
            if self.screen.model.name in {s.name for s in recipe.models}:
                raise ValueError(f"screen name {self.screen.model.name!r} clashes with a model")
            self.screen_model = load(self.screen.model)
            if self.screen_model.task != "classify":
                raise ValueError(f"screen {self.screen.model.name}: must be a classifier")
        sources = [(s, m.classes) for s, m in self.models]
        if self.screen is not None and self.screen_model is not None:
            if self.screen.report_screen_defect:
                sources.append((self.screen.model, self.screen_model.classes))
        #: the recipe's defect classes and every model's mapping onto them
        self.taxonomy = Taxonomy.build(recipe, sources)
        #: models whose pixels give a merged defect its geometry (the segmenters)
        self.locators = {s.name for s, m in self.models if m.task == "segment"}
        #: class names indexed by the mask values (0 = background, then the taxonomy)
        self.mask_classes: list[str] = self.taxonomy.mask_classes
        #: model name -> artifact version (screen included)
        self.model_versions: dict[str, str] = {s.name: m.version for s, m in self.models}
        if self.screen is not None and self.screen_model is not None:
            self.model_versions[self.screen.model.name] = self.screen_model.version
        #: stage times of the last inspected frame, milliseconds
        self.timings: dict[str, float] = {}
        #: tiles each model ran on, summed over the frames since :meth:`reset_counts`
        self.tiles_run: dict[str, int] = {}
        #: frames inspected since :meth:`reset_counts`
        self.frames_inspected = 0
        self._count_lock = threading.Lock()
        self._local = threading.local()

    @property
    def engine_choices(self) -> dict[str, dict[str, object]]:
        """Per model (screen included): the engine it runs on and why (``engine: auto``: the
        probe's measured reason and figures; otherwise the recipe/setting that fixed it)."""
        pairs = list(self.models)
        if self.screen is not None and self.screen_model is not None:
            pairs.insert(0, (self.screen.model, self.screen_model))
        out: dict[str, dict[str, object]] = {}
        for spec, model in pairs:
            choice = model.engine_choice
            if choice is not None:
                out[spec.name] = choice.as_json()
            else:
                out[spec.name] = {"engine": model.engine, "reason": "set by the recipe or "
                                  "LINEINSPECT_ENGINE"}
        return out

    def reset_counts(self) -> None:
        """Zero :attr:`tiles_run` and :attr:`frames_inspected` (benchmarks: after warm-up)."""
        with self._count_lock:
            self.tiles_run, self.frames_inspected = {}, 0

    def _count_tiles(self, name: str, n: int) -> None:
        """Tiles of the frame being inspected on this thread (added when the frame is done,
        with it, so a reset in the middle of a frame never splits one)."""
        pending = getattr(self._local, "tiles", None)
        if pending is None:
            pending = self._local.tiles = {}
        pending[name] = pending.get(name, 0) + n

    def _stitch_buffers(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """This thread's reusable segmentation accumulators, per model."""
        cache = getattr(self._local, "stitch", None)
        if cache is None:
            cache = self._local.stitch = {}
        return cache

    # -- public -----------------------------------------------------------------------------
    def inspect_frame(self, frame: Frame) -> InspectionResult:
        """Decode a stream :class:`Frame` and inspect it (``captured_at`` = host grab time).

        Raises ValueError when the frame's byte count does not match its geometry.
        """
        t0 = time.perf_counter()
        image = frame.array()
        decode_ms = (time.perf_counter() - t0) * 1000.0
        result = self.inspect(
            image,
            frame.line_id,
            frame.frame_id,
            datetime.fromtimestamp(frame.host_ts, UTC),
            host_ts=frame.host_ts,
            decode_ms=decode_ms,
        )
        return result

    def inspect(
        self,
        image: np.ndarray,
        line_id: str,
        frame_id: int,
        captured_at: datetime,
        host_ts: float | None = None,
        *,
        decode_ms: float = 0.0,
    ) -> InspectionResult:
        """Inspect one uint8 frame (HxW gray or HxWx3 RGB); see the module docstring.

        ``captured_at`` is stored as given; ``latency_ms`` = now - ``host_ts`` (Unix seconds of
        the grab) when given, else 0; ``decode_ms`` is reported in ``timings["decode"]``.
        """
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"image must be uint8 HxW or HxWx3, got {image.dtype} {image.shape}")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        elif image.ndim == 3 and image.shape[2] != 3:
            raise ValueError(f"image must have 1 or 3 channels, got {image.shape[2]}")
        t_start = time.perf_counter()
        timings: dict[str, float] = {"decode": decode_ms, "tiling": 0.0}
        height, width = image.shape[:2]
        area = clip_roi(self.recipe.roi, width, height)
        tile_cache: dict[tuple[int, int], TileSet] = {}

        def tiles_for(spec: ModelSpec) -> TileSet:
            key = (spec.tile, spec.effective_stride if spec.tile else 0)
            ts = tile_cache.get(key)
            if ts is None:
                t0 = time.perf_counter()
                ts = make_tiles(image, key[0], key[1], area)
                timings["tiling"] += (time.perf_counter() - t0) * 1000.0
                tile_cache[key] = ts
            return ts

        # 3. screen
        run_heavy = True
        flagged: np.ndarray | None = None  # None: every tile goes to the heavy models
        screen_findings: list[Finding] = []
        if self.screen is not None and self.screen_model is not None:
            run_heavy, flagged, screen_findings = self._screen(image, area, tiles_for, timings)

        # 4-6. heavy models
        seg_findings: list[Finding] = []
        cls_findings: list[Finding] = []
        if run_heavy:
            by_model: dict[str, list[Finding]] = {}
            for spec, model in self.models:
                ts = tiles_for(spec)
                idx = None if flagged is None else _overlapping(ts.rects, flagged)
                gate = by_model.get(spec.gate) if spec.gate else None
                if spec.gate:  # only tiles holding pixels of the gate model's defects
                    touching = tiles_touching(ts.rects, gate or [])
                    idx = touching if idx is None else np.intersect1d(idx, touching)
                found = self._run_model(spec, model, ts, idx, area, timings, gate)
                by_model[spec.name] = found
                (seg_findings if model.task == "segment" else cls_findings).extend(found)
        cls_findings.sort(key=lambda f: -f.defect.score)
        if not (seg_findings or cls_findings) and self.screen and self.screen.report_screen_defect:
            reported = screen_findings
        else:
            reported = []

        # 7. one defect per region in the recipe's taxonomy (inference.merge), and the mask
        t0 = time.perf_counter()
        merged = merge_findings(
            seg_findings + cls_findings + reported,
            self.taxonomy,
            self.recipe.merge_gap_px,
            self.locators,
        )
        mask = np.zeros((height, width), dtype=np.uint8)
        paint_mask(mask, merged, self.mask_classes)
        timings["mask"] = (time.perf_counter() - t0) * 1000.0

        # 8. verdict
        defects = [f.defect for f in merged]
        verdict = decide(defects, self.recipe.verdict)
        brightness = float(np.mean(cv2.mean(image)[: 1 if image.ndim == 2 else 3]))
        timings["total"] = (time.perf_counter() - t_start) * 1000.0 + decode_ms
        self.timings = timings
        pending, self._local.tiles = getattr(self._local, "tiles", None) or {}, {}
        with self._count_lock:
            self.frames_inspected += 1
            for name, n in pending.items():
                self.tiles_run[name] = self.tiles_run.get(name, 0) + n
        latency_ms = (time.time() - host_ts) * 1000.0 if host_ts is not None else 0.0
        return InspectionResult(
            line_id=line_id,
            frame_id=int(frame_id),
            captured_at=captured_at,
            verdict=verdict,
            defects=defects,
            models=dict(self.model_versions),
            latency_ms=latency_ms,
            recipe=self.recipe.name,
            width=width,
            height=height,
            brightness=brightness,
            mask_classes=list(self.mask_classes),
            mask=mask,
        )

    def warmup(self, width: int = 1296, height: int = 966) -> None:
        """Run one mid-gray frame through every model (first runs of an engine are slow)."""
        self.inspect(np.full((height, width), 128, np.uint8), "warmup", 0, datetime.now(UTC))

    # -- stages -----------------------------------------------------------------------------
    def _run_model(
        self,
        spec: ModelSpec,
        model: OnnxModel,
        ts: TileSet,
        idx: np.ndarray | None,
        area: Rect,
        timings: dict[str, float],
        gate: list[Finding] | None = None,
    ) -> list[Finding]:
        arrays = ts.arrays if idx is None else [ts.arrays[i] for i in idx]
        rects = ts.rects if idx is None else ts.rects[idx]
        prep_s = run_s = post_s = 0.0
        found: list[Finding] = []
        if arrays:
            if model.task == "classify":
                parts = []
                for _, logits, p_s, r_s in model.predict_iter(arrays, _batch(spec, arrays)):
                    parts.append(logits)
                    prep_s, run_s = prep_s + p_s, run_s + r_s
                t0 = time.perf_counter()
                logits = np.concatenate(parts)
                if spec.gate:
                    found = gated_classification_defects(
                        rects, logits, model.classes, spec, gate or [], spec.name
                    )
                else:
                    found = classification_defects(rects, logits, model.classes, spec, spec.name)
                post_s = time.perf_counter() - t0
            else:
                cache = self._stitch_buffers()
                stitcher = SegmentationStitcher(area, len(model.classes), cache.get(spec.name))
                cache[spec.name] = stitcher.buffers
                for start, logits, p_s, r_s in model.predict_iter(arrays, _batch(spec, arrays)):
                    prep_s, run_s = prep_s + p_s, run_s + r_s
                    t0 = time.perf_counter()
                    n = len(logits)
                    shapes = [a.shape[:2] for a in arrays[start : start + n]]
                    stitcher.add(rects[start : start + n], logits, shapes)
                    post_s += time.perf_counter() - t0
                t0 = time.perf_counter()
                probs, covered = stitcher.finish()
                found = segmentation_defects(
                    probs, area, model.classes, spec, spec.name, covered=covered
                )
                post_s += time.perf_counter() - t0
            MODEL_INFERENCE.labels(model=spec.name).observe(run_s)
            self._count_tiles(spec.name, len(arrays))
        timings[f"preprocess:{spec.name}"] = prep_s * 1000.0
        timings[f"infer:{spec.name}"] = run_s * 1000.0
        timings[f"stitch:{spec.name}"] = post_s * 1000.0
        return found

    def _screen(
        self,
        image: np.ndarray,
        area: Rect,
        tiles_for: Callable[[ModelSpec], TileSet],
        timings: dict[str, float],
    ) -> tuple[bool, np.ndarray | None, list[Finding]]:
        """Run the screen; returns (run heavy models?, flagged rects or None, own findings)."""
        assert self.screen is not None and self.screen_model is not None
        screen, model, spec = self.screen, self.screen_model, self.screen.model
        dcls = defect_classes(model.classes, spec)
        dk = [model.classes.index(c) for c in dcls]
        if screen.scope == "frame":
            ts = make_tiles(image, 0, 0, area)
        else:
            ts = tiles_for(spec)
        prep_s = run_s = 0.0
        parts = []
        for _, logits, p_s, r_s in model.predict_iter(ts.arrays, _batch(spec, ts.arrays)):
            parts.append(logits)
            prep_s, run_s = prep_s + p_s, run_s + r_s
        MODEL_INFERENCE.labels(model=spec.name).observe(run_s)
        self._count_tiles(spec.name, len(ts.arrays))
        timings[f"preprocess:{spec.name}"] = prep_s * 1000.0
        timings[f"infer:{spec.name}"] = run_s * 1000.0
        t0 = time.perf_counter()
        probs = softmax(np.concatenate(parts), axis=1)
        p_defect = probs[:, dk].sum(axis=1) if dk else np.zeros(len(probs), np.float32)
        hit = p_defect >= screen.threshold
        findings: list[Finding] = []
        if screen.scope == "frame":
            positive = bool(hit[0])
            if positive and dcls:
                x, y, w, h = area
                top = dcls[int(np.argmax(probs[0, dk]))]
                findings = [
                    Finding(
                        Defect(
                            cls=top,
                            score=float(p_defect[0]),
                            bbox=area,
                            area_px=w * h,
                            model=spec.name,
                        ),
                        np.ones((h, w), dtype=bool),
                    )
                ]
            flagged = None
        else:
            positive = bool(hit.any())
            flagged = ts.rects[hit]
            if positive:
                gate = spec.model_copy(update={"threshold": screen.threshold, "thresholds": {}})
                findings = classification_defects(
                    ts.rects[hit], probs[hit], model.classes, gate, spec.name, probabilities=True
                )
        timings[f"stitch:{spec.name}"] = (time.perf_counter() - t0) * 1000.0
        return positive, flagged, findings
