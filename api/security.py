"""Who may do what, and the guards every request passes (docs/SECURITY.md).

* **Roles** ``viewer`` < ``operator`` (QA reviewer, ad-hoc uploads) < ``admin`` (keys,
  audit log). A key is sent as ``X-API-Key``; only its SHA-256 is compared (keys of people
  in the ``api_keys`` table, :mod:`storage.access`; the optional bootstrap admin key of
  ``LINEINSPECT_API_KEY`` is hashed at start-up). Every write needs ``operator`` or more;
  reads need ``viewer`` only when ``LINEINSPECT_AUTH_READS`` is on. The PLC verdict,
  ``/healthz``, ``/readyz`` and ``/metrics`` stay open.
* **Guessing** - a client address with ``auth_failures_per_minute`` failed key checks in the
  last minute gets 429 without its key being checked.
* **CSRF** - keys travel in a header that a cross-site page cannot set without a CORS
  preflight (none is allowed), never in a cookie; and a write whose ``Origin`` is neither the
  API's own host nor in ``LINEINSPECT_ALLOWED_ORIGINS`` (or that a browser marks
  ``Sec-Fetch-Site: cross-site``) is refused with 403 before anything runs.
* **Headers** on every answer: ``nosniff``, ``DENY`` framing, no referrer, a same-origin
  content security policy (relaxed for the OpenAPI pages, which load Swagger UI), HSTS over
  HTTPS.
* **Audit** - every write (allowed, refused or failed) is recorded with who, when, from
  where, what and the HTTP status (:meth:`storage.access.AccessStore.audit`).
* **Uploads** - :class:`UploadGate`: at most ``upload_concurrency`` ad-hoc inspections at
  once and ``upload_rate_per_minute`` per key; more answer 429 with ``Retry-After``.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Header, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, error_response
from core.settings import Settings
from storage.access import ROLES, AccessStore, hash_key

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_RANK = {role: i for i, role in enumerate(ROLES)}
_DOCS = ("/docs", "/redoc", "/openapi.json")
_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
_DOCS_CSP = ("default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline' "
             "https:; script-src 'self' 'unsafe-inline' https:; frame-ancestors 'none'")


@dataclass(frozen=True)
class Principal:
    """Who sent a request: a key's name and role (role None: anonymous)."""

    name: str
    role: str | None = None

    def has(self, role: str) -> bool:
        """Whether this principal holds ``role`` or a higher one."""
        return self.role is not None and _RANK[self.role] >= _RANK[role]


ANONYMOUS = Principal("anonymous")


class _Window:
    """Events per key within the last minute (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, deque[float]] = defaultdict(deque)

    def count(self, key: str, now: float) -> int:
        with self._lock:
            q = self._events[key]
            while q and now - q[0] > 60.0:
                q.popleft()
            if not q:
                del self._events[key]
            return len(q)

    def add(self, key: str, now: float) -> None:
        with self._lock:
            self._events[key].append(now)


class Authenticator:
    """Keys -> principals, with the failed-guess limit per client address."""

    def __init__(self, settings: Settings, access: AccessStore) -> None:
        """The bootstrap key of ``settings`` is kept as its hash only."""
        self.access = access
        self.failures_per_minute = settings.auth_failures_per_minute
        self._bootstrap = hash_key(settings.api_key) if settings.api_key else None
        self._failures = _Window()

    def authenticate(self, key: str | None, client: str) -> Principal:
        """The key's principal; 429 when ``client`` guessed too often, 401 for a bad key."""
        now = time.monotonic()
        if self._failures.count(client, now) >= self.failures_per_minute:
            raise ApiError(429, "too_many_requests", "too many failed key checks: wait",
                           headers={"Retry-After": "60"})
        principal = self._lookup(key) if key else None
        if principal is None:
            self._failures.add(client, now)
            raise ApiError(401, "unauthorized", "missing or wrong X-API-Key header")
        return principal

    def _lookup(self, key: str) -> Principal | None:
        if self._bootstrap and secrets.compare_digest(hash_key(key), self._bootstrap):
            return Principal("bootstrap-admin", "admin")
        info = self.access.lookup(key)
        return Principal(info.name, info.role) if info is not None else None


def client_address(request: Request) -> str:
    """The peer's address (what the audit log records as "from where")."""
    return request.client.host if request.client else "unknown"


#: The ``X-API-Key`` header (module level: annotations are evaluated against the globals).
KeyHeader = Annotated[str | None, Header(description="API key", max_length=256)]


def require(role: str) -> Callable[..., Principal]:
    """A dependency that authenticates the request and demands ``role`` (403 below it)."""

    def dependency(
        request: Request,
        x_api_key: KeyHeader = None,
    ) -> Principal:
        svc = request.app.state.services
        if role == "viewer" and not svc.settings.auth_reads and not x_api_key:
            return ANONYMOUS
        principal = svc.auth.authenticate(x_api_key, client_address(request))
        request.state.principal = principal
        if not principal.has(role):
            raise ApiError(403, "forbidden", f"needs role {role}; this key is {principal.role}")
        return principal

    return dependency


ViewerDep = Annotated[Principal, Depends(require("viewer"))]
OperatorDep = Annotated[Principal, Depends(require("operator"))]
AdminDep = Annotated[Principal, Depends(require("admin"))]


class UploadGate:
    """Ad-hoc uploads: a concurrency cap for the process and a rate per principal."""

    def __init__(self, concurrency: int, per_minute: int) -> None:
        """``concurrency`` inspections at once; ``per_minute`` per principal (0 = no cap)."""
        self._slots = threading.BoundedSemaphore(max(1, concurrency))
        self.per_minute = per_minute
        self._rate = _Window()

    @contextmanager
    def admit(self, who: str) -> Iterator[None]:
        """Hold one slot for the duration; 429 when over the rate or all slots are busy."""
        now = time.monotonic()
        if self.per_minute and self._rate.count(who, now) >= self.per_minute:
            raise ApiError(429, "too_many_requests", "upload rate exceeded",
                           headers={"Retry-After": "60"})
        if not self._slots.acquire(blocking=False):
            raise ApiError(429, "too_many_requests",
                           "another ad-hoc inspection is running: the line has priority",
                           headers={"Retry-After": "2"})
        self._rate.add(who, now)
        try:
            yield
        finally:
            self._slots.release()


def origin_allowed(request: Request, allowed: frozenset[str]) -> bool:
    """A write may come from the API's own host, a configured origin, or a non-browser."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin in allowed:
        return True
    return origin != "null" and urlsplit(origin).netloc == request.headers.get("host", "")


def _security_headers(request: Request, headers: MutableHeaders) -> None:
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Content-Security-Policy",
                       _DOCS_CSP if request.url.path.startswith(_DOCS) else _CSP)
    if request.url.scheme == "https":
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")


class SecurityMiddleware:
    """The Origin check, the protected reads, security headers and the audit of writes, as
    one plain ASGI middleware (no per-request task and stream as ``@app.middleware`` has:
    the PLC polls pass through it thousands of times a second)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        """``settings``: ``allowed_origins`` and ``auth_reads``."""
        self.app, self.settings = app, settings
        self.allowed = frozenset(o.strip().rstrip("/")
                                 for o in settings.allowed_origins.split(",") if o.strip())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse, or pass the request on with the headers added; audit a write whatever
        its outcome (an exception is audited as 500 and raised on)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        write = scope["method"] not in SAFE_METHODS
        refused: ApiError | None = None
        if write and not origin_allowed(request, self.allowed):
            refused = ApiError(403, "forbidden", "cross-origin write refused")
        elif not write and self.settings.auth_reads and _protected_read(request.url.path):
            refused = await run_in_threadpool(_check_viewer, request)
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                _security_headers(request, MutableHeaders(scope=message))
            await send(message)

        try:
            if refused is not None:
                response = error_response(refused.status, refused.error, refused.detail,
                                          refused.headers)
                await response(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
        finally:
            if write:
                await run_in_threadpool(_audit, request, status)


def install_security(app: FastAPI, settings: Settings) -> None:
    """The Origin check, security headers and audit of writes (:class:`SecurityMiddleware`)."""
    app.add_middleware(SecurityMiddleware, settings=settings)


def _protected_read(path: str) -> bool:
    """Reads of the log, images and statistics; the PLC's ``/api/v1/lines...`` stay open."""
    return path.startswith("/api/") and not path.startswith("/api/v1/lines")


def _check_viewer(request: Request) -> ApiError | None:
    try:
        principal = request.app.state.services.auth.authenticate(
            request.headers.get("x-api-key"), client_address(request))
    except ApiError as exc:
        return exc
    request.state.principal = principal
    return None


def _audit(request: Request, status: int) -> None:
    principal: Principal = getattr(request.state, "principal", ANONYMOUS)
    try:
        request.app.state.services.access.audit(
            actor=principal.name, role=principal.role, client=client_address(request),
            action=f"{request.method} {request.url.path}", result=str(status),
            target=request.url.query or None,
        )
    except SQLAlchemyError as exc:
        log.error("audit record of %s %s not written: %s", request.method, request.url.path,
                  type(exc).__name__)
