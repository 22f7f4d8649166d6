"""Promote a candidate recipe onto a line, or roll it back, with a record (issue 21.3).

:class:`RecipePromoter` is what ``POST /api/v1/lines/{line}/recipe/promote|rollback`` and
``lineinspect promote|rollback`` both run. Every check comes before the one transaction that
switches (:class:`storage.promotions.PromotionStore`), so a refused switch changes nothing:

* the line has logged frames (404: a typo'd line id gets no recipe of its own);
* the candidate recipe exists and is valid (404 / 422);
* it keeps the line's camera, staleness, stream cap and backlog limit (422: that is a new
  recipe for the line, started with ``--recipe``, not a promotion);
* its models load (the real :class:`inference.pipeline.Inspector` builds; 422);
* the replay report exists and was made for this recipe and these model versions (422);
* it is not what already runs (409), and nobody switched the line meanwhile (409);
* a rollback needs a previous recipe (409) whose models still load (422).

The inference workers poll the store and switch between frames (:mod:`inference.recipe_watch`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.promotion import (
    PromotionRefused,
    RecipeSnapshot,
    line_changes,
    model_files,
    replay_evidence,
    snapshot_file,
    snapshot_text,
)
from core.recipe import Recipe, recipe_path
from core.settings import Settings
from storage.promotions import ActiveRecipe, Actor, PromotionStore

#: ``check(recipe)`` raises when the recipe's models cannot be loaded.
ModelCheck = Callable[[Recipe], None]


def load_models(settings: Settings) -> ModelCheck:
    """The check that builds the recipe's real :class:`inference.pipeline.Inspector`."""

    def check(recipe: Recipe) -> None:
        from inference.pipeline import Inspector  # onnxruntime: imported on first use

        Inspector(recipe, settings)

    return check


class RecipePromoter:
    """Checks and records recipe switches of the lines."""

    def __init__(self, settings: Settings, store: PromotionStore,
                 check: ModelCheck | None = None) -> None:
        """``check`` defaults to :func:`load_models`."""
        self.settings = settings
        self.store = store
        self.check = check or load_models(settings)

    def configured(self) -> RecipeSnapshot:
        """The configured recipe (``LINEINSPECT_RECIPE``): what a line never promoted runs."""
        return snapshot_file(self.settings.recipe, self.settings)

    def live(self, line_id: str) -> tuple[RecipeSnapshot, int, ActiveRecipe | None]:
        """What the line runs now, its switch counter and its promotion state."""
        active = self.store.active(line_id)
        if active is not None:
            return active.current, active.version, active
        return self.configured(), 0, None

    def state(self, line_id: str) -> dict[str, Any]:
        """The line's recipe: promoted (``active``) or the configured one."""
        active = self.store.active(line_id)
        if active is not None:
            return {"line_id": line_id, "promoted": True, **active.as_json()}
        try:
            current = self.configured()
        except PromotionRefused as exc:  # say what runs even when its models are gone
            if exc.error != "models_unavailable":
                raise
            path = recipe_path(self.settings.recipe, self.settings)
            current = snapshot_text(path.read_text(), str(path.resolve()), with_models=False)
        return {"line_id": line_id, "promoted": False, "version": 0,
                "current": current.as_json(), "previous": None}

    def require_line(self, line_id: str) -> None:
        """PromotionRefused 404 unless the line has logged frames (a typo'd line id must not
        get a recipe of its own while the real line runs on)."""
        if not self.store.line_logged(line_id):
            raise PromotionRefused(404, "not_found",
                                   f"line {line_id!r} has no logged inspection: unknown line")

    def _loadable(self, snap: RecipeSnapshot) -> None:
        try:
            self.check(snap.recipe())
        except Exception as exc:  # noqa: BLE001 - any load failure refuses the switch
            raise PromotionRefused(422, "models_unavailable",
                                   f"models of recipe {snap.name} do not load: {exc}") from None

    def promote(
        self, line_id: str, candidate: str, report: bytes, report_path: str, actor: Actor,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Switch ``line_id`` to the recipe ``candidate`` (name or path) on the evidence of
        the replay ``report`` (the bytes of ``report_path``); the record's JSON."""
        self.require_line(line_id)
        cand = snapshot_file(candidate, self.settings)
        live, version, _ = self.live(line_id)
        changed = line_changes(live.recipe(), cand.recipe())
        if changed:
            raise PromotionRefused(
                422, "line_settings_differ",
                f"recipe {cand.name} changes {', '.join(changed)} of line {line_id}: that is "
                "a new recipe for the line (restart it with --recipe), not a promotion",
            )
        if cand.sha256 == live.sha256 and cand.models == live.models:
            raise PromotionRefused(409, "already_live",
                                   f"recipe {cand.name} already runs on line {line_id}")
        self._loadable(cand)
        evidence = replay_evidence(report, report_path, cand)
        return self.store.promote(line_id, live, cand, evidence, actor,
                                  expected_version=version, note=note)

    def rollback(self, line_id: str, actor: Actor, note: str | None = None) -> dict[str, Any]:
        """Switch ``line_id`` back to the recipe before its last promotion; the record."""
        self.require_line(line_id)
        active = self.store.active(line_id)
        if active is None or active.previous is None:
            raise PromotionRefused(409, "no_previous_recipe",
                                   f"line {line_id}: no previous recipe to roll back to")
        back = snapshot_text(active.previous.content, active.previous.source,
                             with_models=False)
        self._loadable(back)
        try:
            models = model_files(back.recipe())
        except Exception as exc:  # noqa: BLE001 - gone since the check: refuse
            raise PromotionRefused(422, "models_unavailable", str(exc)) from None
        return self.store.rollback(line_id, models, actor, expected_version=active.version,
                                   note=note)
