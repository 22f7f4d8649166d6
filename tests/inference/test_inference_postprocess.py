"""Postprocessing: score maps, stitching, thresholds, min-area filters, mask painting."""

from __future__ import annotations

import numpy as np
import pytest

from core.recipe import ModelSpec
from core.result import Defect
from inference.postprocess import (
    Finding,
    SegmentationStitcher,
    argmax_classes,
    classification_defects,
    classification_grid,
    classification_score_map,
    paint_mask,
    segmentation_defects,
    unified_classes,
)
from inference.tiler import Rect, make_tiles, tile_rects

CLASSES = ("defect_free", "scratch", "pit")


def _spec(**kw: object) -> ModelSpec:
    return ModelSpec(name=kw.pop("name", "m"), path="x.onnx", **kw)  # type: ignore[arg-type]


def _probs_for(rects: np.ndarray, hot: dict[int, tuple[int, float]]) -> np.ndarray:
    """Per tile probabilities: ``hot[i] = (class index, prob)``, the rest defect_free."""
    p = np.zeros((len(rects), len(CLASSES)), np.float32)
    p[:, 0] = 1.0
    for i, (k, v) in hot.items():
        p[i] = (1.0 - v) / (len(CLASSES) - 1)
        p[i, k] = v
    return p


def _index(rects: np.ndarray, x: int, y: int) -> int:
    return int(np.flatnonzero((rects[:, 0] == x) & (rects[:, 1] == y))[0])


@pytest.mark.parametrize(
    ("tile", "stride", "roi"), [(224, 224, None), (224, 100, None), (128, 96, (30, 40, 700, 500))]
)
def test_cell_grid_equals_pixel_score_map(tile: int, stride: int, roi: Rect | None) -> None:
    rects = np.asarray(tile_rects(1296, 966, tile, stride, roi))
    probs = np.random.default_rng(1).random((len(rects), 3)).astype(np.float32)
    grid = classification_grid(rects, probs)
    ref = classification_score_map(rects, probs, 966, 1296)
    x0, y0, x1, y1 = grid.xs[0], grid.ys[0], grid.xs[-1], grid.ys[-1]
    for k in range(3):
        np.testing.assert_array_equal(grid.expand(grid.scores[k]), ref[k, y0:y1, x0:x1])


def test_classification_region_bbox_score_and_area() -> None:
    rects = np.asarray(tile_rects(1296, 966, 224, 224))
    a, b = _index(rects, 224, 224), _index(rects, 448, 224)  # two horizontal neighbours
    c = _index(rects, 1072, 742)  # bottom-right border tile (overlaps its neighbours)
    probs = _probs_for(rects, {a: (1, 0.9), b: (1, 0.7), c: (2, 0.95)})
    found = classification_defects(rects, probs, CLASSES, _spec(), probabilities=True)
    by_cls = {f.defect.cls: f.defect for f in found}
    assert set(by_cls) == {"scratch", "pit"}
    s = by_cls["scratch"]
    assert s.bbox == (224, 224, 448, 224) and s.area_px == 448 * 224
    assert s.score == pytest.approx(0.9) and s.model == "m"
    p = by_cls["pit"]
    assert p.bbox == (1072, 742, 224, 224) and p.area_px == 224 * 224
    assert found[0].defect.cls == "pit"  # sorted by score
    assert found[0].region.shape == (224, 224) and found[0].region.all()


def test_classification_thresholds_and_min_area() -> None:
    rects = np.asarray(tile_rects(1296, 966, 224, 224))
    a, b = _index(rects, 224, 224), _index(rects, 448, 224)
    probs = _probs_for(rects, {a: (1, 0.9), b: (1, 0.7)})
    # per-class threshold: only the 0.9 tile remains
    found = classification_defects(
        rects, probs, CLASSES, _spec(thresholds={"scratch": 0.8}), probabilities=True
    )
    assert [f.defect.bbox for f in found] == [(224, 224, 224, 224)]
    # score exactly at the threshold counts
    found = classification_defects(rects, probs, CLASSES, _spec(threshold=0.7), probabilities=True)
    assert len(found) == 1 and found[0].defect.area_px == 2 * 224 * 224
    # min area: the two-tile region passes 2*224^2, fails above
    spec = _spec(min_areas={"scratch": 2 * 224 * 224 + 1})
    assert classification_defects(rects, probs, CLASSES, spec, probabilities=True) == []
    # ok classes are never defects
    spec = _spec(ok_classes=["defect_free", "scratch"])
    assert classification_defects(rects, probs, CLASSES, spec, probabilities=True) == []


def test_classification_overlap_takes_max() -> None:
    rects = np.asarray(tile_rects(448, 224, 224, 112))  # x = 0, 112, 224
    assert rects[:, 0].tolist() == [0, 112, 224]
    probs = _probs_for(rects, {0: (1, 0.6), 1: (1, 0.9)})
    found = classification_defects(rects, probs, CLASSES, _spec(), probabilities=True)
    assert len(found) == 1
    d = found[0].defect
    assert d.bbox == (0, 0, 336, 224) and d.score == pytest.approx(0.9)


def test_softmax_applied_to_logits() -> None:
    rects = np.asarray([[0, 0, 10, 10]])
    logits = np.asarray([[0.0, 3.0, 0.0]], np.float32)  # p(scratch) = e^3/(e^3+2) = 0.909
    found = classification_defects(rects, logits, CLASSES, _spec())
    assert found[0].defect.score == pytest.approx(np.exp(3) / (np.exp(3) + 2), rel=1e-5)


def _known_mask(h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[100:180, 200:260] = 1
    mask[500:540, 1000:1290] = 2  # touches the right border
    mask[900:966, 0:30] = 1  # bottom-left corner
    mask[300, 300] = 2  # a single pixel
    return mask


@pytest.mark.parametrize(
    ("tile", "stride", "roi"),
    [(256, 256, None), (256, 192, None), (200, 150, (150, 60, 1146, 906)), (0, 0, None)],
)
def test_stitching_reproduces_known_mask(tile: int, stride: int, roi: Rect | None) -> None:
    h, w = 966, 1296
    mask = _known_mask(h, w)
    ts = make_tiles(mask, tile, stride, roi)
    ax, ay, aw, ah = ts.area
    stitcher = SegmentationStitcher(ts.area, 3)
    for start in range(0, len(ts), 7):  # chunks, like batches
        arrays = ts.arrays[start : start + 7]
        logits = np.stack([np.eye(3, dtype=np.float32)[a].transpose(2, 0, 1) * 20 for a in arrays])
        stitcher.add(ts.rects[start : start + 7], logits, [a.shape[:2] for a in arrays])
    probs, covered = stitcher.finish()
    assert covered is None
    np.testing.assert_array_equal(argmax_classes(probs), mask[ay : ay + ah, ax : ax + aw])


def test_stitching_nearest_upsampling_and_padding() -> None:
    # model output at half resolution; frame smaller than the tile (reflection-padded)
    mask = np.zeros((60, 90), np.uint8)
    mask[20:40, 30:50] = 1
    ts = make_tiles(mask, 128)
    assert ts.padded
    half = ts.arrays[0][::2, ::2]
    logits = (np.eye(2, dtype=np.float32)[half].transpose(2, 0, 1) * 20)[None]
    stitcher = SegmentationStitcher(ts.area, 2)
    stitcher.add(ts.rects, logits, [ts.arrays[0].shape[:2]])
    probs, _ = stitcher.finish()
    assert probs.shape == (2, 60, 90)
    np.testing.assert_array_equal(argmax_classes(probs), mask)


def test_stitching_averages_overlaps() -> None:
    stitcher = SegmentationStitcher((0, 0, 30, 10), 2)
    p1 = np.zeros((1, 2, 10, 20), np.float32)
    p1[:, 1] = 1.0
    p2 = np.zeros((1, 2, 10, 20), np.float32)
    p2[:, 0] = 1.0
    stitcher.add(np.asarray([[0, 0, 20, 10]]), p1, [(10, 20)], probabilities=True)
    stitcher.add(np.asarray([[10, 0, 20, 10]]), p2, [(10, 20)], probabilities=True)
    probs, _ = stitcher.finish()
    np.testing.assert_allclose(probs[1, 0], [1.0] * 10 + [0.5] * 10 + [0.0] * 10)


def test_segmentation_defects_filters() -> None:
    classes = ("background", "scratch", "pit")
    area = (100, 50, 400, 300)  # an ROI: boxes must come back in frame coordinates
    probs = np.zeros((3, 300, 400), np.float32)
    probs[0] = 1.0
    probs[:, 10:30, 20:60] = np.asarray([0.1, 0.9, 0.0])[:, None, None]  # strong scratch
    probs[:, 100:103, 100:103] = np.asarray([0.2, 0.8, 0.0])[:, None, None]  # tiny scratch
    probs[:, 200:240, 300:340] = np.asarray([0.3, 0.1, 0.6])[:, None, None]  # weak pit
    found = segmentation_defects(probs, area, classes, _spec(min_area=10))
    got = {(f.defect.cls, f.defect.bbox, f.defect.area_px) for f in found}
    assert got == {("scratch", (120, 60, 40, 20), 800), ("pit", (400, 250, 40, 40), 1600)}
    scratch = next(f.defect for f in found if f.defect.cls == "scratch")
    assert scratch.score == pytest.approx(0.9)
    # mean-probability threshold drops the weak pit
    found = segmentation_defects(probs, area, classes, _spec(min_area=10, thresholds={"pit": 0.7}))
    assert [f.defect.cls for f in found] == ["scratch"]
    # no min area: the tiny one appears
    found = segmentation_defects(probs, area, classes, _spec())
    assert sorted(f.defect.area_px for f in found) == [9, 800, 1600]


def test_argmax_classes_matches_numpy() -> None:
    p = np.random.default_rng(3).random((5, 40, 50)).astype(np.float32)
    np.testing.assert_array_equal(argmax_classes(p), p.argmax(axis=0))


def test_unified_classes_and_paint_precedence() -> None:
    seg = _spec(name="seg")
    cls = _spec(name="cls")
    classes = unified_classes(
        [(("background", "scratch", "pit"), seg), (("defect_free", "pit", "crack"), cls)]
    )
    assert classes == ["background", "scratch", "pit", "crack"]
    mask = np.zeros((20, 20), np.uint8)
    seg_find = Finding(
        Defect(cls="scratch", score=0.9, bbox=(2, 2, 4, 4), area_px=16, model="seg"),
        np.ones((4, 4), bool),
    )
    cls_find = Finding(
        Defect(cls="crack", score=0.99, bbox=(0, 0, 10, 10), area_px=100, model="cls"),
        np.ones((10, 10), bool),
    )
    paint_mask(mask, [seg_find], classes)
    paint_mask(mask, [cls_find], classes)
    assert (mask[2:6, 2:6] == 1).all()  # segmenter pixels win
    assert (mask[0:2, :10] == 3).all() and (mask[6:10, :10] == 3).all()
    assert (mask[10:, :] == 0).all() and (mask[:, 10:] == 0).all()
