"""Drift statistics (issue 21) on hand-made frames: exact values where they are exact."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from core.recipe import DriftSpec
from core.result import Defect, InspectionResult
from inference.drift import DriftMonitor, flagged_share, hellinger, reference_key, signature


def _result(mask: np.ndarray | None = None, scores: tuple[float, ...] = ()) -> InspectionResult:
    return InspectionResult(
        line_id="drift-unit", frame_id=1, captured_at=datetime.now(UTC), verdict="OK",
        defects=[Defect(cls="x", score=s, bbox=(0, 0, 1, 1), area_px=1, model="m")
                 for s in scores],
        mask=mask,
    )


def test_flagged_share_counts_grid_cells_with_a_defect_pixel() -> None:
    mask = np.zeros((100, 100), np.uint8)
    mask[10, 10] = 1  # cell (0, 0)
    mask[99, 99] = 3  # the partial last cell
    assert flagged_share(mask, 40) == pytest.approx(2 / 9)
    assert flagged_share(None, 40) == 0.0


def test_signature_and_hellinger() -> None:
    flat = np.full((50, 60), 100, np.uint8)
    sig = signature(flat)
    assert sig.sum() == pytest.approx(1.0)
    assert hellinger(sig, sig) == pytest.approx(0.0, abs=1e-7)
    assert hellinger(sig, signature(np.full((50, 60), 10, np.uint8))) > 0.6


def test_reference_is_kept_in_redis_and_shared(redis_client: Any) -> None:
    line = "drift-unit-ref"
    redis_client.delete(reference_key(line))
    try:
        spec = DriftSpec(window=2, reference=3)
        first = DriftMonitor(line, spec, redis_client=redis_client)
        bright = np.full((40, 40), 150, np.uint8)
        snaps = [first.observe(bright, _result(scores=(0.7,))) for _ in range(3)]
        assert snaps[1].distance is None and snaps[2].distance == pytest.approx(0, abs=1e-7)
        second = DriftMonitor(line, spec, redis_client=redis_client)  # a restarted worker
        snap = second.observe(np.full((40, 40), 60, np.uint8), _result())
        assert snap.distance is not None and snap.distance > 0.5
        assert snap.brightness == pytest.approx(60)
    finally:
        redis_client.delete(reference_key(line))
