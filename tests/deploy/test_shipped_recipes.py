"""Issue 17.10: every shipped recipe (deploy/recipes/*.yaml) runs through the real
:class:`inference.pipeline.Inspector` with the real zoo files it names - not formula models.

Per recipe: each model (and a cascade's screen) resolves to a file under ``models/zoo`` and is
loaded with the version its ONNX metadata carries; a frame the size of the camera's sensor
(a demo frame for the steel line, else a textured gray frame with a dark scratch) is inspected
into a verdict with the frame's size, the recipe's name and only the recipe's classes; the
same frame inspected again gives the same result (no state leaks between frames).
"""

from __future__ import annotations

from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from core.model_meta import read_props
from core.recipe import load_recipe
from core.settings import DEMO_FRAMES_DIR, RECIPES_DIR, REPO_ROOT, Settings
from inference.pipeline import Inspector

pytestmark = [pytest.mark.slow]

RECIPES = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
ZOO = REPO_ROOT / "models" / "zoo"


def _frame(recipe_name: str) -> np.ndarray:
    """A frame for the recipe: the first demo frame of the steel line, else a 648 x 486
    textured gray frame with a dark diagonal scratch."""
    if recipe_name == "steel-strip":
        demo = sorted(DEMO_FRAMES_DIR.glob("frame_*.png"))
        assert demo, "the demo frames are shipped in deploy/demo/frames"
        return cv2.imread(str(demo[0]), cv2.IMREAD_GRAYSCALE)
    rng = np.random.default_rng(17)
    image = np.clip(rng.normal(140, 12, (486, 648)), 0, 255).astype(np.uint8)
    cv2.line(image, (100, 80), (420, 300), 25, 5)
    return image


def test_every_recipe_is_shipped() -> None:
    assert {"steel-strip", "aluminum-profile", "commutator"} <= set(RECIPES)


@pytest.mark.parametrize("name", RECIPES)
def test_shipped_recipe_inspects_with_its_zoo_models(name: str) -> None:
    recipe = load_recipe(name)
    specs = list(recipe.models) + ([recipe.screen.model] if recipe.screen else [])
    assert specs, f"{name}: no models"
    for spec in specs:
        path = spec.resolved_path()
        assert path.is_file() and path.parent == ZOO, (name, spec.name, path)

    inspector = Inspector(recipe, Settings(ort_threads=1, engine="onnxruntime"))
    for spec in specs:
        version = read_props(spec.resolved_path()).get("lineinspect.version")
        assert version and inspector.model_versions[spec.name] == version, (spec.name, version)

    image = _frame(name)
    now = datetime.now(UTC)
    first = inspector.inspect(image, "recipe-test", 1, now)
    again = inspector.inspect(image, "recipe-test", 2, now)
    assert first.verdict in ("OK", "NG")
    assert (first.width, first.height) == (image.shape[1], image.shape[0])
    assert first.recipe == recipe.name and first.models == inspector.model_versions
    assert {d.cls for d in first.defects} <= set(recipe.classes)
    assert (first.verdict == "NG") == bool(first.defects)
    assert again.verdict == first.verdict
    assert [(d.cls, d.bbox) for d in again.defects] == [(d.cls, d.bbox) for d in first.defects]


def test_shipped_recipes_name_no_missing_file() -> None:
    """Every ``models/zoo/...`` path a recipe names exists (a typo fails here first)."""
    for name in RECIPES:
        text = (RECIPES_DIR / f"{name}.yaml").read_text()
        for token in text.split():
            if token.startswith("models/zoo/") and token.endswith(".onnx"):
                assert (REPO_ROOT / token).is_file(), (name, token)

