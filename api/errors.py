"""Every error of the HTTP API is JSON ``{"error": <code>, "detail": <text or list>}``,
documented once in the OpenAPI schema (:func:`install_error_schema`: ``ErrorBody`` for the
422 and every other error status of every operation)."""

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


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the application serves at the request's path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex, served = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and served and regex.match(request.url.path):
            methods |= set(served)
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as JSON: API errors, HTTP errors, validation errors,
    an unreachable database (503) and anything unexpected (500, logged)."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_ERRORS.get(exc.status_code, "http_error")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette names only the first route of the path
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return error_response(exc.status_code, code, exc.detail, headers)

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


#: The one error body of the API (OpenAPI components). ``detail`` is a text, or for a
#: request that fails validation the list of :func:`clean_errors` items.
ERROR_SCHEMAS: dict[str, Any] = {
    "ValidationErrorItem": {
        "title": "ValidationErrorItem",
        "type": "object",
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"},
                                                         {"type": "integer"}]}},
            "msg": {"type": "string"},
            "type": {"type": "string"},
            "ctx": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "ErrorBody": {
        "title": "ErrorBody",
        "description": "Every error answer: a machine-readable code and a detail.",
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string", "examples": ["validation_error"]},
            "detail": {"anyOf": [
                {"type": "string"},
                {"type": "array",
                 "items": {"$ref": "#/components/schemas/ValidationErrorItem"}},
            ]},
        },
    },
}


def install_error_schema(app: FastAPI) -> None:
    """Document :data:`ERROR_SCHEMAS` as the body of every error: FastAPI's own
    ``HTTPValidationError`` 422 is replaced by ``ErrorBody``, and every operation gets a
    ``default`` response with it (401/403/404/413/429/503 ... share the body)."""

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            comps.pop(name, None)
        comps.update(ERROR_SCHEMAS)
        body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        for ops in schema.get("paths", {}).values():
            for op in ops.values():
                responses = op.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {"description": "Validation Error", "content": body}
                responses["default"] = {"description": "Error", "content": body}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
