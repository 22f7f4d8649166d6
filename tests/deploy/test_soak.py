"""``lineinspect bench soak`` run for real, briefly: ``lineinspect run`` with two worker
processes at 1 fps for 0.3 measured minutes; the report has RSS samples of every process
kind, the summary fields, frames inspected, a readable plot and no process left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow]


def test_bench_soak_reports_every_process_and_the_frames(tmp_path: Path) -> None:
    out = tmp_path / "soak"
    done = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "bench", "soak", "--minutes", "0.3", "--fps", "1",
         "--workers", "2", "--interval", "2", "--warmup", "5", "--out", str(out)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "soak.json").read_text())
    samples = report["samples"]
    assert len(samples) >= 5 and samples[-1]["t"] >= 5 + 0.3 * 60
    kinds = [{p["kind"] for p in s["processes"].values()} for s in samples]
    assert all(k >= {"service", "worker", "redis-server"} for k in kinds), kinds
    assert all(sum(p["kind"] == "worker" for p in s["processes"].values()) == 2
               for s in samples)
    assert all(p["rss"] > 0 for s in samples for p in s["processes"].values())
    summary = report["summary"]
    by_kind = {p["kind"] for p in summary["processes"].values()}
    assert by_kind >= {"service", "worker", "redis-server"}
    for p in summary["processes"].values():
        assert set(p) >= {"rss_start_mb", "rss_end_mb", "rss_max_mb", "slope_mb_per_min"}
        assert p["rss_start_mb"] <= p["rss_max_mb"] and p["rss_end_mb"] <= p["rss_max_mb"]
    frames = summary["frames"]
    assert set(frames) >= {"grabbed", "inspected", "skipped_unknown", "dropped"}
    assert frames["inspected"] > 0 and frames["grabbed"] > 0
    assert report["children_left"] == [] and report["log"]["tracebacks"] == 0
    plot = cv2.imread(str(out / "soak.png"))
    assert plot is not None and plot.shape[0] > 100 and plot.std() > 0
    assert "slope" in done.stdout and "worker-2" in done.stdout
