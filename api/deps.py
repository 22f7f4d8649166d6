"""Typed dependencies of the routes: the shared services, the settings, the API key and the
defect-log filters (``Annotated[..., Depends(...)]`` aliases)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Query, Request

from api.errors import ApiError
from api.schemas import LogQuery
from api.services import Services
from core.settings import Settings
from core.timeutil import as_utc_or_none
from storage.aggregates import LogFilter


def get_services(request: Request) -> Services:
    """The application's :class:`~api.services.Services`."""
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_settings(services: ServicesDep) -> Settings:
    """The settings the application was created with."""
    return services.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def require_api_key(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header(description="settings.api_key")] = None,
) -> str:
    """The ``X-API-Key`` header, which must equal ``settings.api_key`` (401 otherwise)."""
    expected = settings.api_key.encode()
    given = (x_api_key or "").encode()
    if not expected or not secrets.compare_digest(given, expected):
        raise ApiError(401, "unauthorized", "missing or wrong X-API-Key header")
    return x_api_key or ""


ApiKeyDep = Annotated[str, Depends(require_api_key)]


def log_filter(query: Annotated[LogQuery, Query()]) -> LogFilter:
    """The validated defect-log filter, times in UTC (422 when ``since`` is not before
    ``until``)."""
    since, until = as_utc_or_none(query.since), as_utc_or_none(query.until)
    if since is not None and until is not None and since >= until:
        raise ApiError(422, "validation_error", "since must be before until")
    return LogFilter(line_id=query.line_id, verdict=query.verdict,
                     defect_class=query.defect_class, since=since, until=until,
                     reviewed=query.reviewed)


LogFilterDep = Annotated[LogFilter, Depends(log_filter)]
