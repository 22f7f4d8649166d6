"""A line whose shadow candidate disagrees on every second frame, for the wiring tests of the
shadow (issue 21.1) and the review sampling (21.5): formula segmenters (tests/onnx_factory.py)
and frames on the real Redis stream."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

from core.bus import stream_key
from core.frame import Frame
from core.recipe import Recipe
from tests.onnx_factory import make_segmenter


def shadow_recipe(tmp_path: Path, **fields: Any) -> Recipe:
    """Recipe ``live``: its segmenter calls pixels darker than 110 defects, the candidate in
    shadow those darker than 140 (``fields`` are added to the recipe)."""
    live = make_segmenter(tmp_path / "live.onnx", ("background", "dark"), (180.0, 40.0),
                          input_size=(32, 32))
    cand = make_segmenter(tmp_path / "cand.onnx", ("background", "dark"), (180.0, 100.0),
                          input_size=(32, 32))
    return Recipe.model_validate({
        "name": "live", "max_backlog_ms": 0,
        "models": [{"name": "seg", "path": str(live), "tile": 64, "min_area": 50}],
        "shadow": {"models": {"seg": str(cand)}, "max_share": 1.0, "queue": 16},
        **fields,
    })


def feed_frames(r: redis.Redis, line: str, n: int = 6) -> None:
    """Frames 1..n on the line's stream; even frames hold a 120-gray patch: OK live, NG for
    the candidate."""
    for fid in range(1, n + 1):
        img = np.full((96, 128), 200, np.uint8)
        if fid % 2 == 0:
            img[30:60, 40:90] = 120
        r.xadd(stream_key(line), Frame(line, fid, fid, time.time(), 128, 96, "Mono8",
                                       img.tobytes()).to_fields())
