"""A line's recipe and drift reference: promote, roll back, history, drift reset (issue 21).

* ``GET /lines/{line}/recipe`` - the recipe the line runs (promoted or configured), the one
  a rollback returns to, the switch counter (viewer).
* ``GET /lines/{line}/recipe/history`` - every promotion and rollback, newest first: who,
  when, from where, from and to which recipe and model files, the replay report (viewer).
* ``POST /lines/{line}/recipe/promote`` - ``{"recipe": name, "report": <report.json>,
  "report_name": ..., "note": ...}`` (admin; :class:`api.promotions.RecipePromoter`). The
  recipe is a name in ``recipes_dir`` (no paths from clients); the report travels in the
  body, so the API reads no client-named file.
* ``POST /lines/{line}/recipe/rollback`` - ``{"note": ...}`` (admin).
* ``POST /lines/{line}/drift/reset`` - forget the drift reference; the next frames make a new
  one (admin; :func:`inference.drift.reset_reference`); 404 for a line without logged frames.

Every POST is audited by :mod:`api.security` like every write; a refused one changes nothing.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, StringConstraints

from api.deps import AdminDep, ServicesDep, ViewerDep
from api.errors import ApiError
from api.inspectors import RECIPE_NAME
from api.promotions import RecipePromoter
from api.security import Principal, client_address
from api.services import API, Services
from core.promotion import PromotionRefused
from inference.drift import reset_reference
from storage.promotions import Actor, PromotionStore

router = APIRouter(prefix=API + "/lines/{line_id}", tags=["recipes"])

LineId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
Note = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")]


class PromoteIn(BaseModel):
    """Body of ``POST /lines/{line}/recipe/promote``."""

    model_config = ConfigDict(extra="forbid")

    recipe: Annotated[str, StringConstraints(pattern=RECIPE_NAME.pattern)]
    #: the replay's ``report.json`` as written by ``lineinspect replay``
    report: dict[str, Any]
    #: where the report lies (recorded as its path)
    report_name: Annotated[str, StringConstraints(min_length=1, max_length=1024,
                                                  pattern=r"^[^\x00-\x1f\x7f]+$")]
    note: Note | None = None


class RollbackIn(BaseModel):
    """Body of ``POST /lines/{line}/recipe/rollback``."""

    model_config = ConfigDict(extra="forbid")

    note: Note | None = None


def _promoter(svc: Services) -> RecipePromoter:
    return RecipePromoter(svc.settings, PromotionStore(svc.engine))


def _actor(who: Principal, request: Request) -> Actor:
    return Actor(who.name, who.role, client_address(request))


def _refused(exc: PromotionRefused) -> ApiError:
    return ApiError(exc.status, exc.error, exc.detail)


@router.get("/recipe")
def line_recipe(line_id: LineId, svc: ServicesDep, _who: ViewerDep) -> dict[str, Any]:
    """The line's recipe (promoted or configured) and the one a rollback returns to."""
    try:
        return _promoter(svc).state(line_id)
    except PromotionRefused as exc:
        raise _refused(exc) from None


@router.get("/recipe/history")
def recipe_history(
    line_id: LineId, svc: ServicesDep, _who: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The line's promotions and rollbacks, newest first."""
    return {"line_id": line_id, "items": PromotionStore(svc.engine).history(line_id, limit)}


@router.post("/recipe/promote")
def promote(line_id: LineId, body: PromoteIn, request: Request, svc: ServicesDep,
            who: AdminDep) -> dict[str, Any]:
    """Switch the line to a candidate recipe on the evidence of its replay report."""
    raw = json.dumps(body.report, sort_keys=True).encode("utf-8")
    try:
        return _promoter(svc).promote(line_id, body.recipe, raw, body.report_name,
                                      _actor(who, request), body.note)
    except PromotionRefused as exc:
        raise _refused(exc) from None


@router.post("/recipe/rollback")
def rollback(line_id: LineId, body: RollbackIn, request: Request, svc: ServicesDep,
             who: AdminDep) -> dict[str, Any]:
    """Switch the line back to the recipe before its last promotion."""
    try:
        return _promoter(svc).rollback(line_id, _actor(who, request), body.note)
    except PromotionRefused as exc:
        raise _refused(exc) from None


@router.post("/drift/reset")
def drift_reset(line_id: LineId, svc: ServicesDep, _who: AdminDep) -> dict[str, Any]:
    """Forget the line's drift reference; its next frames make a new one."""
    try:
        _promoter(svc).require_line(line_id)
        reset_reference(svc.redis, line_id)
    except PromotionRefused as exc:
        raise _refused(exc) from None
    except redis.RedisError as exc:
        raise ApiError(503, "redis_unavailable", f"drift reference store: {exc}") from exc
    return {"line_id": line_id, "drift_reference": "reset"}
