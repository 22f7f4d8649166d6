"""Drift (issue 21): the pylon emulator replays a line that goes dark and blurred.

The real path: ``run_acquisition`` grabs the emulator's frames into the real Redis, the
inference worker as ``deploy.wiring`` builds it (live inspector watched by
:class:`inference.drift.DriftMonitor`) inspects them into a SQLite log. First 12 frames of the
normal line make the reference; a *new* worker (the reference must come back from Redis) then
sees 12 darkened, blurred frames. The exported gauges must move past the thresholds of
``deploy/prometheus/alerts.yml``, and ``promtool`` - fed with exactly the values the worker
exported - must fire the drift alerts for this line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from prometheus_client import REGISTRY

from acquisition.worker import run_acquisition
from core.recipe import CameraSettings, DriftSpec, ModelSpec, Recipe
from core.settings import Settings
from deploy.wiring import run_inference_worker
from inference.drift import reference_key
from storage.db import migrate

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.onnx_factory import make_segmenter  # noqa: E402
from tests.servers import missing  # noqa: E402

pytestmark = [pytest.mark.redis]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
N = 12


def _gauge(name: str, line: str) -> float:
    value = REGISTRY.get_sample_value(name, {"line": line})
    assert value is not None, f"{name}{{line={line}}} not exported"
    return value


def _rule(name: str) -> dict[str, Any]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return next(r for g in groups for r in g["rules"] if r.get("alert") == name)


def _frames(src: list[Path], out: Path, dark: float = 1.0, blur: float = 0.0) -> Path:
    """Demo frames halved in size (faster), optionally darkened and blurred."""
    out.mkdir()
    for i, path in enumerate(src[:6]):
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
        if blur:
            img = cv2.GaussianBlur(img, (0, 0), blur)
        img = np.clip(img.astype(np.float32) * dark, 0, 255).astype(np.uint8)
        cv2.imwrite(str(out / f"frame_{i:02d}.png"), img)
    return out


def _stats(line: str) -> dict[str, float]:
    return {
        "distance": _gauge("lineinspect_frame_drift_distance", line),
        "brightness": _gauge("lineinspect_frame_brightness", line),
        "contrast": _gauge("lineinspect_frame_contrast", line),
        "sharpness": _gauge("lineinspect_frame_sharpness", line),
        "flagged": _gauge("lineinspect_flagged_tile_share", line),
    }


def _promtool_fires(tmp: Path, line: str, before: dict[str, float], after: dict[str, float],
                    alerts: list[str]) -> None:
    """promtool evaluates alerts.yml on 6 h of ``before`` then 20 min of ``after`` values."""
    tool = shutil.which("promtool")
    if tool is None:
        missing("promtool not installed (make test installs it: apt-get install prometheus)")
    metric = {"distance": "lineinspect_frame_drift_distance",
              "brightness": "lineinspect_frame_brightness",
              "contrast": "lineinspect_frame_contrast",
              "sharpness": "lineinspect_frame_sharpness",
              "flagged": "lineinspect_flagged_tile_share"}
    series = [{"series": f'{metric[k]}{{instance="w:9100",line="{line}"}}',
               "values": f"{before[k]:.6f}x359 {after[k]:.6f}x20"} for k in metric]
    tests = {"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "alert_rule_test": [{"eval_time": "300m", "alertname": a, "exp_alerts": []}
                            for a in alerts],
    }]}
    path = tmp / "drift_test.yml"
    path.write_text(yaml.safe_dump(tests))
    res = subprocess.run([tool, "test", "rules", str(path)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr  # quiet before the drift
    # after it: every alert fires for this line (promtool names what it got on a mismatch)
    for case in tests["tests"][0]["alert_rule_test"]:
        case["eval_time"] = "378m"
    path.write_text(yaml.safe_dump(tests))
    res = subprocess.run([tool, "test", "rules", str(path)], capture_output=True, text=True,
                         timeout=120)
    out = res.stdout + res.stderr
    for alert in alerts:
        assert re.search(rf"alertname: {alert}.*?line=\"?{re.escape(line)}", out, re.S), (
            f"{alert} did not fire:\n{out}")


def test_darkened_blurred_line_raises_the_drift_alerts(
    redis_client: Any, line_id: str, make_settings: Callable[..., Settings],
    demo_frames: list[Path], tmp_path: Path,
) -> None:
    seg = make_segmenter(tmp_path / "seg.onnx", ("background", "dark_spot"), (180.0, 40.0),
                         input_size=(64, 64))
    recipe = Recipe(
        name="drift-test", camera=CameraSettings(frame_rate=30.0), stream_maxlen=1000,
        models=[ModelSpec(name="seg", path=str(seg), tile=128, min_area=50)],
        drift=DriftSpec(window=6, reference=N),
    )
    db = f"sqlite:///{tmp_path / 'log.db'}"
    migrate(db)
    normal = _frames(demo_frames, tmp_path / "normal")
    drifted = _frames(demo_frames, tmp_path / "drifted", dark=0.45, blur=4.0)
    try:
        settings = make_settings(emulator_frames_dir=normal, database_url=db, data_dir=tmp_path)
        run_acquisition(settings, recipe, max_frames=N)
        stats = run_inference_worker(settings, recipe, max_frames=N, block_ms=100)
        assert stats.processed == N
        assert redis_client.exists(reference_key(line_id))  # the reference is kept in Redis
        before = _stats(line_id)

        settings = make_settings(emulator_frames_dir=drifted, database_url=db, data_dir=tmp_path)
        run_acquisition(settings, recipe, max_frames=N)
        stats = run_inference_worker(settings, recipe, max_frames=N, block_ms=100)
        assert stats.processed == N
        after = _stats(line_id)
    finally:
        redis_client.delete(reference_key(line_id))

    threshold = float(re.search(r">\s*([\d.]+)", _rule("LineinspectFrameDrift")["expr"])[1])
    assert before["distance"] < 0.05 < threshold < after["distance"]
    assert after["brightness"] < 0.5 * before["brightness"]
    assert after["contrast"] < 0.7 * before["contrast"]  # LineinspectContrastDrop's ratio
    assert after["sharpness"] < 0.5 * before["sharpness"]  # LineinspectFramesBlurred's ratio
    assert after["flagged"] > before["flagged"]  # the dark line looks defective to the model
    _promtool_fires(tmp_path, line_id, before, after, [
        "LineinspectFrameDrift", "LineinspectBrightnessDrift", "LineinspectContrastDrop",
        "LineinspectFramesBlurred", "LineinspectFlaggedTilesRising",
    ])
