"""``lineinspect bench pipeline`` end to end on the pylon emulator with tiny formula models.

Run as a subprocess, like on a fresh clone: ``PYLON_CAMEMU`` must be set before pypylon is
first used, and the embedded Redis/SQLite live in the bench's own temporary folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import DEMO_FRAMES_DIR, REPO_ROOT
from core.stages import StageTimer

HEADLINE = (
    "sustained_fps", "grab_fps", "dropped_pct", "grab_to_verdict_p50_ms",
    "grab_to_verdict_p99_ms", "cpu_percent", "peak_rss_mb", "window_s",
)
STAGES = ("grab", "stream_write", "decode", "tiling", "infer:seg", "infer:cls", "stitch:seg",
          "db_write", "verdict_publish", "grab_to_verdict")


@pytest.fixture()
def recipe(tiny_zoo: Path, tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "name: tiny-bench\n"
        "models:\n"
        f"  - {{name: seg, path: {tiny_zoo / 'spots.onnx'}, tile: 200, stride: 184}}\n"
        f"  - {{name: cls, path: {tiny_zoo / 'brightness.onnx'}, tile: 128}}\n"
    )
    return path


def test_bench_pipeline_reports_rates_and_stages(recipe: Path, tmp_path: Path) -> None:
    if not any(DEMO_FRAMES_DIR.glob("*.png")):
        pytest.skip("no demo frames for the emulator")
    out = tmp_path / "pipeline.json"
    env = {k: v for k, v in os.environ.items()
           if k not in ("LINEINSPECT_REDIS_URL", "LINEINSPECT_DATABASE_URL")}
    env.update(PYLON_CAMEMU="1", LINEINSPECT_DATA_DIR=str(tmp_path / "var"))
    cmd = [sys.executable, "-m", "deploy.cli", "bench", "pipeline", "--recipe", str(recipe),
           "--seconds", "3", "--warmup", "1", "--workers", "2", "--peak-seconds", "0.2",
           "--json", str(out)]
    res = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads(out.read_text())
    for key in HEADLINE:
        assert isinstance(report[key], int | float), key
    assert {"cpu", "onnxruntime", "date"} <= set(report["machine"])
    frames = report["frames"]
    assert frames["grabbed"] > 0 and frames["inspected"] > 0
    assert 0.0 <= report["dropped_pct"] <= 100.0
    assert report["grab_to_verdict_p50_ms"] <= report["grab_to_verdict_p99_ms"]
    assert report["peak_rss_mb"] > 0
    for stage in STAGES:
        s = report["stages"][stage]
        assert s["count"] > 0 and s["mean_ms"] >= 0, stage
    assert report["camera"]["width"] > 0
    assert "frames/s" in res.stdout or "fps" in res.stdout
    # the scaling over 1..2 worker processes, the last run is the report's
    assert [row["workers"] for row in report["scaling"]] == [1, 2]
    assert all(row["sustained_fps"] > 0 for row in report["scaling"])
    assert report["workers"] == 2 and report["scaling"][-1]["sustained_fps"] == report[
        "sustained_fps"]
    # the roofline: GFLOP per frame from the measured tiles per frame, achieved vs peak
    roof = report["roofline"]
    assert set(roof["tiles_per_frame"]) == {"seg", "cls"}
    assert roof["tiles_per_frame"]["seg"] > 1  # a 1296 x 966 frame in 200-px tiles
    assert roof["gflop_per_frame"] == pytest.approx(
        sum(roof["gflop_per_tile"][m] * roof["tiles_per_frame"][m] for m in ("seg", "cls")),
        rel=1e-2, abs=1e-3)
    assert roof["peak"]["gflops_per_s"] > 0 and roof["peak"]["engine"]
    assert 0 <= roof["share_of_peak"] and "roofline" in res.stdout
    assert {"engine", "reason"} <= set(report["engines"]["seg"])


def test_stage_timer_sums_and_percentiles() -> None:
    t = StageTimer(keep=3)
    for ms in (1.0, 2.0, 3.0, 4.0):
        t.add("a", ms / 1000.0)
    t.add_ms({"b": 5.0})
    with t.time("c"):
        pass
    s = t.summary()
    assert s["a"]["count"] == 4 and s["a"]["total_s"] == pytest.approx(0.01)
    assert s["a"]["max_ms"] == pytest.approx(4.0)  # only the last 3 samples are kept
    assert s["b"]["mean_ms"] == pytest.approx(5.0)
    assert s["c"]["count"] == 1
    t.reset()
    assert t.summary() == {}
