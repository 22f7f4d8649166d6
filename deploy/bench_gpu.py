"""``lineinspect bench gpu``: the GPU check, in one go, on a machine with an NVIDIA GPU.

1. **GPU?** ``nvidia-smi`` names the GPU and driver. None: the report says so
   (``status: no_gpu``) and nothing else runs - a clear message, not a traceback.
2. **Install** (unless onnxruntime already has the CUDA provider): ``onnxruntime-gpu`` and the
   CUDA 12 / cuDNN / TensorRT libraries from the package registry (or ``--wheels DIR``
   offline) into ``<data dir>/gpu-site`` with ``pip --target``, so the project's CPU
   onnxruntime stays as it is; the measurements then run in a child process that sees that
   folder first.
3. **Every zoo model** (the recipe's first, the rest after step 4) on the CUDA provider and
   on TensorRT at fp32 and fp16: scores on the golden images against onnxruntime's CPU fp32
   (the engine the models were validated on), tiles/s at batch 1 and 32. fp16 is *accepted*
   for a model only when its probabilities stay within :data:`FP16_TOLERANCE` of fp32 and its
   decisions (argmax per tile or pixel) agree on at least :data:`FP16_AGREEMENT`.
4. **The line**: ``bench pipeline`` of the recipe (steel-strip) with the camera emulator at
   30 fps for 60 s on TensorRT (fp16 where every model of the recipe accepted it) with
   CUDA as fallback: grab-to-verdict p50/p99, dropped, and whether the goal holds
   (p99 < 50 ms, nothing dropped).

The JSON report goes to ``--out`` (``docs/perf/gpu/`` to commit). ``--max-minutes`` bounds
the whole run (TensorRT engine builds dominate; they are cached under ``<data dir>/trt-cache``
and reused by the pipeline run); what did not fit is listed as skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Largest probability difference to CPU fp32 for fp16 to be accepted.
FP16_TOLERANCE = 1e-2
#: Least share of equal decisions (argmax per tile / pixel) for fp16 to be accepted.
FP16_AGREEMENT = 0.995
#: What step 2 installs (CUDA 12 builds); TensorRT 10 is what onnxruntime's TensorRT EP links.
GPU_PACKAGES = (
    "onnxruntime-gpu",
    "nvidia-cuda-runtime-cu12",
    "nvidia-cuda-nvrtc-cu12",
    "nvidia-cublas-cu12",
    "nvidia-cudnn-cu12",
    "nvidia-cufft-cu12",
    "nvidia-curand-cu12",
    "nvidia-nvjitlink-cu12",
    "tensorrt-cu12-libs>=10,<11",
)
#: Device configurations each model runs on: label -> (providers, TensorRT fp16).
CONFIGS: dict[str, tuple[tuple[str, ...], bool]] = {
    "cuda": (("CUDAExecutionProvider",), False),
    "tensorrt_fp32": (("TensorrtExecutionProvider", "CUDAExecutionProvider"), False),
    "tensorrt_fp16": (("TensorrtExecutionProvider", "CUDAExecutionProvider"), True),
}


def gpu_info() -> dict[str, Any] | None:
    """Name, driver and memory of the first GPU ``nvidia-smi`` reports (None: no GPU)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return None
    if not out:
        return None
    name, driver, memory = (v.strip() for v in out.splitlines()[0].split(",", 2))
    return {"name": name, "driver": driver, "memory": memory, "count": len(out.splitlines())}


def has_cuda_provider() -> bool:
    """Whether the importable onnxruntime offers the CUDA execution provider."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def site_env(site: Path) -> dict[str, str]:
    """Environment of a child process that imports the GPU packages from ``site`` first and
    finds their shared libraries (CUDA, cuDNN, TensorRT)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([str(site), root, env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)
    libs = sorted(str(p) for p in site.glob("nvidia/*/lib")) + [str(site / "tensorrt_libs")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs + [env.get("LD_LIBRARY_PATH", "")]).rstrip(
        os.pathsep)
    return env


def install(site: Path, wheels: Path | None, timeout_s: float) -> dict[str, Any]:
    """``pip install --target site`` of :data:`GPU_PACKAGES`; returns what happened."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade",
           "--target", str(site), *GPU_PACKAGES]
    if wheels is not None:
        cmd[4:4] = ["--no-index", "--find-links", str(wheels)]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        ok, tail = res.returncode == 0, (res.stdout + res.stderr)[-2000:]
    except subprocess.TimeoutExpired:
        ok, tail = False, f"pip did not finish within {timeout_s:.0f} s"
    return {"ok": ok, "seconds": round(time.perf_counter() - t0, 1), "packages": GPU_PACKAGES,
            "command": " ".join(cmd), "log_tail": tail if not ok else ""}


# -- measurements (in the process that has the GPU onnxruntime) -----------------------------
def _decisions(probs: np.ndarray) -> np.ndarray:
    return probs.argmax(axis=1)


def compare_scores(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Largest probability difference and share of equal decisions (softmax over axis 1)."""
    from inference.postprocess import softmax

    p, q = softmax(reference, axis=1), softmax(other, axis=1)
    return {
        "max_prob_diff": float(np.abs(p - q).max(initial=0.0)),
        "decision_agreement": float((_decisions(p) == _decisions(q)).mean()) if p.size else 1.0,
    }


def tiles_per_s(run: Any, x: np.ndarray, seconds: float) -> float:
    """Tiles per second of ``run(x)`` over about ``seconds`` (after two warm-up calls)."""
    run(x)
    run(x)
    calls, t0 = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - t0 < seconds:
        run(x)
        calls += 1
    return round(len(x) * calls / (time.perf_counter() - t0), 1)


def check_model(
    path: Path,
    configs: dict[str, tuple[tuple[str, ...], bool]],
    images: list[np.ndarray],
    cache_dir: Path,
    seconds: float = 1.0,
) -> dict[str, Any]:
    """One model on every configuration: providers used, scores vs CPU fp32, tiles/s."""
    from inference.backends.onnxruntime import trt_options
    from inference.model import OnnxModel

    cpu = OnnxModel(path, "onnxruntime", providers="CPUExecutionProvider")
    reference = cpu.predict(images, batch_size=8)
    out: dict[str, Any] = {"model": path.name, "configs": {}}
    for label, (providers, fp16) in configs.items():
        row: dict[str, Any] = {}
        try:
            options = None
            if "TensorrtExecutionProvider" in providers:
                options = {"TensorrtExecutionProvider": trt_options(
                    path, fp16=fp16, cache_dir=cache_dir)}
            model = OnnxModel(path, "onnxruntime", providers=list(providers),
                              provider_options=options)
            row["providers"] = model.providers
            row |= compare_scores(reference, model.predict(images, batch_size=8))
            if fp16:
                row["fp16_accepted"] = (row["max_prob_diff"] <= FP16_TOLERANCE
                                        and row["decision_agreement"] >= FP16_AGREEMENT)
            c, (h, w) = model.meta.channels, model.meta.input_size
            fixed = model.backend.input_shape()[0]
            for batch in (1, 32):
                if isinstance(fixed, int) and fixed != batch:
                    continue  # a graph with a fixed batch size
                x = np.random.default_rng(0).standard_normal((batch, c, h, w), np.float32)
                row[f"tiles_per_s_b{batch}"] = tiles_per_s(model.run, x, seconds)
        except Exception as exc:  # noqa: BLE001 - one failing config is a finding, not the end
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        out["configs"][label] = row
    return out


def golden_images(limit: int = 8) -> list[np.ndarray]:
    """The golden images shipped with the zoo and the demo frames (at most ``limit``)."""
    import cv2

    from core.settings import DEMO_FRAMES_DIR, REPO_ROOT

    paths = sorted((REPO_ROOT / "models" / "zoo" / "golden").glob("*.png"))
    paths += sorted(DEMO_FRAMES_DIR.glob("*.png"))
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in paths[:limit]]


def measure(
    models_dir: Path,
    recipe: str,
    cache_dir: Path,
    *,
    configs: dict[str, tuple[tuple[str, ...], bool]] | None = None,
    fps: float = 30.0,
    seconds: float = 60.0,
    deadline: float = float("inf"),
    frames_dir: Path | None = None,
) -> dict[str, Any]:
    """Steps 3 and 4 (see the module docstring); ``deadline`` (``time.monotonic``) skips what
    would start after it."""
    from core.recipe import load_recipe
    from deploy.bench_pipeline import run_pipeline_bench

    configs = configs or CONFIGS
    images = golden_images()
    rec = load_recipe(recipe)
    files = {s.resolved_path().name for s in rec.models}
    # the recipe's models first, then the line, then the rest of the zoo with the time left
    paths = sorted(models_dir.glob("*.onnx"), key=lambda p: (p.name not in files, p.name))
    models: list[dict[str, Any]] = []
    skipped: list[str] = []

    def check(selected: list[Path], reserve_s: float) -> None:
        for path in selected:
            if time.monotonic() + reserve_s > deadline:
                skipped.append(path.name)
                continue
            models.append(check_model(path, configs, images, cache_dir))

    check([p for p in paths if p.name in files], 0.0)
    fp16_rows = [m["configs"].get("tensorrt_fp16", {}) for m in models if m["model"] in files]
    fp16 = len(fp16_rows) == len(files) and all(r.get("fp16_accepted") for r in fp16_rows)
    device = [p for p in configs.get("tensorrt_fp16", configs[next(iter(configs))])[0]]
    pipeline: dict[str, Any] = {"providers": device, "trt_fp16": fp16}
    if time.monotonic() + seconds + 60 > deadline:
        pipeline["skipped"] = "no time left within --max-minutes"
    else:
        os.environ.update(LINEINSPECT_ENGINE="onnxruntime", LINEINSPECT_PROVIDERS=",".join(
            device), LINEINSPECT_TRT_FP16="true" if fp16 else "false",
            LINEINSPECT_TRT_CACHE_DIR=str(cache_dir))
        report = run_pipeline_bench(recipe, seconds, fps=fps, warmup=5.0, workers=1,
                                    scaling=False, peak_seconds=0, frames_dir=frames_dir)
        p99, dropped = report["grab_to_verdict_p99_ms"], report["dropped_pct"]
        pipeline |= {
            "sustained_fps": report["sustained_fps"], "grab_fps": report["grab_fps"],
            "grab_to_verdict_p50_ms": report["grab_to_verdict_p50_ms"],
            "grab_to_verdict_p99_ms": p99, "dropped_pct": dropped,
            "backlog_at_stop": report["frames"]["backlog_at_stop"],
            "goal_met": bool(p99 is not None and p99 < 50.0 and dropped == 0.0
                             and report["sustained_fps"] >= 0.95 * fps),
            "engines": report.get("engines"), "stages": report["stages"],
        }
    check([p for p in paths if p.name not in files], 0.0)
    return {"models": models, "skipped_models": skipped, "pipeline": pipeline,
            "fp16_tolerance": FP16_TOLERANCE, "fp16_agreement": FP16_AGREEMENT}


# -- the whole check -----------------------------------------------------------------------
def run_gpu_check(
    out_dir: Path,
    *,
    data_dir: Path,
    recipe: str = "steel-strip",
    models_dir: Path | None = None,
    do_install: bool = True,
    wheels: Path | None = None,
    max_minutes: float = 10.0,
    fps: float = 30.0,
    seconds: float = 60.0,
) -> tuple[dict[str, Any], Path]:
    """Steps 1-4; writes ``out_dir/gpu-<date>.json`` and returns (report, path)."""
    from core.settings import REPO_ROOT
    from deploy.bench_models import machine_info

    start = time.monotonic()
    deadline = start + max_minutes * 60.0
    models_dir = models_dir or REPO_ROOT / "models" / "zoo"
    report: dict[str, Any] = {"machine": machine_info(), "gpu": gpu_info(), "recipe": recipe}
    if report["gpu"] is None:
        report["status"] = "no_gpu"
        report["message"] = ("no NVIDIA GPU here (nvidia-smi missing or reports none): the GPU "
                             "check needs one; nothing was installed or measured")
        return report, _write(report, out_dir)
    site, cache = data_dir / "gpu-site", data_dir / "trt-cache"
    cache.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if has_cuda_provider():
        report["install"] = {"ok": True, "skipped": "onnxruntime already has CUDA"}
    elif not do_install:
        report["install"] = {"ok": False, "skipped": "--no-install"}
    else:
        report["install"] = install(site, wheels, timeout_s=max(60.0, deadline - time.monotonic()
                                                                 - 120.0))
        env = site_env(site)
    if not report["install"]["ok"]:
        report["status"] = "install_failed"
        report["message"] = ("onnxruntime-gpu could not be installed; see install.log_tail "
                             "(offline machine: pass --wheels DIR with the wheels)")
        return report, _write(report, out_dir)
    child = [sys.executable, "-m", "deploy.bench_gpu", "--measure", str(models_dir), recipe,
             str(cache), str(fps), str(seconds), str(deadline - time.monotonic())]
    try:
        res = subprocess.run(child, capture_output=True, text=True, env=env, cwd=REPO_ROOT,
                             timeout=max(30.0, deadline - time.monotonic() + 60.0))
        tail = (res.stdout + res.stderr)[-3000:]
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
        if res.returncode == 0 and lines:
            report |= json.loads(lines[-1])
            report["status"] = "measured"
        else:
            report["status"], report["log_tail"] = "measure_failed", tail
    except subprocess.TimeoutExpired:
        report["status"] = "timed_out"
    report["wall_s"] = round(time.monotonic() - start, 1)
    return report, _write(report, out_dir)


def _write(report: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = report["machine"]["date"][:16].replace(":", "").replace("-", "")
    path = out_dir / f"gpu-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    return path


def _measure_main(argv: list[str]) -> None:
    """Child entry (``python -m deploy.bench_gpu --measure ...``): prints the JSON line."""
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from the nvidia-* wheels
        ort.preload_dlls()
    models_dir, recipe, cache, fps, seconds, left = argv
    result = measure(Path(models_dir), recipe, Path(cache), fps=float(fps),
                     seconds=float(seconds), deadline=time.monotonic() + float(left))
    result["onnxruntime"] = {"version": ort.__version__,
                             "providers": ort.get_available_providers()}
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        _measure_main(sys.argv[2:])
