"""The inspections: ad-hoc inspection of an upload, the defect log (JSON pages and CSV), one
inspection with its image, mask and overlay, and its neighbours under the log's filters.

``POST /api/v1/inspect`` validates the upload completely (size cap while streaming, magic
bytes, bit depth, decoding, recipe) before anything is written; then inspects it with the
recipe's inspector (built once per recipe and cached), logs it as line ``adhoc`` with a frame
id from the Redis counter ``adhoc:frame_id`` and always keeps its image and mask (QA asked for
it). Ad-hoc inspections are not counted in the line metrics (an ``adhoc`` series would trip
the no-verdict alert) and not published as a line verdict.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from api.csv_export import CSV_COLUMNS, csv_row
from api.deps import LogFilterDep, OperatorDep, ServicesDep, SettingsDep
from api.errors import ApiError
from api.overlay import encode_png, render_overlay
from api.schemas import InspectionId
from api.services import API
from api.uploads import UploadError, read_upload_form
from storage.repository import InvalidCursor

router = APIRouter(prefix=API)

CSV_PAGE = 500
_UPLOAD_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "PNG, JPEG, BMP or TIFF; 8-bit gray or RGB",
                        },
                        "recipe": {
                            "type": "string",
                            "description": "recipe name (default: the configured recipe)",
                        },
                    },
                }
            }
        },
    }
}


def _png(data: bytes, **headers: str) -> Response:
    return Response(
        data, media_type="image/png",
        headers={"Cache-Control": "private, max-age=3600", **headers},
    )


@router.post("/inspect", tags=["inspection"], openapi_extra=_UPLOAD_OPENAPI)
async def inspect_upload(
    request: Request, svc: ServicesDep, settings: SettingsDep, who: OperatorDep
) -> JSONResponse:
    """Inspect an uploaded image (multipart ``file``, optional ``recipe``); logged as
    line ``adhoc``. Needs role operator; one upload at a time and a rate per key
    (429 beyond), at most ``max_upload_pixels`` pixels (413)."""
    with svc.uploads.admit(who.name):
        try:
            form = await read_upload_form(request.headers, request.stream(),
                                          settings.max_upload_bytes)
        except UploadError as exc:
            raise ApiError(exc.status, exc.error, exc.detail) from None
        except ClientDisconnect:
            raise ApiError(400, "bad_request", "client disconnected during upload") from None
        received = time.time()
        recipe = (form.fields.get("recipe") or "").strip() or None
        body = await run_in_threadpool(svc.inspect_upload, form.data, recipe, received)
    return JSONResponse(body)


@router.get("/inspections", tags=["defect log"])
def list_inspections(
    svc: ServicesDep,
    flt: LogFilterDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of a page")
    ] = None,
) -> dict[str, Any]:
    """The defect log, newest first, with keyset cursor pagination."""
    try:
        items, next_cursor = svc.repository.query(**asdict(flt), limit=limit, cursor=cursor)
    except InvalidCursor as exc:
        raise ApiError(422, "validation_error", str(exc)) from None
    now = datetime.now(UTC)
    return {
        "items": [svc.inspection_json(r, now) for r in items],
        "next_cursor": next_cursor,
        "limit": limit,
    }


@router.get("/inspections.csv", tags=["defect log"], response_class=StreamingResponse)
def inspections_csv(svc: ServicesDep, flt: LogFilterDep) -> StreamingResponse:
    """The filtered defect log as CSV (newest first, streamed page by page: keyset
    pagination, never the whole log in memory). The first page is read before the answer
    starts, so a query the database refuses is an error status, not a cut-off 200."""
    first = svc.repository.query(**asdict(flt), limit=CSV_PAGE, cursor=None)

    def rows() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        page, cursor = first
        while True:
            for record in page:
                writer.writerow(csv_row(record))
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
            if cursor is None:
                return
            page, cursor = svc.repository.query(**asdict(flt), limit=CSV_PAGE, cursor=cursor)

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return StreamingResponse(
        rows(), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="inspections-{stamp}.csv"'},
    )


@router.get("/inspections/{inspection_id}", tags=["defect log"])
def get_inspection(inspection_id: InspectionId, svc: ServicesDep) -> dict[str, Any]:
    """One logged inspection with its defects and latest review."""
    record = svc.record(inspection_id)
    out = svc.inspection_json(record)
    out["reviews"] = [r.as_json() for r in record.reviews]
    return out


@router.get("/inspections/{inspection_id}/image.png", tags=["defect log"],
            response_class=Response)
def inspection_image(inspection_id: InspectionId, svc: ServicesDep) -> Response:
    """The retained frame (404 when it was not retained or retention removed it)."""
    record = svc.record(inspection_id)
    data = svc.images.read_bytes(record.image_path)
    if data is None:
        raise ApiError(404, "not_found", f"image of inspection {inspection_id} not retained")
    return _png(data)


@router.get("/inspections/{inspection_id}/mask.png", tags=["defect log"],
            response_class=Response)
def inspection_mask(inspection_id: InspectionId, svc: ServicesDep) -> Response:
    """Class-indexed 8-bit mask of the whole frame (0 = background); the class names in
    index order are in the ``X-Mask-Classes`` header (JSON)."""
    record = svc.record(inspection_id)
    data = svc.images.read_bytes(record.mask_path)
    if data is None:
        raise ApiError(404, "not_found", f"mask of inspection {inspection_id} not retained")
    return _png(data, **{"X-Mask-Classes": json.dumps(record.result.mask_classes)})


@router.get("/inspections/{inspection_id}/overlay.png", tags=["defect log"],
            response_class=Response)
def inspection_overlay(inspection_id: InspectionId, svc: ServicesDep) -> Response:
    """The frame with the mask tinted per class and the defect boxes drawn."""
    record = svc.record(inspection_id)
    image = svc.images.load_image(record.image_path)
    if image is None:
        raise ApiError(404, "not_found", f"image of inspection {inspection_id} not retained")
    mask = svc.images.load_mask(record.mask_path)
    rgb = render_overlay(image, mask, record.result.defects, record.result.mask_classes)
    return _png(encode_png(rgb))


@router.get("/inspections/{inspection_id}/neighbours", tags=["defect log"])
def neighbours(inspection_id: InspectionId, svc: ServicesDep, flt: LogFilterDep) -> dict[str, Any]:
    """Ids of the next ``older`` and ``newer`` inspection matching the filters (keyboard
    navigation to the next/previous NG in the QA UI)."""
    out = svc.aggregates.neighbours(inspection_id, flt)
    if out is None:
        raise ApiError(404, "not_found", f"inspection {inspection_id} not found")
    return {"inspection_id": inspection_id, **out}
