"""``lineinspect run``: the whole service in one process, for a single machine or a demo.

Starts the embedded Redis (unless ``LINEINSPECT_REDIS_URL`` is set), migrates the database
(SQLite unless ``LINEINSPECT_DATABASE_URL`` is set), then runs the acquisition worker and one
inference worker in threads (pypylon and onnxruntime release the GIL while they wait or
compute) and the API in the main thread. Without a real camera, ``PYLON_CAMEMU=1`` makes the
pylon emulator replay the demo frames; a real camera is used through exactly the same code.
Ctrl-C (SIGINT) or SIGTERM stops the workers and the server cleanly.
"""

from __future__ import annotations

import logging
import os
import threading

from core.recipe import load_recipe
from core.settings import Settings

log = logging.getLogger(__name__)


def prepare(settings: Settings) -> Settings:
    """Start embedded services where none are configured; return the effective settings."""
    from core.redis_conn import redis_url
    from storage.db import migrate

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    effective = settings.model_copy(update={"redis_url": redis_url(settings)})
    migrate(effective.sqlalchemy_url)
    return effective


def run_all(settings: Settings) -> None:
    """Run acquisition, inference and the API until interrupted."""
    import uvicorn

    os.environ.setdefault("PYLON_CAMEMU", "1")
    settings = prepare(settings)
    recipe = load_recipe(settings.recipe, settings)
    from api.app import create_app
    from deploy.wiring import run_acquisition_worker, run_inference_worker

    stop = threading.Event()
    workers = [
        threading.Thread(target=run_acquisition_worker, args=(settings, recipe, stop),
                         name="acquire"),
        threading.Thread(
            target=run_inference_worker, args=(settings, recipe, stop), name="infer"
        ),
    ]
    for w in workers:
        w.start()
    log.info(
        "lineinspect: line %s, recipe %s, API on http://%s:%d",
        settings.line_id, recipe.name, settings.api_host, settings.api_port,
    )
    try:
        uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port,
                    log_level=settings.log_level.lower())
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=15)
        log.info("lineinspect stopped")
