"""Typed dependencies of the routes: the shared services, the settings, the roles
(:mod:`api.security`) and the defect-log filters (``Annotated[..., Depends(...)]``
aliases)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from api.errors import ApiError
from api.schemas import LogQuery
from api.security import AdminDep, OperatorDep, ViewerDep
from api.services import Services
from core.settings import Settings
from core.timeutil import as_utc_or_none
from storage.aggregates import LogFilter


async def get_services(request: Request) -> Services:
    """The application's :class:`~api.services.Services` (async: FastAPI would run a plain
    function in its thread pool, a hand-off on every request)."""
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_settings(services: ServicesDep) -> Settings:
    """The settings the application was created with."""
    return services.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


#: A write of QA: the ``operator`` role or higher (see :mod:`api.security`).
ApiKeyDep = OperatorDep


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


__all__ = ["AdminDep", "ApiKeyDep", "LogFilterDep", "OperatorDep", "ServicesDep",
           "SettingsDep", "ViewerDep"]
