"""The inspectors of the recipes the API inspects uploads with, loaded on first use."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from api.errors import ApiError
from core.recipe import Recipe, load_recipe
from core.settings import Settings

log = logging.getLogger(__name__)

#: Recipe names accepted from clients: a file stem in ``recipes_dir``, nothing path-like.
RECIPE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: ``factory(recipe, settings)`` -> an object with ``inspect(image, line_id=, frame_id=,
#: captured_at=) -> InspectionResult`` (default: :class:`inference.pipeline.Inspector`).
InspectorFactory = Callable[[Recipe, Settings], Any]


def _default_factory(recipe: Recipe, settings: Settings) -> Any:
    from inference.pipeline import Inspector  # onnxruntime: imported on first use

    return Inspector(recipe, settings)


class InspectorPool:
    """One inspector per recipe, built on first use (thread-safe), plus the background load
    of the default recipe's inspector that ``/readyz`` reports."""

    def __init__(self, settings: Settings, factory: InspectorFactory | None) -> None:
        """Build inspectors with ``factory(recipe, settings)``."""
        self.settings = settings
        self.factory = factory or _default_factory
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[Recipe, Any]] = {}
        self.state: Literal["not_loaded", "loading", "ready", "failed"] = "not_loaded"
        self.error: str | None = None
        self._attempted = 0.0

    def load_recipe(self, name: str | None) -> Recipe:
        """The recipe ``name`` (client-given: a plain name) or the configured default."""
        if name is not None and not RECIPE_NAME.match(name):
            raise ApiError(422, "validation_error", f"invalid recipe name {name!r}")
        try:
            return load_recipe(name or self.settings.recipe, self.settings)
        except FileNotFoundError:
            raise ApiError(
                404, "not_found", f"recipe {name or self.settings.recipe!r} not found"
            ) from None
        except (ValueError, OSError) as exc:  # pydantic/YAML errors: a broken file on the server
            raise ApiError(
                500, "recipe_invalid", f"recipe {name!r} cannot be loaded: {exc}"
            ) from None

    def get(self, name: str | None) -> tuple[Recipe, Any]:
        """``(recipe, inspector)`` for ``name`` (None: the configured recipe)."""
        key = name or self.settings.recipe
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
            recipe = self.load_recipe(name)
            try:
                inspector = self.factory(recipe, self.settings)
            except Exception as exc:
                log.error("cannot load the models of recipe %s: %r", recipe.name, exc)
                raise ApiError(
                    503, "models_unavailable", f"models of recipe {recipe.name!r}: {exc}"
                ) from exc
            self._cache[key] = (recipe, inspector)
            if name is None or key == self.settings.recipe:
                self.state, self.error = "ready", None
            return recipe, inspector

    def preload(self) -> None:
        """Load the default recipe's inspector (run in a thread at start-up)."""
        self.state = "loading"
        try:
            self.get(None)
        except ApiError as exc:
            self.state, self.error = "failed", str(exc.detail)
        except Exception as exc:  # pragma: no cover - factory raised something unexpected
            self.state, self.error = "failed", repr(exc)
        else:
            self.state, self.error = "ready", None

    def start_preload(self, retry_after_s: float = 30.0) -> None:
        """Start :meth:`preload` in a daemon thread unless it runs, succeeded, or failed less
        than ``retry_after_s`` ago (model files may appear later)."""
        with self._lock:
            if self.state in ("loading", "ready"):
                return
            if self.state == "failed" and time.monotonic() - self._attempted < retry_after_s:
                return
            self.state = "loading"
            self._attempted = time.monotonic()
        threading.Thread(target=self.preload, name="inspector-preload", daemon=True).start()

    def status(self) -> dict[str, Any]:
        """Readiness of the default recipe's models."""
        hit = self._cache.get(self.settings.recipe)
        out: dict[str, Any] = {"ready": hit is not None, "state": self.state,
                               "recipe": self.settings.recipe}
        if hit is not None:
            out["models"] = dict(getattr(hit[1], "model_versions", {}) or {})
            #: per model: the engine it runs on and the measured reason (engine: auto)
            out["engines"] = dict(getattr(hit[1], "engine_choices", {}) or {})
        if self.error:
            out["detail"] = self.error
        return out
