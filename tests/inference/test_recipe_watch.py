"""RecipeWatch (issue 21.3): the worker's inspector follows the line's switch counter -
builds off the worker thread, swaps only at a frame's start, keeps the running recipe when
the new one does not build or the counter cannot be read. Stand-in inspectors: what is
tested is the hand-over, not inspection (the line test runs the real worker)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from core.frame import Frame
from core.result import InspectionResult
from inference.recipe_watch import RecipeWatch


class Named:
    """Answers every frame with its recipe name; remembers being closed."""

    def __init__(self, name: str) -> None:
        self.recipe = SimpleNamespace(name=name)
        self.closed = False

    def inspect_frame(self, frame: Frame) -> InspectionResult:
        return InspectionResult(line_id="w", frame_id=frame.frame_id,
                                captured_at=datetime.now(UTC), verdict="OK",
                                recipe=self.recipe.name)

    def close(self) -> None:
        self.closed = True


def _frame(i: int) -> Frame:
    return Frame("w", i, i, time.time(), 1, 1, "Mono8", b"\x00")


def _until(watch: RecipeWatch, name: str) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen.append(watch.inspect_frame(_frame(len(seen))).recipe)
        if seen[-1] == name:
            return seen
        time.sleep(0.01)
    raise AssertionError(f"never switched to {name}: {seen[-3:]}")


def test_switch_between_frames_and_keep_the_recipe_on_failures() -> None:
    state: dict[str, Any] = {"version": 0, "fail_poll": False, "fail_build": False}
    built: list[Named] = []
    building = threading.Event()

    def poll() -> int:
        if state["fail_poll"]:
            raise ConnectionError("database down")
        return state["version"]

    def build() -> tuple[int, Named]:
        building.set()
        if state["fail_build"]:
            raise FileNotFoundError("model gone")
        built.append(Named(f"r{state['version']}"))
        return state["version"], built[-1]

    first = Named("r0")
    watch = RecipeWatch("w", first, 0, poll, build, poll_s=0.01, retry_s=0.01)
    try:
        assert {watch.inspect_frame(_frame(i)).recipe for i in range(5)} == {"r0"}
        assert not building.is_set()  # nothing built while the counter stands
        state["version"] = 1
        seen = _until(watch, "r1")
        assert set(seen[:-1]) <= {"r0"} and first.closed and watch.version == 1
        assert watch.recipe.name == "r1"  # attributes are the current inspector's

        state["fail_poll"] = True  # database down: polls fail, the line goes on
        assert watch.inspect_frame(_frame(99)).recipe == "r1"
        state.update(fail_poll=False, fail_build=True, version=2)
        building.clear()
        assert building.wait(10)
        assert {watch.inspect_frame(_frame(i)).recipe for i in range(5)} == {"r1"}
        state["fail_build"] = False  # retried after retry_s
        _until(watch, "r2")
        assert [b.recipe.name for b in built] == ["r1", "r2"] and built[0].closed
    finally:
        watch.close()
    assert built[-1].closed


def test_two_switches_before_a_frame_run_the_last() -> None:
    switches = 2
    state = {"version": 0}
    built: list[Named] = []

    def build() -> tuple[int, Named]:
        v = state["version"]
        built.append(Named(f"r{v}"))
        return v, built[-1]

    watch = RecipeWatch("w", Named("r0"), 0, lambda: state["version"], build, poll_s=0.01)
    try:
        for v in range(1, switches + 1):
            state["version"] = v
            deadline = time.monotonic() + 30
            while not any(b.recipe.name == f"r{v}" for b in built):
                assert time.monotonic() < deadline
                time.sleep(0.01)
        assert watch.inspect_frame(_frame(1)).recipe == f"r{switches}"
        assert all(b.closed for b in built[:-1])  # the one never used was closed
    finally:
        watch.close()
