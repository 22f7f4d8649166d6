"""The camera rate ``lineinspect run`` asks of the emulated camera: one this machine sustains.

A real acA1300-30gm runs at the recipe's ``camera.frame_rate`` (30 fps for the shipped
recipes) and the line needs as many inference workers as that takes. The demo on one laptop
has as many workers as ``lineinspect run`` sized for it (one process per core by default),
so :func:`sustainable_rate` inspects a few of the demo frames with the recipe's own Inspector
(one worker's threads) and asks the emulator for ``utilization x workers / seconds per
frame`` (at most the recipe's rate): the workers keep up, the PLC sees live OK/NG, nothing
piles up. The recipe's ``stale_after_ms`` is widened for the demo to cover one camera period
(:func:`demo_stale_after_ms`). An explicit ``LINEINSPECT_FRAME_RATE`` (``make run FPS=...``)
is taken as given, with the recipe as it is.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2

from core.recipe import Recipe
from core.settings import Settings
from inference.pipeline import Inspector

log = logging.getLogger(__name__)

#: Share of one worker's time the demo rate may take (the API, the emulator's PNG decoding
#: and whatever else runs on the laptop need the rest).
UTILIZATION = 0.6
#: Rate when there is nothing to measure on (no demo frames).
FALLBACK_FPS = 1.0
_EXTS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


@dataclass(frozen=True)
class Pace:
    """The chosen camera rate and what it was chosen from."""

    #: frames per second to ask of the camera
    fps: float
    #: median inspection time of the measured frames, seconds (None: not measured)
    seconds_per_frame: float | None
    #: the recipe's own camera rate
    recipe_fps: float


def sustainable_rate(
    recipe: Recipe, inspector: Inspector, frames_dir: Path, *, frames: int = 5,
    utilization: float = UTILIZATION, workers: int = 1,
) -> Pace:
    """Time ``inspector`` on up to ``frames`` images of ``frames_dir`` (after one warm-up
    inspection) and derive the camera rate of ``workers`` such workers (floored to 0.1 fps,
    at least 0.1)."""
    files = sorted(p for p in Path(frames_dir).glob("*") if p.suffix.lower() in _EXTS)
    recipe_fps = float(recipe.camera.frame_rate)
    if not files:
        return Pace(fps=min(FALLBACK_FPS, recipe_fps), seconds_per_frame=None,
                    recipe_fps=recipe_fps)
    # spread the sample over the replay (clean and defect frames alike); two passes, the
    # first one only warms the engines up (first runs of a tile-batch shape are slow)
    step = max(1, len(files) // frames)
    images = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in files[::step][:frames]]
    images = [im for im in images if im is not None]
    times = []
    for timed in (False, True):
        for i, image in enumerate(images):
            t0 = time.perf_counter()
            inspector.inspect(image, "pace", i, datetime.now(UTC))
            if timed:
                times.append(time.perf_counter() - t0)
    if not times:
        return Pace(fps=min(FALLBACK_FPS, recipe_fps), seconds_per_frame=None,
                    recipe_fps=recipe_fps)
    per_frame = statistics.median(times)
    fps = max(0.1, math.floor(10 * utilization * workers / per_frame) / 10)
    return Pace(fps=min(fps, recipe_fps), seconds_per_frame=per_frame, recipe_fps=recipe_fps)


def demo_stale_after_ms(pace: Pace, recipe_stale_after_ms: int) -> int:
    """The fail-safe window of the paced demo: a verdict must stay valid until the next one
    can replace it - one camera period plus two inspection times (the frame's own and one
    of queueing), rounded up to 100 ms - and never shorter than the recipe's."""
    if pace.seconds_per_frame is None:
        needed = 1000.0 / pace.fps
    else:
        needed = 1000.0 / pace.fps + 2000.0 * pace.seconds_per_frame
    return max(int(recipe_stale_after_ms), int(math.ceil(needed / 100.0)) * 100)


def pace_emulated_camera(
    settings: Settings, recipe: Recipe, workers: int = 1
) -> tuple[Settings, Recipe, Inspector | None]:
    """For ``lineinspect run`` on the pylon emulator without ``LINEINSPECT_FRAME_RATE``: the
    settings with the measured :func:`sustainable_rate`, the recipe with the demo's
    fail-safe window (:func:`demo_stale_after_ms`: the recipe's ``stale_after_ms`` is meant
    for a 30 fps camera; at a demo rate below 1 fps every verdict would go stale before the
    next frame arrives), and the Inspector it was measured with when ``workers`` is 1 (the
    in-process inference worker reuses it: the models load once; worker processes load their
    own, so it is dropped then)."""
    inspector: Inspector | None = Inspector(recipe, settings)
    pace = sustainable_rate(recipe, inspector, settings.emulator_frames_dir, workers=workers)
    stale_ms = demo_stale_after_ms(pace, recipe.stale_after_ms)
    if pace.seconds_per_frame is None:
        log.warning("no demo frames in %s to measure on: emulated camera at %.1f fps",
                    settings.emulator_frames_dir, pace.fps)
    else:
        log.info(
            "emulated camera at %.1f fps: one frame costs %.2f s to inspect here, %d "
            "inference worker(s) (recipe %s asks %.0f fps of a real camera; set "
            "LINEINSPECT_FRAME_RATE or make run FPS=N to choose)", pace.fps,
            pace.seconds_per_frame, workers, recipe.name, pace.recipe_fps,
        )
    if stale_ms != recipe.stale_after_ms:
        log.info("demo fail-safe window: stale_after_ms %d (recipe %d, meant for %.0f fps)",
                 stale_ms, recipe.stale_after_ms, pace.recipe_fps)
    demo = recipe.model_copy(update={"stale_after_ms": stale_ms})
    if workers > 1:
        inspector = None
    return settings.model_copy(update={"frame_rate": pace.fps}), demo, inspector
