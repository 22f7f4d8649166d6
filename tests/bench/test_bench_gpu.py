"""``lineinspect bench gpu`` on its CPU paths: the no-GPU message, the TensorRT options, and
the model and pipeline measurements run with the CPU provider standing in for the GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.settings import DEMO_FRAMES_DIR, REPO_ROOT
from deploy import bench_gpu
from inference.backends.onnxruntime import create_session, trt_options

CPU = ("CPUExecutionProvider",)


def test_without_a_gpu_it_says_so_and_writes_the_report(tmp_path: Path) -> None:
    env = dict(os.environ, PATH="/usr/bin:/bin", LINEINSPECT_DATA_DIR=str(tmp_path / "var"))
    if any(Path(p, "nvidia-smi").exists() for p in ("/usr/bin", "/bin")):
        pytest.skip("this machine has nvidia-smi")
    res = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "bench", "gpu", "--out", str(tmp_path / "gpu")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "no_gpu" in res.stdout and "Traceback" not in res.stdout + res.stderr
    (report_path,) = (tmp_path / "gpu").glob("gpu-*.json")
    report = json.loads(report_path.read_text())
    assert report["status"] == "no_gpu" and report["gpu"] is None
    assert "install" not in report  # nothing installed without a GPU
    strict = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "bench", "gpu", "--out", str(tmp_path / "gpu"),
         "--strict"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert strict.returncode == 3


def test_tensorrt_options_cover_every_batch_size_and_cache(tiny_zoo: Path,
                                                           tmp_path: Path) -> None:
    opts = trt_options(tiny_zoo / "spots.onnx", fp16=True, cache_dir=tmp_path / "cache")
    name = opts["trt_profile_min_shapes"].split(":")[0]
    assert opts["trt_profile_min_shapes"] == f"{name}:1x1x32x32"
    assert opts["trt_profile_max_shapes"] == f"{name}:128x1x32x32"
    assert opts["trt_fp16_enable"] == "True" and (tmp_path / "cache").is_dir()
    assert opts["trt_engine_cache_path"] == str(tmp_path / "cache")
    # options of a provider that is not in use are ignored (a CPU-only onnxruntime)
    session = create_session(tiny_zoo / "spots.onnx", providers="CPUExecutionProvider",
                             provider_options={"TensorrtExecutionProvider": opts})
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_fp16_is_accepted_only_where_scores_hold() -> None:
    logits = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
    same = bench_gpu.compare_scores(logits, logits + 1e-4)
    assert same["max_prob_diff"] < bench_gpu.FP16_TOLERANCE and same["decision_agreement"] == 1
    off = bench_gpu.compare_scores(logits, logits[::-1].copy())
    assert off["max_prob_diff"] > bench_gpu.FP16_TOLERANCE and off["decision_agreement"] < 1


def test_measurements_run_with_the_cpu_provider_standing_in(
    tiny_zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not any(DEMO_FRAMES_DIR.glob("*.png")):
        pytest.skip("no demo frames for the emulator")
    for var in ("LINEINSPECT_ENGINE", "LINEINSPECT_PROVIDERS", "LINEINSPECT_TRT_FP16",
                "LINEINSPECT_TRT_CACHE_DIR"):
        monkeypatch.setenv(var, "")  # measure() sets them for the pipeline run: restored here
    monkeypatch.setenv("PYLON_CAMEMU", "1")
    monkeypatch.setenv("LINEINSPECT_DATA_DIR", str(tmp_path / "var"))
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "name: tiny-gpu\nmodels:\n"
        f"  - {{name: seg, path: {tiny_zoo / 'spots.onnx'}, tile: 200, stride: 184}}\n"
    )
    configs = {"cuda": (CPU, False), "tensorrt_fp16": (CPU, True)}
    result = bench_gpu.measure(tiny_zoo, str(recipe), tmp_path / "cache", configs=configs,
                               fps=10.0, seconds=2.0)
    names = {m["model"] for m in result["models"]}
    assert names == {p.name for p in tiny_zoo.glob("*.onnx")}
    for m in result["models"]:
        for label, row in m["configs"].items():
            assert "error" not in row, (m["model"], label, row)
            assert row["providers"][0] == "CPUExecutionProvider"
            assert row["max_prob_diff"] < 1e-5 and row["tiles_per_s_b32"] > 0
        assert m["configs"]["tensorrt_fp16"]["fp16_accepted"] is True
    pipe = result["pipeline"]
    assert pipe["trt_fp16"] is True and pipe["providers"] == list(CPU)
    assert pipe["sustained_fps"] > 0 and pipe["grab_to_verdict_p99_ms"] is not None
    assert isinstance(pipe["goal_met"], bool)
