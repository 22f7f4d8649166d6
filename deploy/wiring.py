"""The composition root's wiring: storage implementations handed to the workers.

The inference worker knows storage only through protocols (``inference.worker.Repository``,
``ImageStore``); this is where the real ones are built from the settings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from acquisition.worker import AcquisitionStats, run_acquisition
from core.recipe import Recipe
from core.settings import Settings
from inference.worker import InferenceStats, run_inference
from storage.db import get_engine
from storage.images import ImageStore
from storage.repository import InspectionRepository


def open_storage(settings: Settings) -> tuple[InspectionRepository, ImageStore]:
    """The inspection log and the image store of ``settings``."""
    return InspectionRepository(get_engine(settings)), ImageStore.from_settings(settings)


def run_inference_worker(
    settings: Settings, recipe: Recipe, stop: threading.Event | None = None, **options: Any
) -> InferenceStats:
    """:func:`inference.worker.run_inference` on the storage of ``settings``; ``options`` are
    passed on (``inspector``, ``stages``, ``block_ms``, ...)."""
    repository, image_store = open_storage(settings)
    return run_inference(settings, recipe, repository, image_store, stop=stop, **options)


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
