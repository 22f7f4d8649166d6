"""``lineinspect run``: the whole service in one process, for a single machine or a demo.

Starts the embedded Redis (unless ``LINEINSPECT_REDIS_URL`` is set), migrates the database
(SQLite unless ``LINEINSPECT_DATABASE_URL`` is set), then runs the acquisition worker in a
thread, the inference workers sized to the machine like ``lineinspect infer``'s
(:mod:`deploy.workers`: one process per core unless ``LINEINSPECT_INFERENCE_WORKERS`` says
otherwise; a single worker runs in a thread of this process) and the API in the main thread.
The worker processes reach the embedded Redis on its unix socket and die with this process.
Without a real camera, ``PYLON_CAMEMU=1`` makes the pylon emulator replay the demo frames; a
real camera is used through exactly the same code.
Ctrl-C (SIGINT) or SIGTERM stops the workers and the server cleanly.

Every loop is supervised (:mod:`core.supervise`, docs/CONTRACT.md section 6): the grab and
inference loops are restarted with back-off when they fail (a dead worker process is started
again, and ``/readyz`` is not ready until it has loaded its models), the embedded Redis is
restarted when it exits (:mod:`core.embedded_redis`). A loop (or a worker process) that
fails :data:`MAX_FAILURES` times in a row, or an embedded Redis that cannot be restarted,
stops the process with exit status 1 (``/healthz`` answers 503 meanwhile), so that systemd
or Docker restart the whole service.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from core.recipe import Recipe, load_recipe
from core.settings import Settings
from deploy.workers import WorkerPlan, plan_workers, run_worker_processes

if TYPE_CHECKING:
    from inference.pipeline import Inspector

log = logging.getLogger(__name__)

#: Consecutive failures after which a loop is given up and the process exits non-zero.
MAX_FAILURES = 10


class FatalExit:
    """Collects why the process must stop, and stops the API server (SIGTERM to itself)."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def __call__(self, reason: str) -> None:
        """Record ``reason`` and ask the server to shut down."""
        log.critical("stopping lineinspect: %s", reason)
        self.reasons.append(reason)
        os.kill(os.getpid(), signal.SIGTERM)


def prepare(settings: Settings, on_fatal: FatalExit | None = None) -> Settings:
    """Start embedded services where none are configured; return the effective settings."""
    from core.redis_conn import start_embedded
    from storage.db import migrate

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.redis_url or start_embedded(
        settings.data_dir, maxmemory_bytes=settings.embedded_redis_maxmemory,
        on_fatal=on_fatal,
    )
    effective = settings.model_copy(update={"redis_url": url})
    migrate(effective.sqlalchemy_url)
    return effective


def run_all(settings: Settings) -> None:
    """Run acquisition, inference and the API until interrupted; exit status 1 when a
    supervised loop was given up."""
    import uvicorn

    from core.redis_conn import stop_embedded
    from core.supervise import start_supervised

    os.environ.setdefault("PYLON_CAMEMU", "1")
    fatal = FatalExit()
    settings = prepare(settings, fatal)
    recipe = load_recipe(settings.recipe, settings)
    plan = plan_workers(settings)
    inspector = None
    if settings.frame_rate <= 0 and os.environ.get("PYLON_CAMEMU", "0") not in ("", "0"):
        from deploy.pace import pace_emulated_camera  # the demo: a rate this machine keeps up

        paced = settings.model_copy(update={"ort_threads": plan.threads})  # one worker's
        settings, recipe, inspector = pace_emulated_camera(paced, recipe, plan.workers)
    from api.app import create_app
    from deploy.wiring import run_acquisition_worker

    stop = threading.Event()
    line = settings.line_id
    loops = [
        start_supervised(f"acquisition:{line}",
                         lambda: run_acquisition_worker(settings, recipe, stop), stop,
                         max_failures=MAX_FAILURES, on_fatal=fatal),
        start_supervised(f"inference:{line}", _inference(settings, recipe, stop, plan,
                                                          inspector, f"inference:{line}"),
                         stop, max_failures=MAX_FAILURES, on_fatal=fatal),
    ]
    if settings.modbus_enabled or settings.opcua_enabled:  # docs/PLC.md
        from plc.service import run as run_plc

        loops.append(start_supervised("plc", lambda: run_plc(settings, stop), stop,
                                      max_failures=MAX_FAILURES, on_fatal=fatal))
    log.info(
        "lineinspect: line %s, recipe %s, API on %s://%s:%d",
        line, recipe.name, "https" if settings.tls_certfile else "http",
        settings.api_host, settings.api_port,
    )
    try:
        uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port,
                    log_level=settings.log_level.lower(), **tls_options(settings))
    finally:
        stop.set()
        for t in loops:
            t.join(timeout=15)
        stop_embedded()
        log.info("lineinspect stopped")
    if fatal.reasons:
        raise SystemExit(1)


def _inference(
    settings: Settings, recipe: Recipe, stop: threading.Event, plan: WorkerPlan,
    inspector: Inspector | None, loop: str,
) -> Callable[[], object]:
    """The inference loop of ``run``: ``plan.workers`` worker processes
    (:func:`deploy.workers.run_worker_processes`, reporting to ``loop``), or for one worker
    the worker itself in this process (reusing the pacing ``inspector``: models load once)."""
    from deploy.wiring import run_inference_worker

    if plan.workers > 1:
        return lambda: run_worker_processes(settings, recipe, stop, loop=loop,
                                            max_failures=MAX_FAILURES)
    one = settings.model_copy(update={"ort_threads": plan.threads})
    return lambda: run_inference_worker(one, recipe, stop, inspector=inspector)


def tls_options(settings: Settings) -> dict[str, str]:
    """uvicorn's TLS options when a certificate is configured (else none: plain HTTP)."""
    if not settings.tls_certfile:
        return {}
    return {"ssl_certfile": str(settings.tls_certfile),
            "ssl_keyfile": str(settings.tls_keyfile or settings.tls_certfile)}
