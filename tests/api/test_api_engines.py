"""``/readyz`` names, per model, the engine it runs on and the probe's measured reason."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from core.recipe import Recipe
from core.settings import Settings
from inference.pipeline import Inspector
from tests.onnx_factory import make_segmenter


def test_readyz_shows_each_models_engine_and_why(
    make_settings, redis_client, tmp_path: Path  # noqa: ANN001 - fixtures
) -> None:
    seg = make_segmenter(tmp_path / "seg.onnx", input_size=(32, 32))
    recipe = Recipe.model_validate(
        {"name": "t", "engine": "auto", "models": [{"name": "seg", "path": str(seg),
                                                    "tile": 32}]}
    )
    settings: Settings = make_settings(ort_threads=1)
    app = create_app(settings, inspector_factory=lambda _r, s: Inspector(recipe, s),
                     retention_interval_s=None)
    with TestClient(app) as client:
        deadline = time.monotonic() + 30
        while True:
            models = client.get("/readyz").json()["checks"]["models"]
            if models["state"] not in ("loading", "not_loaded") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert models["state"] == "ready", models
    choice = models["engines"]["seg"]
    assert choice["engine"] in ("onnxruntime", "openvino")
    assert "ms" in choice["reason"] and choice["ms_per_batch"]["onnxruntime"] > 0
