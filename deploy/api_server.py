"""``lineinspect serve``: the HTTP API under uvicorn, in one process or several.

One worker (the default) serves the application object in this process. With ``workers``
above 1 this process resolves the shared parts first - it starts the embedded Redis when no
``LINEINSPECT_REDIS_URL`` is set and applies the database migrations once - then passes
the Redis URL on in the environment and lets uvicorn start the workers, each building the
application with :func:`app_factory` from the same ``LINEINSPECT_*`` settings. The image
retention then runs once, in this process, instead of in every worker. Every worker holds
its own connections, models (the default recipe's, loaded in the background) and ad-hoc
upload slots (``upload_concurrency`` per worker).

uvicorn uses ``httptools`` and ``uvloop`` when they are installed (runtime dependencies):
with them a PLC verdict poll costs about half the CPU of the pure-Python ``h11``/asyncio
pair (docs/PERFORMANCE.md, section 13).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from core.settings import Settings, get_settings

#: Seconds a worker may take to start (imports, models) before uvicorn replaces it (its
#: default of 5 s kills workers in a loop on a busy 2-core machine).
WORKER_START_S = 60


def app_factory() -> Any:
    """The application of one worker process (settings from the environment; the database
    was migrated by the parent, which also runs the image retention)."""
    from api.app import create_app

    return create_app(get_settings(), migrate_db=False, retention_interval_s=None)


def serve_api(settings: Settings, workers: int = 1, access_log: bool = True,
              **uvicorn_options: Any) -> None:
    """Serve the API on ``settings.api_host:api_port`` with ``workers`` processes until
    interrupted. ``access_log``: uvicorn's line per request (off for high PLC poll rates;
    writes are audited either way)."""
    import uvicorn

    from api.app import RETENTION_INTERVAL_S, create_app, start_retention

    options = {"host": settings.api_host, "port": settings.api_port, "access_log": access_log,
               **uvicorn_options}
    if workers <= 1:
        uvicorn.run(create_app(settings), **options)
        return
    from deploy.runner import prepare
    from storage.db import get_engine
    from storage.images import ImageStore
    from storage.repository import InspectionRepository

    settings = prepare(settings)  # embedded Redis and migrations, once for all workers
    os.environ["LINEINSPECT_REDIS_URL"] = settings.redis_url
    get_settings.cache_clear()
    stop = threading.Event()
    start_retention(ImageStore.from_settings(settings), InspectionRepository(get_engine(settings)),
                    RETENTION_INTERVAL_S, stop)
    try:
        uvicorn.run("deploy.api_server:app_factory", factory=True, workers=workers,
                    timeout_worker_healthcheck=WORKER_START_S, **options)
    finally:
        stop.set()
