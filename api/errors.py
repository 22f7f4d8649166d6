"""Every error of the HTTP API is JSON ``{"error": <code>, "detail": <text or list>}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

STATUS_ERRORS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    500: "internal_error",
    503: "service_unavailable",
}



class ApiError(Exception):
    """An error answered as ``{"error": error, "detail": detail, **extra}``."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: Any,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(str(detail))
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers
        self.extra = extra



def error_response(
    status: int, error: str, detail: Any, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """The JSON error body ``{"error", "detail", **extra}`` with ``status``."""
    body = {"error": error, "detail": detail, **extra}
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def clean_errors(errors: Any) -> list[dict[str, Any]]:
    """pydantic validation errors without the echoed input and documentation URLs."""
    out = []
    for e in errors:
        item = {k: v for k, v in dict(e).items() if k not in ("url", "input")}
        if "ctx" in item:
            item["ctx"] = {k: str(v) for k, v in item["ctx"].items()}
        out.append(item)
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as JSON: API errors, HTTP errors, validation errors,
    an unreachable database (503) and anything unexpected (500, logged)."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_ERRORS.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "validation_error", clean_errors(exc.errors()))

    @app.exception_handler(SQLAlchemyError)
    async def _db_error(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.error("database error: %s", exc)
        return error_response(503, "database_unavailable", f"{type(exc).__name__}")

    @app.exception_handler(Exception)
    async def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", f"{type(exc).__name__}")
