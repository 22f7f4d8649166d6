"""``lineinspect bench soak``: ``lineinspect run`` (what ``make run`` starts) for minutes at
a fixed camera rate, with the memory of every process it consists of sampled throughout.

The service runs as it ships - embedded Redis, SQLite, the pylon emulator replaying the demo
frames, inference worker processes sized as ``run`` sizes them (or ``workers``) and the API -
in a temporary data folder, as a child process. Every ``interval_s`` the RSS of each process
of its tree is recorded under a stable label (``service``, ``worker-1``.., ``redis-server``,
``resource-tracker``; a worker that is replaced gets a new label), with the line's counts:
frames grabbed and dropped (the service's ``/metrics``), inspections logged by verdict (the
inspection log; ``UNKNOWN`` = skipped as too late, or not inspectable), frames waiting in the
stream, and the load average (a shared machine shows here). Sampling starts once the first
live verdict is logged; the first ``warmup_s`` seconds are recorded but not measured.

The summary per process: RSS at the start of the measured window, at its end, the maximum
and the least-squares slope in MB/min; frames inspected, skipped and dropped in the window.
The service is stopped with SIGTERM at the end, and the report says whether any of its
processes outlived it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from core.bus import stream_key

ROOT = Path(__file__).resolve().parents[1]
LINE = "soak"
MB = 1024 * 1024


def process_kind(proc: psutil.Process, service_pid: int) -> str:
    """``service``, ``worker``, ``redis-server``, ``resource-tracker`` or ``other``."""
    if proc.pid == service_pid:
        return "service"
    cmd = " ".join(proc.cmdline())
    if "redis-server" in cmd:
        return "redis-server"
    if "resource_tracker" in cmd:
        return "resource-tracker"
    if "spawn_main" in cmd:
        return "worker"
    return "other"


class TreeSampler:
    """RSS of every process of a tree, each under a label that stays with its pid."""

    def __init__(self, root_pid: int) -> None:
        self.root = psutil.Process(root_pid)
        self.labels: dict[int, tuple[str, str]] = {}  # pid -> (label, kind)
        self._count: dict[str, int] = {}

    def _label(self, proc: psutil.Process) -> tuple[str, str]:
        if proc.pid not in self.labels:
            kind = process_kind(proc, self.root.pid)
            self._count[kind] = self._count.get(kind, 0) + 1
            label = f"{kind}-{self._count[kind]}" if kind in ("worker", "other") else kind
            if label in {lab for lab, _ in self.labels.values()}:
                label = f"{label}-{proc.pid}"
            self.labels[proc.pid] = (label, kind)
        return self.labels[proc.pid]

    def sample(self) -> dict[str, dict[str, Any]]:
        """``{label: {kind, pid, rss}}`` of the processes alive now."""
        out: dict[str, dict[str, Any]] = {}
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return out
        for proc in procs:
            try:
                rss = proc.memory_info().rss
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                label, kind = self._label(proc)
            except psutil.Error:
                continue
            out[label] = {"kind": kind, "pid": proc.pid, "rss": rss}
        return out


def line_counts(base: str, data_dir: Path) -> dict[str, int]:
    """Frames grabbed/dropped (``/metrics``), inspections by verdict (the log), stream length."""
    import redis
    from prometheus_client.parser import text_string_to_metric_families

    from core.settings import Settings
    from storage.db import get_engine
    from storage.repository import InspectionRepository

    counts = {"grabbed": 0, "dropped": 0}
    names = {"lineinspect_frames": "grabbed", "lineinspect_frames_dropped": "dropped"}
    text = httpx.get(f"{base}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = names.get(s.name.removesuffix("_total"))
            if key and s.name.endswith("_total") and s.labels.get("line") == LINE:
                counts[key] = int(s.value)
    engine = get_engine(Settings(data_dir=data_dir, database_url=""))
    try:
        repo = InspectionRepository(engine)
        for verdict in ("OK", "NG", "UNKNOWN"):
            counts[verdict] = repo.count(LINE, verdict)
    finally:
        engine.dispose()
    client = redis.Redis(unix_socket_path=str(data_dir / "redis" / "redis.sock"),
                         socket_timeout=5)
    try:
        counts["stream_len"] = int(client.xlen(stream_key(LINE)))
    finally:
        client.close()
    return counts


def summarize(samples: list[dict[str, Any]], measure_from_s: float) -> dict[str, Any]:
    """Per process RSS start/end/max (MB) and slope (MB/min) over the measured window;
    frames inspected, skipped and dropped in it."""
    window = [s for s in samples if s["t"] >= measure_from_s]
    if len(window) < 2:
        raise RuntimeError("fewer than two samples in the measured window: soak longer")
    processes: dict[str, dict[str, Any]] = {}
    for label in dict.fromkeys(lab for s in window for lab in s["processes"]):
        points = [(s["t"], s["processes"][label]) for s in window if label in s["processes"]]
        t = np.array([p[0] for p in points]) / 60.0
        rss = np.array([p[1]["rss"] for p in points]) / MB
        slope = float(np.polyfit(t, rss, 1)[0]) if len(points) >= 2 else 0.0
        processes[label] = {
            "kind": points[0][1]["kind"], "pid": points[0][1]["pid"], "samples": len(points),
            "rss_start_mb": round(float(rss[0]), 1), "rss_end_mb": round(float(rss[-1]), 1),
            "rss_max_mb": round(float(rss.max()), 1), "slope_mb_per_min": round(slope, 3),
        }
    first, last = window[0], window[-1]
    minutes = (last["t"] - first["t"]) / 60.0

    def delta(key: str) -> int:
        return int(last["frames"][key] - first["frames"][key])

    inspected = _inspected(last["frames"]) - _inspected(first["frames"])
    frames = {
        "measured_min": round(minutes, 2),
        "grabbed": delta("grabbed"),
        "inspected": inspected,
        "skipped_unknown": delta("UNKNOWN"),
        "dropped": delta("dropped"),
        "inspected_per_s": round(inspected / (minutes * 60), 3) if minutes else 0.0,
        "stream_len_max": max(s["frames"]["stream_len"] for s in window),
        "load_avg_1m_mean": round(float(np.mean([s["load_1m"] for s in window])), 2),
    }
    return {"processes": processes, "frames": frames}


def _inspected(counts: dict[str, int]) -> int:
    """Frames inspected (logged with a live verdict, OK or NG)."""
    return counts["OK"] + counts["NG"]


def _poll(what: str, check: Callable[[], Any], proc: subprocess.Popen, log: Path,
          timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lineinspect run exited with {proc.returncode} waiting for "
                               f"{what}:\n{log.read_text()[-3000:]}")
        try:
            value = check()
        except (httpx.HTTPError, psutil.Error, OSError):
            value = None
        if value:
            return value
        time.sleep(1.0)
    raise RuntimeError(f"no {what} after {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def run_soak(
    minutes: float, fps: float, *, workers: int | None = None, interval_s: float = 5.0,
    warmup_s: float = 60.0, recipe: str = "",
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Run ``lineinspect run`` for ``warmup_s`` + ``minutes`` at ``fps``; the report."""
    data_dir = Path(tempfile.mkdtemp(prefix="lineinspect-soak-"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYLON_CAMEMU": "1",
           "LINEINSPECT_DATA_DIR": str(data_dir), "LINEINSPECT_REDIS_URL": "",
           "LINEINSPECT_DATABASE_URL": "", "LINEINSPECT_API_HOST": "127.0.0.1",
           "LINEINSPECT_API_PORT": str(port), "LINEINSPECT_LINE_ID": LINE,
           "LINEINSPECT_FRAME_RATE": str(fps), "LINEINSPECT_LOG_LEVEL": "WARNING"}
    if workers is not None:
        env["LINEINSPECT_INFERENCE_WORKERS"] = str(workers)
    if recipe:
        env["LINEINSPECT_RECIPE"] = recipe
    log = data_dir / "run.log"
    samples: list[dict[str, Any]] = []
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "run"], cwd=data_dir,
                                    env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            sampler = TreeSampler(proc.pid)
            _poll("live verdict", lambda: _inspected(line_counts(base, data_dir)), proc, log,
                  timeout_s=600)
            started = time.monotonic()
            total_s = warmup_s + minutes * 60.0
            while True:
                t = time.monotonic() - started
                samples.append({"t": round(t, 2), "processes": sampler.sample(),
                                "frames": line_counts(base, data_dir),
                                "load_1m": os.getloadavg()[0]})
                if progress is not None:
                    progress(min(1.0, t / total_s))
                if t >= total_s or proc.poll() is not None:
                    break
                time.sleep(max(0.0, min(interval_s, total_s - t)))
            if proc.poll() is not None:
                raise RuntimeError(f"lineinspect run exited with {proc.returncode} during the "
                                   f"soak:\n{log.read_text()[-3000:]}")
            children = sampler.root.children(recursive=True)
            proc.send_signal(signal.SIGTERM)
            exit_status = proc.wait(120)
            _gone, alive = psutil.wait_procs(children, timeout=30)
            left = [" ".join(p.cmdline()) for p in alive if p.is_running()]
            for p in alive:
                p.kill()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        text = log.read_text(errors="replace")
        report = {
            "config": {"minutes": minutes, "fps": fps, "workers": workers,
                       "interval_s": interval_s, "warmup_s": warmup_s,
                       "recipe": recipe or "steel-strip", "cores": os.cpu_count(),
                       "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1)},
            "summary": summarize(samples, warmup_s),
            "exit_status": exit_status,
            "children_left": left,
            "log": {"errors": text.count(" ERROR "), "tracebacks": text.count("Traceback")},
            "samples": samples,
        }
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return report


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
