"""QA reviews: confirm or correct an inspection (a key with role ``operator`` or higher)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.deps import OperatorDep, ServicesDep
from api.errors import ApiError, clean_errors
from api.schemas import InspectionId, ReviewIn
from api.services import API

router = APIRouter(prefix=API, tags=["defect log"])

MAX_REVIEW_BYTES = 64 * 1024
_REVIEW_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ReviewIn.model_json_schema()}},
    }
}


async def _read_body(request: Request) -> bytes:
    """The request body, 413 beyond :data:`MAX_REVIEW_BYTES` (checked while streaming)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_REVIEW_BYTES:
        raise ApiError(413, "payload_too_large", f"body larger than {MAX_REVIEW_BYTES} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_REVIEW_BYTES:
            raise ApiError(413, "payload_too_large", f"body larger than {MAX_REVIEW_BYTES} bytes")
    return raw


@router.post("/inspections/{inspection_id}/review", status_code=201,
             openapi_extra=_REVIEW_OPENAPI)
async def review_inspection(
    inspection_id: InspectionId, request: Request, svc: ServicesDep, _who: OperatorDep
) -> JSONResponse:
    """QA confirms or corrects an inspection (header ``X-API-Key``, role operator)."""
    try:
        payload = ReviewIn.model_validate_json(await _read_body(request))
    except ValidationError as exc:
        raise ApiError(422, "validation_error", clean_errors(exc.errors())) from None
    body = await run_in_threadpool(svc.review, inspection_id, payload)
    return JSONResponse(jsonable_encoder(body), status_code=201)
