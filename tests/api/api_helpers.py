"""Helpers shared by the API tests (a module, not conftest, so tests can import it)."""

from __future__ import annotations

import socket
from datetime import datetime

import numpy as np

from core.recipe import Recipe
from core.result import Defect, InspectionResult
from core.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/0"
API_KEY = "test-key-7f3a"
STALE_AFTER_MS = 500

RECIPE_YAML = f"""
name: test-recipe
description: API tests (models injected by the test)
stale_after_ms: {STALE_AFTER_MS}
"""


class FakeInspector:
    """Dark pixels (< 60) are one ``dark`` defect; NG when there are any."""

    model_versions = {"fake": "0.0.1"}
    mask_classes = ["background", "dark"]

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.calls = 0

    def inspect(
        self, image: np.ndarray, line_id: str, frame_id: int, captured_at: datetime
    ) -> InspectionResult:
        self.calls += 1
        gray = image if image.ndim == 2 else image.mean(axis=2)
        dark = gray < 60
        mask = dark.astype(np.uint8)
        defects = []
        if dark.any():
            ys, xs = np.nonzero(dark)
            bbox = (int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)
            defects.append(Defect(cls="dark", score=0.97, bbox=bbox, area_px=int(dark.sum()),
                                  model="fake"))
        return InspectionResult(
            line_id=line_id, frame_id=frame_id, captured_at=captured_at,
            verdict="NG" if defects else "OK", defects=defects, models=self.model_versions,
            recipe=self.recipe.name, width=image.shape[1], height=image.shape[0],
            brightness=float(gray.mean()), mask_classes=self.mask_classes, mask=mask,
        )


def closed_port() -> int:
    """A local TCP port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_factory(recipe: Recipe, _settings: Settings) -> FakeInspector:
    """``inspector_factory`` building :class:`FakeInspector`."""
    return FakeInspector(recipe)
