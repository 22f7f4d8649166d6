"""API keys and the audit log (role ``admin``; docs/SECURITY.md).

``POST /api/v1/keys`` answers the new key once; only its SHA-256 is stored. Creating and
revoking keys are configuration changes and land in the audit log like every write.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.concurrency import run_in_threadpool

from api.deps import AdminDep, ServicesDep
from api.errors import ApiError
from api.services import API

router = APIRouter(prefix=API, tags=["access"])


class KeyIn(BaseModel):
    """Body of ``POST /api/v1/keys``."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=128,
                                           pattern=r"^[^\x00-\x1f\x7f]+$")]
    role: Literal["viewer", "operator", "admin"]


@router.post("/keys", status_code=201)
async def create_key(body: KeyIn, svc: ServicesDep, _who: AdminDep) -> dict[str, Any]:
    """Create an API key for a person or tool; the key is in this answer only."""
    info, key = await run_in_threadpool(svc.access.create_key, body.name, body.role)
    return {**info.as_json(), "key": key}


@router.get("/keys")
def list_keys(svc: ServicesDep, _who: AdminDep) -> dict[str, Any]:
    """Every key without its secret (revoked ones with ``revoked_at``)."""
    return {"items": [k.as_json() for k in svc.access.keys()]}


@router.delete("/keys/{key_id}")
def revoke_key(key_id: Annotated[int, Path(ge=1, le=2**63 - 1)], svc: ServicesDep,
               _who: AdminDep) -> dict[str, Any]:
    """Revoke a key (it stops working at once; the row stays for the audit trail)."""
    if not svc.access.revoke(key_id):
        raise ApiError(404, "not_found", f"no active key {key_id}")
    return {"id": key_id, "revoked": True}


@router.get("/audit")
def audit_log(
    svc: ServicesDep,
    _who: AdminDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> dict[str, Any]:
    """The audit log, newest first (``before_id`` pages to older records)."""
    items = svc.access.audit_records(limit, before_id)
    return {"items": items, "next_before_id": items[-1]["id"] if len(items) == limit else None}
