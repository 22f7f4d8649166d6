"""Inference worker processes sized to the machine (``lineinspect infer``, ``bench pipeline``).

One inference worker is one process: its Python parts (tiling, stitching, post-processing,
the write path) hold the GIL, so threads of one process cannot fill several cores, processes
can. :func:`plan_workers` sizes them: ``LINEINSPECT_INFERENCE_WORKERS`` when set, else one per
core, at most one per GiB of available memory (every worker loads the recipe's models); each
worker gets ``cores // workers`` intra-op threads unless ``LINEINSPECT_ORT_THREADS`` is set.
The workers share the stream's consumer group like workers on other machines do.

:func:`run_worker_processes` starts them (``spawn``: no forked onnxruntime/OpenVINO state),
restarts one that dies (after a pause), and stops them all when ``stop`` is set; a worker
dies with the process that started it (Linux ``PR_SET_PDEATHSIG``), so a killed parent
leaves no worker behind. ``lineinspect infer`` and ``lineinspect run`` both use it; ``run``
also has it report to ``/readyz`` (a starting or dead worker makes the service not ready)
and give up after repeated deaths. With
``LINEINSPECT_METRICS_PORT`` P, worker ``i`` serves its Prometheus metrics on port P + i.
:func:`worker_process` is the child's entry point; ``bench pipeline`` uses it with a
``bench`` dict to measure inside the children.
"""

from __future__ import annotations

import ctypes
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.metrics import LOOP_RESTARTS
from core.recipe import Recipe
from core.settings import Settings
from core.supervise import HEALTHY_RUN_S, LOOPS, GiveUp

log = logging.getLogger(__name__)

GIB = 1024**3
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerPlan:
    """How many inference worker processes, with how many intra-op threads each, and why."""

    workers: int
    threads: int
    reason: str


def plan_workers(
    settings: Settings, cores: int | None = None, available_bytes: int | None = None
) -> WorkerPlan:
    """Workers and threads for this machine (see the module docstring)."""
    cores = max(1, cores or os.cpu_count() or 1)
    if settings.inference_workers > 0:
        n, reason = settings.inference_workers, "LINEINSPECT_INFERENCE_WORKERS"
    else:
        if available_bytes is None:
            import psutil

            available_bytes = int(psutil.virtual_memory().available)
        by_memory = max(1, int(available_bytes // GIB))
        n = max(1, min(cores, by_memory))
        reason = f"{cores} cores, {available_bytes / GIB:.1f} GiB available: one per core"
        if by_memory < cores:
            reason += ", at most one per GiB"
    threads = settings.ort_threads or max(1, cores // n)
    return WorkerPlan(n, threads, reason)


def _die_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel SIGTERM this process when its parent dies, so a killed
    ``lineinspect infer`` leaves no worker consuming the line behind (its pending frames are
    then reclaimed by the other workers, as for any dead worker)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError:  # not Linux: the parent's stop event still ends the worker
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def worker_process(
    settings_json: str,
    recipe_json: str,
    stop: Any,
    ready: Any | None = None,
    bench: dict[str, Any] | None = None,
    parent_pid: int | None = None,
) -> None:
    """Child process: build the recipe's inspector, then run the inference worker until
    ``stop`` (a multiprocessing Event) is set; ``ready`` is set once the models are loaded and
    warmed up. ``bench`` (``{"measure": Event, "out": path}``): stage times and tile counts
    are zeroed when ``measure`` is set, taken when ``stop`` is set and written as JSON to
    ``out`` at the end. ``parent_pid``: die with that process (:func:`_die_with_parent`)."""
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    settings = Settings.model_validate_json(settings_json)
    recipe = Recipe.model_validate_json(recipe_json)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from core.stages import StageTimer
    from deploy.wiring import run_inference_worker
    from inference.pipeline import Inspector

    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port)
    inspector = Inspector(recipe, settings)
    inspector.warmup()
    stages = StageTimer()
    halt = threading.Event()
    snapshot: dict[str, Any] = {}

    def stopper() -> None:
        stop.wait()
        # what was measured up to the stop (frames finished while stopping are not counted)
        snapshot.update(stages=stages.export(), tiles_run=dict(inspector.tiles_run),
                        frames_inspected=inspector.frames_inspected)
        halt.set()

    stopper_thread = threading.Thread(target=stopper, daemon=True)
    stopper_thread.start()
    if bench is not None:
        def measure() -> None:
            bench["measure"].wait()
            stages.reset()
            inspector.reset_counts()

        threading.Thread(target=measure, daemon=True).start()
    if ready is not None:
        ready.set()
    stats = run_inference_worker(
        settings, recipe, halt, inspector=inspector, stages=stages, block_ms=200
    )
    stopper_thread.join(timeout=5)
    if bench is not None:
        Path(bench["out"]).write_text(json.dumps({
            **snapshot,
            "handled": stats.handled,
            "dropped": stats.dropped,
            "engines": inspector.engine_choices,
        }))


def start_worker(
    ctx: Any, settings: Settings, recipe: Recipe, index: int, stop: Any, **kwargs: Any
) -> Any:
    """Start worker ``index`` as a process of ``ctx`` (a multiprocessing context)."""
    own = settings
    if settings.worker_name:
        own = own.model_copy(update={"worker_name": f"{settings.worker_name}-{index}"})
    if settings.metrics_port:  # one Prometheus endpoint per worker process
        own = own.model_copy(update={"metrics_port": settings.metrics_port + index})
    proc = ctx.Process(
        target=worker_process,
        args=(own.model_dump_json(), recipe.model_dump_json(), stop),
        kwargs={"parent_pid": os.getpid(), **kwargs},
        name=f"lineinspect-infer-{index}",
        daemon=False,
    )
    proc.start()
    return proc


def run_worker_processes(
    settings: Settings,
    recipe: Recipe,
    stop: threading.Event,
    restart_after_s: float = 5.0,
    *,
    loop: str | None = None,
    max_failures: int | None = None,
) -> WorkerPlan:
    """Run :func:`plan_workers` many worker processes until ``stop``; restart dead ones.

    ``loop``: report to :data:`core.supervise.LOOPS` under this name (``lineinspect run``:
    ``/readyz`` is not ready while a worker is starting or dead, and
    ``lineinspect_loop_restarts_total`` counts each restart). ``max_failures``: a worker that
    exits that many times in a row (each time within :data:`core.supervise.HEALTHY_RUN_S` of
    its start) stops them all and raises :class:`core.supervise.GiveUp`."""
    plan = plan_workers(settings)
    settings = settings.model_copy(update={"ort_threads": plan.threads})
    log.info("inference: %d worker processes x %d threads (%s)", plan.workers, plan.threads,
             plan.reason)
    pool = _WorkerPool(settings, recipe, plan.workers, loop)
    try:
        while not stop.wait(1.0):
            for i in pool.dead():
                failures = pool.exited(i)
                if max_failures is not None and failures >= max_failures:
                    raise GiveUp(f"inference worker {i} exited {failures} times in a row "
                                 f"(last exit status {pool.procs[i].exitcode})")
                if stop.wait(restart_after_s):
                    break
                pool.start(i)
            pool.report()
    finally:
        pool.stop()
    return plan


class _WorkerPool:
    """The worker processes of :func:`run_worker_processes`, their readiness and failures."""

    def __init__(self, settings: Settings, recipe: Recipe, workers: int,
                 loop: str | None) -> None:
        self.settings, self.recipe, self.loop = settings, recipe, loop
        self.ctx = multiprocessing.get_context("spawn")
        self.stop_event = self.ctx.Event()
        self.procs: list[Any] = [None] * workers
        self.ready: list[Any] = [None] * workers
        self.started = [0.0] * workers
        self.failures = [0] * workers
        for i in range(workers):
            self.start(i)
        self.report()

    def start(self, i: int) -> None:
        """Start (or restart) worker ``i``."""
        self.ready[i] = self.ctx.Event()
        self.procs[i] = start_worker(self.ctx, self.settings, self.recipe, i, self.stop_event,
                                     ready=self.ready[i])
        self.started[i] = time.monotonic()

    def dead(self) -> list[int]:
        """Indexes of the workers that exited."""
        return [i for i, proc in enumerate(self.procs) if not proc.is_alive()]

    def exited(self, i: int) -> int:
        """Record that worker ``i`` exited; its consecutive failures so far."""
        if time.monotonic() - self.started[i] > HEALTHY_RUN_S:
            self.failures[i] = 0
        self.failures[i] += 1
        why = f"inference worker {i} exited with {self.procs[i].exitcode}"
        log.error("%s; restarting", why)
        if self.loop is not None:
            LOOPS.trouble(self.loop, why)
            LOOP_RESTARTS.labels(loop=self.loop).inc()
        return self.failures[i]

    def report(self) -> None:
        """Tell :data:`LOOPS` whether every worker is up with its models loaded."""
        if self.loop is None:
            return
        up = sum(1 for p, r in zip(self.procs, self.ready, strict=True)
                 if p.is_alive() and r.is_set())
        if up == len(self.procs):
            LOOPS.beat(self.loop)
        else:
            LOOPS.trouble(self.loop, f"{up} of {len(self.procs)} inference worker processes "
                                     "running with their models loaded")

    def stop(self) -> None:
        """Stop every worker (SIGTERM after 30 s, as a last resort)."""
        self.stop_event.set()
        deadline = time.monotonic() + 30
        for proc in self.procs:
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
