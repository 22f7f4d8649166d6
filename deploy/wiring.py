"""The composition root's wiring: storage implementations handed to the workers.

The inference worker knows storage only through protocols (``inference.worker.Repository``,
``ImageStore``); this is where the real ones are built from the settings.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from acquisition.worker import AcquisitionStats, run_acquisition
from core.recipe import Recipe
from core.redis_conn import connect
from core.settings import Settings
from inference.drift import DriftMonitor
from inference.pipeline import Inspector
from inference.recipe_watch import RecipeWatch
from inference.review_sampler import KeepImage, ReviewSampler
from inference.shadow import ShadowRunner, candidate_recipe
from inference.watched import WatchedInspector, segmenter_tile
from inference.worker import InferenceStats, run_inference
from storage.db import get_engine
from storage.images import ImageStore
from storage.promotions import PromotionStore
from storage.repository import InspectionRepository
from storage.review_queue import ReviewQueue

log = logging.getLogger(__name__)

#: Seconds between a worker's polls of its line's promoted recipe (one row read).
RECIPE_POLL_S = 2.0


def open_storage(settings: Settings) -> tuple[InspectionRepository, ImageStore]:
    """The inspection log and the image store of ``settings``."""
    return InspectionRepository(get_engine(settings)), ImageStore.from_settings(settings)


def keep_sampled_image(repository: InspectionRepository, images: ImageStore) -> KeepImage:
    """Retain the frame (and mask) of a sampled inspection whose image was not kept (an OK
    frame), so that QA sees what it reviews."""

    def keep(inspection_id: int, sample: Any, image: Any, mask: Any) -> None:
        image_path, mask_path = images.save(sample.line_id, sample.frame_id, sample.captured_at,
                                            image, mask, inspection_id=inspection_id)
        repository.set_image_paths(inspection_id, str(image_path),
                                   str(mask_path) if mask_path else None)

    return keep


def review_sampler(settings: Settings, recipe: Recipe) -> ReviewSampler | None:
    """The line's review sampler (``review_queue``, cap ``review_daily_cap``); None when the
    cap is 0 or the recipe samples no reason."""
    if settings.review_daily_cap <= 0 or not recipe.review.reasons:
        return None
    engine = get_engine(settings)
    keep = keep_sampled_image(InspectionRepository(engine), ImageStore.from_settings(settings))
    return ReviewSampler(settings.line_id, recipe, ReviewQueue(engine),
                         settings.review_daily_cap, keep_image=keep)


def watched_inspector(
    settings: Settings, recipe: Recipe, inspector: Inspector | None = None
) -> WatchedInspector:
    """The live inspector of ``recipe`` with the line's drift statistics (reference in Redis),
    the review sampler (:func:`review_sampler`) and, when the recipe names one, its shadow
    candidate logging to ``shadow_results`` (its disagreements sampled for review). A
    candidate that cannot be loaded is logged and left out: it never stops the live line."""
    live = inspector or Inspector(recipe, settings)
    drift = DriftMonitor(settings.line_id, recipe.drift, tile=segmenter_tile(live),
                         redis_client=connect(settings))
    sampler = review_sampler(settings, recipe)
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
                on_disagreement=sampler.disagreement if sampler is not None else None,
            )
    return WatchedInspector(live, drift, shadow, sampler)


def line_inspector(
    settings: Settings, recipe: Recipe, store: PromotionStore,
    inspector: Inspector | None = None, poll_s: float = RECIPE_POLL_S,
) -> RecipeWatch:
    """The line's inspector (:func:`watched_inspector`) that follows its promoted recipe
    (:class:`inference.recipe_watch.RecipeWatch`): the recipe promoted in ``store`` for
    ``settings.line_id`` wins over the configured ``recipe`` (and a preloaded ``inspector``
    of it), so a restart keeps a promotion. An unreadable store at start-up is logged: the
    worker starts on ``recipe`` and switches at the first poll that reads it."""
    line = settings.line_id
    try:
        active = store.active(line)
    except SQLAlchemyError as exc:
        log.warning("line %s: promoted recipe not readable (%s); starting on %s", line, exc,
                    recipe.name)
        active = None
    if active is not None and active.current.recipe() != recipe:
        log.warning("line %s: running its promoted recipe %s (switch %d), not the "
                    "configured %s", line, active.current.name, active.version, recipe.name)
        recipe, inspector = active.current.recipe(), None

    def build() -> tuple[int, WatchedInspector]:
        now = store.active(line)
        promoted = now.current.recipe() if now is not None else recipe
        return (now.version if now is not None else 0), watched_inspector(settings, promoted)

    return RecipeWatch(line, watched_inspector(settings, recipe, inspector),
                       active.version if active is not None else 0,
                       lambda: store.version(line), build, poll_s=poll_s)


def run_inference_worker(
    settings: Settings, recipe: Recipe, stop: threading.Event | None = None, **options: Any
) -> InferenceStats:
    """:func:`inference.worker.run_inference` on the storage of ``settings``, the inspector
    watched by drift statistics and the recipe's shadow (:func:`watched_inspector`) and
    following the line's promoted recipe (:func:`line_inspector`, polled every
    ``recipe_poll_s``); ``options`` are passed on (``inspector``, ``stages``, ...)."""
    repository, image_store = open_storage(settings)
    watch = line_inspector(settings, recipe, PromotionStore(repository.engine),
                           options.pop("inspector", None),
                           options.pop("recipe_poll_s", RECIPE_POLL_S))
    try:
        return run_inference(settings, watch.recipe, repository, image_store, stop=stop,
                             inspector=watch, **options)  # type: ignore[arg-type]
    finally:
        watch.close()


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
