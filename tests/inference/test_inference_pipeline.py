"""Inspector end to end on synthetic frames with the formula models (dark = defect)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from core.frame import Frame
from core.recipe import Recipe
from core.settings import Settings
from inference.pipeline import Inspector
from tests.onnx_factory import make_classifier, make_segmenter

H, W = 966, 1296
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def frame_with_square(
    x: int, y: int, w: int, h: int, shape: tuple[int, ...] = (H, W)
) -> np.ndarray:
    img = np.full(shape, 200, np.uint8)
    img[y : y + h, x : x + w] = 20
    return img


def recipe(model_dir: Path, models: list[dict], **kw: object) -> Recipe:
    for m in models:
        m.setdefault("path", str(model_dir / f"{m['name'].split('_')[0]}.onnx"))
    return Recipe.model_validate({"name": "test", "models": models, **kw})


@pytest.fixture(scope="module")
def exact_seg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A segmenter whose input size equals its tile (no resize: exact boxes)."""
    return make_segmenter(tmp_path_factory.mktemp("m") / "seg128.onnx", input_size=(128, 128))


def test_segmenter_finds_dark_square_exact_bbox(model_dir: Path, exact_seg: Path) -> None:
    r = recipe(
        model_dir,
        [{"name": "seg", "path": str(exact_seg), "tile": 128, "stride": 96, "min_area": 50}],
    )
    insp = Inspector(r, Settings())
    img = frame_with_square(500, 300, 60, 40)
    img[900, 5] = 0  # one dark pixel: below min_area
    res = insp.inspect(img, "l1", 7, NOW)
    assert res.verdict == "NG" and res.code == 1
    assert [(d.cls, d.bbox, d.area_px, d.model) for d in res.defects] == [
        ("dark_spot", (500, 300, 60, 40), 2400, "seg")
    ]
    assert res.defects[0].score > 0.99
    assert res.mask_classes == ["background", "dark_spot"]
    assert res.mask.shape == (H, W) and res.mask.dtype == np.uint8
    assert (res.mask[300:340, 500:560] == 1).all() and res.mask.sum() == 2400
    assert res.models == {"seg": "0.1.0"} and res.recipe == "test"
    assert (res.width, res.height, res.frame_id, res.line_id) == (W, H, 7, "l1")
    assert res.brightness == pytest.approx(img.mean(), abs=1e-3)
    for key in ("decode", "tiling", "preprocess:seg", "infer:seg", "stitch:seg", "mask", "total"):
        assert key in insp.timings


def test_segmenter_with_resize_is_close(model_dir: Path) -> None:
    r = recipe(model_dir, [{"name": "seg", "tile": 256, "stride": 256, "min_area": 50}])
    res = Inspector(r, Settings()).inspect(frame_with_square(500, 300, 60, 40), "l", 1, NOW)
    assert len(res.defects) == 1
    x, y, w, h = res.defects[0].bbox
    assert abs(x - 500) <= 4 and abs(y - 300) <= 4 and abs(w - 60) <= 8 and abs(h - 40) <= 8


def test_clean_frame_is_ok(model_dir: Path) -> None:
    r = recipe(model_dir, [{"name": "seg", "tile": 256}, {"name": "cls", "tile": 64}])
    res = Inspector(r, Settings()).inspect(np.full((H, W), 200, np.uint8), "l", 1, NOW)
    assert res.verdict == "OK" and res.defects == [] and res.mask.max() == 0


def test_one_region_of_two_models_is_one_defect(model_dir: Path, exact_seg: Path) -> None:
    # 100x100 square at (320, 192): the segmenter finds it exactly, the 64-px classifier as
    # the 3 tiles more than half dark. One region -> one defect: the segmenter's pixels, the
    # vote's class, both detections kept as evidence.
    r = recipe(
        model_dir,
        [
            {"name": "seg", "path": str(exact_seg), "tile": 128, "min_area": 50},
            {"name": "cls", "tile": 64, "stride": 64},
        ],
    )
    insp = Inspector(r, Settings())
    res = insp.inspect(frame_with_square(320, 192, 100, 100), "l", 1, NOW)
    assert insp.mask_classes == ["background", "dark_spot", "dark"]
    assert len(res.defects) == 1
    d = res.defects[0]
    assert d.bbox == (320, 192, 100, 100) and d.area_px == 100 * 100
    assert d.cls == "dark_spot" and d.model == "seg"  # seg 0.99+ outvotes cls (< 0.99)
    ev = {e["model"]: e for e in d.evidence}
    assert set(ev) == {"seg", "cls"}
    assert ev["cls"]["class"] == "dark" and ev["cls"]["bbox"] == [320, 192, 128, 128]
    m = res.mask
    assert (m[192:292, 320:420] == 1).all() and int((m > 0).sum()) == 100 * 100


def test_recipe_taxonomy_maps_every_model(model_dir: Path, exact_seg: Path) -> None:
    models = [
        {"name": "seg", "path": str(exact_seg), "tile": 128, "min_area": 50,
         "class_map": {"dark_spot": "stain"}},
        {"name": "cls", "tile": 64, "stride": 64, "class_map": {"dark": "stain"}},
    ]
    r = recipe(model_dir, models, classes=["scratch", "stain"])
    insp = Inspector(r, Settings())
    assert insp.mask_classes == ["background", "scratch", "stain"]
    res = insp.inspect(frame_with_square(320, 192, 100, 100), "l", 1, NOW)
    assert [(d.cls, d.bbox) for d in res.defects] == [("stain", (320, 192, 100, 100))]
    assert {e["mapped"] for e in res.defects[0].evidence} == {"stain"}
    assert (res.mask[192:292, 320:420] == 2).all()
    # a model class left unmapped is refused when the models are loaded
    models[1]["class_map"] = {}
    with pytest.raises(ValueError, match=r"cls: classes \['dark'\] are not mapped"):
        Inspector(recipe(model_dir, models, classes=["scratch", "stain"]), Settings())
    # a mapping onto a class the recipe does not declare is refused when it is read
    models[1]["class_map"] = {"dark": "rust"}
    with pytest.raises(ValueError, match="rust"):
        recipe(model_dir, models, classes=["scratch", "stain"])
    with pytest.raises(ValueError, match="ng_classes"):
        recipe(model_dir, models[:1], classes=["stain"], verdict={"ng_classes": ["crack"]})


def test_roi_crops_and_keeps_frame_coordinates(model_dir: Path, exact_seg: Path) -> None:
    models = [{"name": "seg", "path": str(exact_seg), "tile": 128, "min_area": 50}]
    img = frame_with_square(700, 600, 30, 30)
    img[50:80, 50:80] = 20  # outside the ROI
    res = Inspector(recipe(model_dir, models, roi=(600, 500, 400, 300)), Settings()).inspect(
        img, "l", 1, NOW
    )
    assert [d.bbox for d in res.defects] == [(700, 600, 30, 30)]
    assert res.mask[50:80, 50:80].max() == 0 and res.mask.sum() == 900


def test_rgb_frame_and_small_frame(model_dir: Path, exact_seg: Path) -> None:
    models = [{"name": "seg", "path": str(exact_seg), "tile": 128, "min_area": 10}]
    insp = Inspector(recipe(model_dir, models), Settings())
    rgb = np.repeat(frame_with_square(40, 10, 20, 20, shape=(90, 100))[:, :, None], 3, axis=2)
    res = insp.inspect(rgb, "l", 1, NOW)  # smaller than a tile: reflection-padded
    assert [d.bbox for d in res.defects] == [(40, 10, 20, 20)]


def test_verdict_rule_and_latency(model_dir: Path, exact_seg: Path) -> None:
    models = [{"name": "seg", "path": str(exact_seg), "tile": 128, "min_area": 10}]
    r = recipe(model_dir, models, verdict={"ng_classes": ["crack"]})
    img = frame_with_square(500, 300, 60, 40)
    res = Inspector(r, Settings()).inspect(img, "l", 1, NOW, host_ts=time.time() - 0.25)
    assert res.verdict == "OK" and len(res.defects) == 1  # found, but not an NG class
    assert 250 <= res.latency_ms < 5000


def test_inspect_frame_decodes(model_dir: Path, exact_seg: Path) -> None:
    models = [{"name": "seg", "path": str(exact_seg), "tile": 128, "min_area": 10}]
    insp = Inspector(recipe(model_dir, models), Settings())
    img = frame_with_square(10, 10, 20, 20, shape=(200, 300))
    f = Frame("l", 5, 0, 1_700_000_000.5, 300, 200, "Mono8", img.tobytes())
    res = insp.inspect_frame(f)
    assert res.frame_id == 5 and res.captured_at == datetime.fromtimestamp(f.host_ts, UTC)
    assert [d.bbox for d in res.defects] == [(10, 10, 20, 20)]
    bad = Frame("l", 6, 0, 0.0, 300, 200, "Mono8", img.tobytes()[:-1])
    with pytest.raises(ValueError):
        insp.inspect_frame(bad)


def test_screen_frame_scope(model_dir: Path, exact_seg: Path) -> None:
    models = [{"name": "seg", "path": str(exact_seg), "tile": 128, "min_area": 10}]
    screen = {
        "model": {"name": "screen", "path": str(model_dir / "screen.onnx"), "tile": 0},
        "scope": "frame",
        "threshold": 0.5,
    }
    insp = Inspector(recipe(model_dir, models, screen=screen), Settings())
    assert insp.model_versions == {"seg": "0.1.0", "screen": "0.1.0"}
    assert insp.mask_classes == ["background", "dark_spot", "defect"]
    # small defect: the whole-frame screen sees a bright frame -> heavy models skipped -> OK
    res = insp.inspect(frame_with_square(500, 300, 60, 40), "l", 1, NOW)
    assert res.verdict == "OK" and "infer:seg" not in insp.timings
    # mostly dark frame: screen fires, the segmenter runs and reports
    res = insp.inspect(frame_with_square(0, 0, 1000, 966), "l", 2, NOW)
    assert res.verdict == "NG" and {d.model for d in res.defects} == {"seg"}


def test_screen_tile_scope_gates_tiles(model_dir: Path, exact_seg: Path) -> None:
    models = [{"name": "seg", "path": str(exact_seg), "tile": 128, "min_area": 10}]
    screen = {
        "model": {"name": "screen", "path": str(model_dir / "screen.onnx"), "tile": 128},
        "scope": "tile",
        "threshold": 0.5,
    }
    insp = Inspector(recipe(model_dir, models, screen=screen), Settings())
    img = frame_with_square(256, 128, 100, 100)  # > half of screen tile (256,128) is dark
    img[600:610, 900:910] = 20  # small: its screen tile stays OK, so it is never segmented
    res = insp.inspect(img, "l", 1, NOW)
    assert [d.bbox for d in res.defects] == [(256, 128, 100, 100)]


def test_screen_defect_reported_when_heavy_models_find_none(model_dir: Path) -> None:
    models = [{"name": "cls", "tile": 64, "min_area": 10**7}]  # finds nothing
    screen = {
        "model": {"name": "screen", "path": str(model_dir / "screen.onnx"), "tile": 128},
        "scope": "tile",
        "threshold": 0.5,
    }
    r = recipe(model_dir, models, screen=screen, roi=(0, 0, 512, 512))
    img = np.full((H, W), 200, np.uint8)
    img[0:128, 128:256] = 95  # screen (boundary 110) says defect
    res = Inspector(r, Settings()).inspect(img, "l", 1, NOW)
    assert [(d.cls, d.model, d.bbox) for d in res.defects] == [
        ("defect", "screen", (128, 0, 128, 128))
    ]
    assert (res.mask[0:128, 128:256] == res.mask_classes.index("defect")).all()
    off = r.model_copy(
        update={"screen": r.screen.model_copy(update={"report_screen_defect": False})}
    )
    assert Inspector(off, Settings()).inspect(img, "l", 1, NOW).verdict == "OK"


def test_bad_recipe_and_input(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="stride"):
        Inspector(recipe(model_dir, [{"name": "cls", "tile": 64, "stride": 65}]), Settings())
    insp = Inspector(recipe(model_dir, [{"name": "cls", "tile": 64}]), Settings())
    with pytest.raises(ValueError):
        insp.inspect(np.zeros((10, 10), np.float32), "l", 1, NOW)


@pytest.fixture(scope="module")
def typer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A defect-only classifier (no defect-free class): bright tiles are 'bright_mark'."""
    return make_classifier(
        tmp_path_factory.mktemp("m") / "typer.onnx", ("bright_mark", "dark"), (230.0, 40.0)
    )


def test_gated_classifier_names_segmenter_defects(
    model_dir: Path, exact_seg: Path, typer: Path
) -> None:
    models = [
        {"name": "seg", "path": str(exact_seg), "tile": 128, "min_area": 50},
        {"name": "typer", "path": str(typer), "tile": 64, "threshold": 0.6, "gate": "seg"},
    ]
    insp = Inspector(recipe(model_dir, models), Settings())
    # clean frame: the segmenter finds nothing, so the defect-only classifier never runs
    # (ungated it would call every bright tile a 'bright_mark')
    res = insp.inspect(np.full((H, W), 200, np.uint8), "l", 1, NOW)
    assert res.verdict == "OK" and res.defects == [] and insp.timings["infer:typer"] == 0.0
    res = insp.inspect(frame_with_square(320, 192, 100, 100), "l", 2, NOW)
    # one region: one defect with the segmenter's box; both opinions are its evidence
    assert [(d.cls, d.bbox, d.area_px) for d in res.defects] == [
        ("dark_spot", (320, 192, 100, 100), 10000)
    ]
    typed = next(e for e in res.defects[0].evidence if e["model"] == "typer")
    assert typed["class"] == "dark" and typed["bbox"] == [320, 192, 100, 100]
    # pixel-weighted: 3 of the 4 touching tiles (8704 of 10000 pixels) are mostly dark
    assert typed["score"] == pytest.approx(0.8704, abs=0.01)
    assert (res.mask[192:292, 320:420] == 1).all() and res.mask.sum() == 10000
    # with half a vote the segmenter loses the class to the classifier that names it
    models[0]["vote_weight"] = 0.5
    res = Inspector(recipe(model_dir, models), Settings()).inspect(
        frame_with_square(320, 192, 100, 100), "l", 3, NOW
    )
    assert [(d.cls, d.model, d.bbox) for d in res.defects] == [
        ("dark", "typer", (320, 192, 100, 100))
    ]


def test_gate_must_name_an_earlier_model(model_dir: Path) -> None:
    models = [{"name": "cls", "tile": 64, "gate": "seg"}, {"name": "seg", "tile": 64}]
    with pytest.raises(ValueError, match="gate"):
        Inspector(recipe(model_dir, models), Settings())


def test_recipe_tile_must_match_trained_tile(tmp_path: Path) -> None:
    """A segmenter trained on 256-px tiles (``lineinspect.tile``) is refused at load when the
    recipe cuts other tiles or whole frames, and runs when the recipe cuts 256-px tiles."""
    seg = make_segmenter(tmp_path / "seg.onnx", meta_overrides={"tile": "256"})
    for tile, stride in ((200, 200), (0, 0)):
        r = recipe(tmp_path, [{"name": "seg", "path": str(seg), "tile": tile, "stride": stride}])
        with pytest.raises(ValueError, match="trained on 256-px frame tiles"):
            Inspector(r, Settings())
    r = recipe(tmp_path, [{"name": "seg", "path": str(seg), "tile": 256, "min_area": 50}])
    res = Inspector(r, Settings()).inspect(frame_with_square(500, 300, 60, 40), "l1", 1, NOW)
    assert res.verdict == "NG" and res.defects[0].bbox == (500, 300, 60, 40)


def test_inspector_counts_frames_and_the_tiles_each_model_ran(model_dir: Path) -> None:
    """What ``bench pipeline``'s roofline multiplies the per-tile GFLOP with."""
    rec = Recipe.model_validate(
        {"name": "t", "models": [{"name": "seg", "path": str(model_dir / "seg.onnx"),
                                  "tile": 64}]}
    )
    inspector = Inspector(rec, Settings())
    frame = np.full((128, 192), 200, np.uint8)
    for _ in range(3):
        inspector.inspect(frame, "l", 1, datetime.now(UTC))
    assert inspector.frames_inspected == 3 and inspector.tiles_run == {"seg": 3 * 6}
    inspector.reset_counts()
    assert inspector.frames_inspected == 0 and inspector.tiles_run == {}
