"""The demo line reads like a real line: the shipped frames through the real steel-strip
recipe and zoo models give mostly OK, an occasional NG, one record per defect region and
only the recipe's classes."""

from __future__ import annotations

from datetime import UTC, datetime

import cv2
import pytest

from core.recipe import load_recipe
from core.settings import DEMO_FRAMES_DIR, Settings
from inference.merge import _near
from inference.pipeline import Inspector


@pytest.fixture(scope="module")
def demo_results() -> list[tuple[str, object]]:
    recipe = load_recipe("steel-strip")
    inspector = Inspector(recipe, Settings(ort_threads=1, engine="onnxruntime"))
    out = []
    for i, path in enumerate(sorted(DEMO_FRAMES_DIR.glob("frame_*.png"))):
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        out.append((path.stem, inspector.inspect(image, "demo", i + 1, datetime.now(UTC))))
    return out


def test_demo_ng_rate_is_realistic_and_ok_verdicts_appear(demo_results: list) -> None:
    verdicts = [r.verdict for _, r in demo_results]
    ng_rate = verdicts.count("NG") / len(verdicts)
    assert 0.05 <= ng_rate <= 0.20, verdicts
    assert verdicts.count("OK") >= len(verdicts) // 2
    # the frames with pasted defects are the NG ones
    for name, r in demo_results:
        assert (r.verdict == "NG") == (not name.endswith("_clean")), (name, r.defects)


def test_one_record_per_defect_in_one_taxonomy(demo_results: list) -> None:
    recipe = load_recipe("steel-strip")
    for _, r in demo_results:
        assert r.mask_classes == ["background", *recipe.classes]
        for d in r.defects:
            assert d.cls in recipe.classes
            assert d.evidence and {e["mapped"] for e in d.evidence} <= set(recipe.classes)
        boxes = [d.bbox for d in r.defects]
        for i, a in enumerate(boxes):  # no two records for one region
            assert not any(_near(a, b, recipe.merge_gap_px) for b in boxes[i + 1 :]), boxes
        assert len(r.defects) <= 4


def test_overlay_of_the_demo_ng_frames_is_legible(demo_results: list) -> None:
    """One box and one label per defect, no label on another; written to the UI tests'
    artifacts folder (overlay-<frame>.png, outside the repository) to be looked at."""
    from api.overlay import _overlaps, encode_png, overlay_labels, render_overlay
    from tests.ui.ui_helpers import ARTIFACTS

    out_dir = ARTIFACTS
    out_dir.mkdir(parents=True, exist_ok=True)
    ng = [(name, r) for name, r in demo_results if r.verdict == "NG"]
    assert ng
    for name, r in ng:
        image = cv2.imread(str(DEMO_FRAMES_DIR / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
        labels = overlay_labels(r.defects, r.width, r.height)
        assert [t.split(" ")[1] for t, _ in labels] == [d.cls for d in r.defects]
        rects = [rect for _, rect in labels]
        for i, a in enumerate(rects):
            assert not any(_overlaps(a, b) for b in rects[i + 1 :])
        rgb = render_overlay(image, r.mask, r.defects, r.mask_classes)
        (out_dir / f"overlay-{name}.png").write_bytes(encode_png(rgb))
