"""Fixtures of the acquisition tests: the pylon camera emulator and the real Redis.

``PYLON_CAMEMU`` must be in the environment before pypylon's transport layer factory is
first used, so it is set here, when pytest imports this conftest (before any test runs).
"""

from __future__ import annotations

import os

os.environ["PYLON_CAMEMU"] = os.environ.get("PYLON_CAMEMU") or "2"

import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from core.bus import line_keys  # noqa: E402
from core.recipe import CameraSettings, Recipe  # noqa: E402
from core.settings import DEMO_FRAMES_DIR, Settings  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def emulated_serials() -> list[str]:
    """Serial numbers of the emulated cameras (skips when pypylon finds none)."""
    from acquisition.camera import list_cameras

    serials = [c["serial"] for c in list_cameras() if c["device_class"] == "BaslerCamEmu"]
    if not serials:
        pytest.skip("no pylon emulator devices (PYLON_CAMEMU was set too late)")
    return serials


@pytest.fixture(scope="session")
def demo_frames() -> list[Path]:
    """The demo PNGs the emulator replays, in replay (sorted) order."""
    files = sorted(DEMO_FRAMES_DIR.glob("*.png"))
    if not files:
        pytest.skip("no demo frames in deploy/demo/frames (run make demo-frames)")
    return files


@pytest.fixture()
def line_id(redis_client: Any) -> Iterator[str]:
    """A unique line id; its Redis keys are deleted afterwards."""
    line = f"test-acq-{uuid.uuid4().hex[:10]}"
    yield line
    redis_client.delete(*line_keys(line))
    redis_client.srem("lines", line)


@pytest.fixture()
def make_settings(line_id: str, emulated_serials: list[str]) -> Callable[..., Settings]:
    """Settings for the test line on the real Redis and the first emulated camera."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": REDIS_URL,
            "line_id": line_id,
            "camera": emulated_serials[0],
            "emulator_frames_dir": DEMO_FRAMES_DIR,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture()
def recipe() -> Recipe:
    """A minimal recipe: free-run at 30 fps, default transport, stream capped at 100."""
    return Recipe(name="acq-test", camera=CameraSettings(frame_rate=30.0), stream_maxlen=100)
