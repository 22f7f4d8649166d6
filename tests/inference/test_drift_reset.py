"""Drift reference reset (issue 21) on the real Redis: after a deliberate change (a new lamp)
``lineinspect drift reset`` / ``POST /lines/{line}/drift/reset`` make the running monitors
forget the old reference; the frames after the reset become the new one and the distance
returns to about 0, while a monitor started later keeps the new reference."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from core.recipe import DriftSpec
from core.result import InspectionResult
from inference.drift import DriftMonitor, reference_key, reset_key, reset_reference


def _frames(level: int, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(rng.normal(level, 12, (60, 80)), 0, 255).astype(np.uint8)
            for _ in range(n)]


def _ok() -> InspectionResult:
    return InspectionResult(line_id="drift-reset", frame_id=1, captured_at=datetime.now(UTC),
                            verdict="OK")


@pytest.mark.redis
def test_reset_makes_the_running_monitors_take_a_new_reference(redis_client: Any) -> None:
    line = f"drift-reset-{uuid.uuid4().hex[:8]}"
    spec = DriftSpec(window=4, reference=4)
    try:
        worker_a = DriftMonitor(line, spec, redis_client=redis_client, check_s=0.0)
        worker_b = DriftMonitor(line, spec, redis_client=redis_client, check_s=0.0)
        for img in _frames(170, 4, 1):  # the old lamp: the reference
            worker_a.observe(img, _ok())
        assert redis_client.exists(reference_key(line))
        dark = _frames(95, 12, 2)  # the new lamp
        snaps = [worker_a.observe(img, _ok()) for img in dark[:4]]
        assert snaps[-1].distance is not None and snaps[-1].distance > 0.5
        b = worker_b.observe(dark[4], _ok())  # took worker a's stored reference
        assert b.distance is not None and b.distance > 0.3
        old_reference = worker_a.reference.copy()

        gauge = ("lineinspect_frame_drift_distance", {"line": line})
        assert REGISTRY.get_sample_value(*gauge) > 0.5
        reset_reference(redis_client, line)
        assert not redis_client.exists(reference_key(line))
        snaps = [worker_a.observe(img, _ok()) for img in dark[4:7]]
        assert [s.distance for s in snaps] == [None, None, None]
        assert REGISTRY.get_sample_value(*gauge) is None  # no stale alarm while collecting
        snaps.append(worker_a.observe(dark[7], _ok()))
        assert REGISTRY.get_sample_value(*gauge) == pytest.approx(0.0, abs=0.05)
        assert snaps[-1].distance == pytest.approx(0.0, abs=0.05)
        assert worker_a.reference is not None
        assert float(np.abs(worker_a.reference - old_reference).sum()) > 0.5
        b = worker_b.observe(dark[8], _ok())  # worker b followed the reset too
        assert b.frames == 1 and b.distance is None

        later = DriftMonitor(line, spec, redis_client=redis_client, check_s=0.0)
        snap = later.observe(dark[9], _ok())  # a restart keeps the new reference
        assert snap.distance is not None and snap.distance < 0.1
    finally:
        redis_client.delete(reference_key(line), reset_key(line))
