"""The composition root's wiring: storage implementations handed to the workers.

The inference worker knows storage only through protocols (``inference.worker.Repository``,
``ImageStore``); this is where the real ones are built from the settings.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from acquisition.worker import AcquisitionStats, run_acquisition
from core.recipe import Recipe
from core.redis_conn import connect
from core.settings import Settings
from inference.drift import DriftMonitor
from inference.pipeline import Inspector
from inference.shadow import ShadowRunner, candidate_recipe
from inference.watched import WatchedInspector, segmenter_tile
from inference.worker import InferenceStats, run_inference
from storage.db import get_engine
from storage.images import ImageStore
from storage.repository import InspectionRepository

log = logging.getLogger(__name__)


def open_storage(settings: Settings) -> tuple[InspectionRepository, ImageStore]:
    """The inspection log and the image store of ``settings``."""
    return InspectionRepository(get_engine(settings)), ImageStore.from_settings(settings)


def watched_inspector(
    settings: Settings, recipe: Recipe, inspector: Inspector | None = None
) -> WatchedInspector:
    """The live inspector of ``recipe`` with the line's drift statistics (reference in Redis)
    and, when the recipe names one, its shadow candidate logging to ``shadow_results``. A
    candidate that cannot be loaded is logged and left out: it never stops the live line."""
    live = inspector or Inspector(recipe, settings)
    drift = DriftMonitor(settings.line_id, recipe.drift, tile=segmenter_tile(live),
                         redis_client=connect(settings))
    shadow = None
    if recipe.shadow is not None:
        try:
            from storage.shadow import ShadowRepository

            candidate = Inspector(candidate_recipe(recipe, recipe.shadow, settings), settings)
            store = ShadowRepository(get_engine(settings))
        except Exception:  # noqa: BLE001 - a broken candidate must not stop the live line
            log.exception("shadow candidate of recipe %s not loaded: no shadow", recipe.name)
        else:
            shadow = ShadowRunner(
                settings.line_id, candidate, store,
                max_share=recipe.shadow.max_share, queue_size=recipe.shadow.queue,
            )
    return WatchedInspector(live, drift, shadow)


def run_inference_worker(
    settings: Settings, recipe: Recipe, stop: threading.Event | None = None, **options: Any
) -> InferenceStats:
    """:func:`inference.worker.run_inference` on the storage of ``settings``, the inspector
    watched by drift statistics and the recipe's shadow (:func:`watched_inspector`);
    ``options`` are passed on (``inspector``, ``stages``, ``block_ms``, ...)."""
    repository, image_store = open_storage(settings)
    watched = watched_inspector(settings, recipe, options.pop("inspector", None))
    try:
        return run_inference(settings, recipe, repository, image_store, stop=stop,
                             inspector=watched, **options)  # type: ignore[arg-type]
    finally:
        watched.close()


def logged_frame_id_floor(settings: Settings) -> Callable[[], int | None]:
    """The highest frame id of ``settings.line_id`` in the inspection log (a callable the
    acquisition worker asks at start-up, so that no logged (line, frame id) is reused)."""

    def floor() -> int | None:
        engine = get_engine(settings)
        try:
            return InspectionRepository(engine).max_frame_id(settings.line_id)
        finally:
            engine.dispose()

    return floor


def run_acquisition_worker(
    settings: Settings, recipe: Recipe, stop: threading.Event | None = None, **options: Any
) -> AcquisitionStats:
    """:func:`acquisition.worker.run_acquisition` with frame ids seeded from the log."""
    return run_acquisition(
        settings, recipe, stop, frame_id_floor=logged_frame_id_floor(settings), **options
    )
