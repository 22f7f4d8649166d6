"""``lineinspect bench models``: every zoo model on onnxruntime, PyTorch eager and OpenVINO.

For each ONNX file in the zoo folder, at each batch size, the three engines get the *same*
float32 NCHW input (seeded random values at the model's ``input_size``) and the *same* number
of threads, are warmed up, and are then timed call by call for ``seconds``:

* ``onnxruntime``: the service's backend (:class:`inference.backends.onnxruntime.
  OnnxRuntimeBackend`: the session options every model runs with, CPU provider, threads);
* ``pytorch``: the architecture rebuilt from ``models/arch`` (:mod:`deploy.bench_torch`) in
  eager mode under ``torch.inference_mode()`` with ``torch.set_num_threads(threads)``;
* ``openvino``: the service's OpenVINO backend (:class:`inference.backends.openvino.
  OpenVinoBackend`) on the same ONNX file, reshaped to the batch, compiled for CPU with
  ``INFERENCE_NUM_THREADS = threads``, f32 precision and the latency hint (one stream,
  synchronous requests: the same work pattern as the other two).

Both engines' ``run`` return a fresh output array, as the service needs.

An engine that cannot run a model (OpenVINO not installed, no architecture name for
PyTorch, an INT8 artifact for PyTorch) is skipped and the reason is written to the console
and to the JSON (``skipped``).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from inference.backends import BackendUnavailable

ENGINES = ("onnxruntime", "pytorch", "openvino")
Runner = Callable[[np.ndarray], object]


@dataclass
class Timing:
    """Per-call latencies of one (model, engine, batch) measurement."""

    batch: int
    seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float | int]:
        """``tiles_per_s`` (tiles / total call time), ``p50_ms``, ``p99_ms``, ``calls``."""
        total = sum(self.seconds)
        ms = np.asarray(self.seconds) * 1000.0
        return {
            "tiles_per_s": round(self.batch * len(self.seconds) / total, 2) if total else 0.0,
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "calls": len(self.seconds),
        }


def measure(
    fn: Runner, x: np.ndarray, seconds: float, warmup: int = 3, min_calls: int = 5
) -> Timing:
    """Call ``fn(x)`` ``warmup`` times (and for at least a tenth of ``seconds``), then time
    every call for ``seconds`` (at least ``min_calls`` calls)."""
    t_warm = time.perf_counter() + 0.1 * seconds
    done = 0
    while done < warmup or time.perf_counter() < t_warm:
        fn(x)
        done += 1
    timing = Timing(batch=int(x.shape[0]))
    t_end = time.perf_counter() + seconds
    while len(timing.seconds) < min_calls or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn(x)
        timing.seconds.append(time.perf_counter() - t0)
    return timing


def _cpuinfo(field: str) -> str | None:
    """The first ``field`` value of /proc/cpuinfo (``model name``, ``flags``), or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


#: CPU features that decide how onnxruntime's INT8 kernels compute: without VNNI (AVX2 only)
#: u8s8 products can saturate, which is why ``lineinspect quantize`` uses a 7-bit weight range.
INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def _int8_flags() -> list[str]:
    """Which of :data:`INT8_FLAGS` this CPU has (empty where /proc/cpuinfo cannot be read)."""
    have = set((_cpuinfo("flags") or "").split())
    return [f for f in INT8_FLAGS if f in have]


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - not installed
        return None


def machine_info() -> dict[str, Any]:
    """CPU (and its INT8-relevant features), cores, OS, Python and engine versions, load
    average and the date (UTC)."""
    import onnxruntime as ort

    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:  # pragma: no cover - psutil is a dependency
        physical = None
    return {
        "cpu": _cpu_name(),
        "int8_flags": _int8_flags(),
        "cores": os.cpu_count(),
        "physical_cores": physical,
        "os": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "torch": _version("torch"),
        "openvino": _version("openvino"),
        "numpy": np.__version__,
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# -- engines ----------------------------------------------------------------------------------
def ort_runner(path: Path, threads: int) -> tuple[Runner, str]:
    """The service's onnxruntime backend (CPU provider, the settings' spinning)."""
    from core.settings import Settings
    from inference.backends.onnxruntime import OnnxRuntimeBackend

    spinning = Settings().ort_spinning
    backend = OnnxRuntimeBackend(
        path, providers="CPUExecutionProvider", threads=threads, spinning=spinning
    )
    return backend.run, f"{backend.describe()}, spinning {spinning}"


def openvino_runner(path: Path, threads: int, shape: Sequence[int]) -> tuple[Runner, str]:
    """The service's OpenVINO backend (CPU, f32, latency hint) compiled for ``shape``."""
    from inference.backends.openvino import OpenVinoBackend

    backend = OpenVinoBackend(path, threads=threads, shape=shape)
    return backend.run, backend.describe()


def torch_runner(
    path: Path, threads: int, checkpoint_dir: Path | None
) -> tuple[Runner, str]:
    """PyTorch eager with the same weights (see :mod:`deploy.bench_torch`); an INT8 artifact
    has no eager equivalent (:class:`BackendUnavailable`)."""
    if ".int8" in Path(path).name:
        raise BackendUnavailable("INT8 artifact: no PyTorch eager equivalent")
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailable("torch is not installed (pip install -e '.[train]')") from exc
    from deploy.bench_torch import build_torch_model

    net, note = build_torch_model(path, checkpoint_dir)
    torch.set_num_threads(int(threads))

    def run(x: np.ndarray) -> object:
        with torch.inference_mode():
            return net(torch.from_numpy(x))

    return run, note


# -- the benchmark ----------------------------------------------------------------------------
@dataclass
class ModelInfo:
    """What the benchmark needs to know about one zoo file."""

    name: str
    path: Path
    task: str
    channels: int
    input_size: tuple[int, int]

    @property
    def tile(self) -> int | list[int]:
        """Input edge in pixels (``[H, W]`` when not square)."""
        h, w = self.input_size
        return h if h == w else [h, w]


def discover(models_dir: Path) -> list[ModelInfo]:
    """Every ``*.onnx`` in ``models_dir`` with valid artifact metadata, sorted by name."""
    from core.model_meta import read_meta

    found = []
    for path in sorted(Path(models_dir).glob("*.onnx")):
        meta = read_meta(path)
        found.append(ModelInfo(path.stem, path, meta.task, meta.channels, meta.input_size))
    return found


def run_benchmark(
    models_dir: Path,
    batches: Sequence[int] = (1, 8, 32),
    threads: int = 2,
    seconds: float = 3.0,
    engines: Sequence[str] = ENGINES,
    checkpoint_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure every model x batch x engine; returns the report (see module docstring).

    ``progress(label)`` is called before each measurement (a progress bar advances on it).
    """
    models = discover(models_dir)
    if not models:
        raise FileNotFoundError(f"no *.onnx models in {models_dir}")
    report: dict[str, Any] = {
        "machine": machine_info(),
        "settings": {
            "models_dir": str(models_dir),
            "threads": threads,
            "batches": list(batches),
            "seconds": seconds,
            "engines": list(engines),
            "input": "float32 NCHW, standard normal, seed 0, identical for every engine",
        },
        "models": {},
        "skipped": [],
        "results": [],
    }
    for info in models:
        notes: dict[str, str] = {}
        report["models"][info.name] = {
            "path": str(info.path),
            "task": info.task,
            "channels": info.channels,
            "input_size": list(info.input_size),
            "notes": notes,
        }
        torch_net: tuple[Runner, str] | None = None
        torch_error: str | None = None
        ort_run: tuple[Runner, str] | None = None
        for batch in batches:
            shape = (int(batch), info.channels, *info.input_size)
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            for engine in engines:
                if progress:
                    progress(f"{info.name} b{batch} {engine}")
                try:
                    if engine == "onnxruntime":
                        ort_run = ort_run or ort_runner(info.path, threads)
                        fn, note = ort_run
                    elif engine == "openvino":
                        fn, note = openvino_runner(info.path, threads, shape)
                    elif engine == "pytorch":
                        if torch_error:
                            raise BackendUnavailable(torch_error)
                        torch_net = torch_net or torch_runner(info.path, threads, checkpoint_dir)
                        fn, note = torch_net
                    else:
                        raise BackendUnavailable(f"unknown engine {engine!r}")
                except BackendUnavailable as exc:
                    torch_error = str(exc) if engine == "pytorch" else torch_error
                    if not any(
                        s["model"] == info.name and s["engine"] == engine
                        for s in report["skipped"]
                    ):
                        report["skipped"].append(
                            {"model": info.name, "engine": engine, "reason": str(exc)}
                        )
                    continue
                notes[engine] = note
                row = {
                    "model": info.name,
                    "tile": info.tile,
                    "engine": engine,
                    "batch": int(batch),
                    **measure(fn, x, seconds).summary(),
                }
                report["results"].append(row)
    return report


def ratios(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (model, batch): tiles/s per engine and ORT/PyTorch, ORT/OpenVINO."""
    table: dict[tuple[str, int], dict[str, Any]] = {}
    for r in report["results"]:
        row = table.setdefault((r["model"], r["batch"]), {"model": r["model"], "batch": r["batch"]})
        row[r["engine"]] = r["tiles_per_s"]
    out = []
    for row in table.values():
        ort_tps = row.get("onnxruntime")
        for engine, key in (("pytorch", "ort_over_pytorch"), ("openvino", "ort_over_openvino")):
            other = row.get(engine)
            row[key] = round(ort_tps / other, 2) if ort_tps and other else None
        out.append(row)
    return out


def print_report(report: dict[str, Any], console: Any) -> None:
    """Rich table of tiles/s and p99 per engine with the ratios; skipped engines below."""
    from rich.table import Table

    table = Table(title=f"bench models ({report['settings']['threads']} threads, tiles/s)")
    for col in ("model", "batch", "ORT", "PyTorch", "OpenVINO", "ORT/PT", "ORT/OV"):
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    for row in ratios(report):

        def fmt(v: float | None, ratio: bool = False) -> str:
            if v is None:
                return "-"
            if ratio:
                colour = "green" if v >= 1.0 else "red"
                return f"[{colour}]{v:.2f}x[/{colour}]"
            return f"{v:,.1f}"

        table.add_row(
            row["model"],
            str(row["batch"]),
            *(fmt(row.get(e)) for e in ENGINES),
            fmt(row["ort_over_pytorch"], True),
            fmt(row["ort_over_openvino"], True),
        )
    console.print(table)
    for s in report["skipped"]:
        console.print(f"[yellow]skipped[/yellow] {s['model']} on {s['engine']}: {s['reason']}")
    for name, m in report["models"].items():
        if "pytorch" in m["notes"]:
            console.print(f"{name} pytorch: {m['notes']['pytorch']}")


def save_plot(report: dict[str, Any], path: Path) -> Path | None:
    """Tiles/s against batch size, one line per engine, one panel per model (PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = list(report["models"])
    cols = min(len(names), 3) or 1
    rows = (len(names) + cols - 1) // cols or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for engine in ENGINES:
            pts = sorted(
                (r["batch"], r["tiles_per_s"])
                for r in report["results"]
                if r["model"] == name and r["engine"] == engine
            )
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=engine)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{name} ({report['models'][name]['input_size'][0]} px)")
        ax.set_xlabel("batch")
        ax.set_ylabel("tiles/s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    m = report["machine"]
    fig.suptitle(
        f"{m['cpu']}, {report['settings']['threads']} threads, {m['date'][:10]}", fontsize=9
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(report: dict[str, Any], out: Path) -> Path | None:
    """Write the JSON to ``out`` and the plot beside it (``out`` with ``.png``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return save_plot(report, out.with_suffix(".png"))

