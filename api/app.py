"""The HTTP API (docs/CONTRACT.md, HTTP API): PLC verdict polling, ad-hoc inspection, defect
log, masks, reviews, health, Prometheus metrics and the QA UI.

:func:`create_app` composes the application: the shared :class:`~api.services.Services`, the
JSON error handlers (:mod:`api.errors`) and one router per resource - :mod:`api.routes.plc`,
:mod:`api.routes.inspections`, :mod:`api.routes.reviews`, :mod:`api.routes.health` and the
QA UI (:mod:`api.ui.routes`). Routes reach the services, settings and API key check through
the typed dependencies of :mod:`api.deps`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.docs import install_docs
from api.errors import install_error_handlers, install_error_schema
from api.inspectors import InspectorFactory
from api.routes import access, health, inspections, lifecycle, plc, recipes, reviews
from api.security import install_security
from api.services import ADHOC_COUNTER_KEY, Services
from api.ui import routes as ui
from core.settings import Settings, get_settings
from storage.db import is_sqlite, migrate
from storage.images import ImageStore, apply_retention
from storage.repository import InspectionRepository

log = logging.getLogger(__name__)

__all__ = ["ADHOC_COUNTER_KEY", "RETENTION_INTERVAL_S", "create_app", "start_retention"]

#: Seconds between two runs of the image retention.
RETENTION_INTERVAL_S = 600.0


def start_retention(images: ImageStore, repository: InspectionRepository, interval_s: float,
                    stop: threading.Event) -> threading.Thread:
    """Apply the image retention now and every ``interval_s`` until ``stop`` is set (a
    daemon thread; a failure is logged and the loop goes on)."""

    def loop() -> None:
        while True:
            try:
                apply_retention(images, repository)
            except Exception:  # noqa: BLE001 - keep the loop alive
                log.exception("image retention failed")
            if stop.wait(interval_s):
                return

    thread = threading.Thread(target=loop, name="image-retention", daemon=True)
    thread.start()
    return thread


def _lifespan(
    svc: Services, preload_models: bool, retention_interval_s: float | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up: the models' background load and the image retention loop; shut-down: stop
    the loop and release the connections."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        if preload_models:
            svc.inspectors.start_preload()
        if retention_interval_s:
            start_retention(svc.images, svc.repository, retention_interval_s, stop)
        try:
            yield
        finally:
            stop.set()
            await svc.aclose()
            svc.close()

    return lifespan


def create_app(
    settings: Settings | None = None,
    inspector_factory: InspectorFactory | None = None,
    *,
    migrate_db: bool | None = None,
    preload_models: bool = True,
    retention_interval_s: float | None = RETENTION_INTERVAL_S,
) -> FastAPI:
    """The FastAPI application.

    ``inspector_factory(recipe, settings)`` builds the inspector of a recipe (default
    :class:`inference.pipeline.Inspector`). ``migrate_db``: apply migrations now (None: only
    for SQLite, the embedded default; PostgreSQL is migrated by ``lineinspect migrate``).
    ``preload_models``: load the default recipe's models in the background at start-up.
    ``retention_interval_s``: run the image retention every so many seconds (None: never).
    """
    settings = settings or get_settings()
    if migrate_db is None:
        migrate_db = is_sqlite(settings.sqlalchemy_url)
    if migrate_db:
        migrate(settings.sqlalchemy_url)
    if settings.api_key:
        log.info("a bootstrap admin key is configured (LINEINSPECT_API_KEY)")
    svc = Services(settings, inspector_factory)
    app = FastAPI(
        title="lineinspect",
        version="0.1.0",
        description="Inline surface inspection: PLC verdicts, defect log, masks, metrics.",
        lifespan=_lifespan(svc, preload_models, retention_interval_s),
        docs_url=None,  # api.docs serves /docs from local assets (no CDN)
        redoc_url=None,
    )
    app.state.services = svc
    install_error_handlers(app)
    install_error_schema(app)
    install_security(app, settings)
    for module in (plc, inspections, reviews, recipes, lifecycle, access, health, ui):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=ui.STATIC_DIR), name="ui-static")
    install_docs(app)
    return app
