"""deploy.pace: the demo camera rate is the one this machine inspects (make run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.recipe import Recipe
from core.settings import DEMO_FRAMES_DIR
from deploy import pace


class Clock:
    """perf_counter stand-in advanced by the stub inspector."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class StubInspector:
    """Takes ``cost`` seconds of the fake clock per frame; records the frame shapes."""

    def __init__(self, clock: Clock, cost: float) -> None:
        self.clock, self.cost, self.shapes = clock, cost, []

    def inspect(self, image: Any, *args: Any) -> None:
        self.shapes.append(image.shape)
        self.clock.t += self.cost


@pytest.mark.parametrize(("cost", "recipe_fps", "expected"), [
    (0.25, 30.0, 2.4),   # 0.6 / 0.25 s
    (1.7, 30.0, 0.3),    # a slow machine: floored to 0.1 fps steps
    (0.001, 30.0, 30.0),  # a fast one: never above the recipe's camera rate
    (100.0, 30.0, 0.1),  # never below 0.1 fps
])
def test_rate_from_the_measured_inspection_time(
    monkeypatch: pytest.MonkeyPatch, cost: float, recipe_fps: float, expected: float
) -> None:
    clock = Clock()
    monkeypatch.setattr(pace.time, "perf_counter", clock)
    stub = StubInspector(clock, cost)
    recipe = Recipe(name="r", camera={"frame_rate": recipe_fps})
    got = pace.sustainable_rate(recipe, stub, DEMO_FRAMES_DIR)  # type: ignore[arg-type]
    assert got.fps == expected and got.recipe_fps == recipe_fps
    assert got.seconds_per_frame == pytest.approx(cost)
    assert len(stub.shapes) == 10 and set(stub.shapes) == {(966, 1296)}  # 2 passes of 5


def test_rate_scales_with_the_worker_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """lineinspect run with N inference worker processes asks N times one worker's rate."""
    clock = Clock()
    monkeypatch.setattr(pace.time, "perf_counter", clock)
    recipe = Recipe(name="r", camera={"frame_rate": 30.0})
    one = pace.sustainable_rate(recipe, StubInspector(clock, 0.5), DEMO_FRAMES_DIR)  # type: ignore[arg-type]
    two = pace.sustainable_rate(recipe, StubInspector(clock, 0.5), DEMO_FRAMES_DIR,  # type: ignore[arg-type]
                                workers=2)
    assert (one.fps, two.fps) == (1.2, 2.4)


def test_no_frames_falls_back(tmp_path: Path) -> None:
    recipe = Recipe(name="r")
    got = pace.sustainable_rate(recipe, StubInspector(Clock(), 1.0), tmp_path)  # type: ignore[arg-type]
    assert (got.fps, got.seconds_per_frame) == (pace.FALLBACK_FPS, None)


def test_demo_fail_safe_window_covers_one_camera_period() -> None:
    p = pace.Pace(fps=0.6, seconds_per_frame=0.5, recipe_fps=30.0)
    assert pace.demo_stale_after_ms(p, 1000) == 2700  # 1667 + 1000 ms, rounded up
    fast = pace.Pace(fps=30.0, seconds_per_frame=0.01, recipe_fps=30.0)
    assert pace.demo_stale_after_ms(fast, 1000) == 1000  # never below the recipe's
