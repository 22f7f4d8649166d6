"""What a test does when a server or tool it needs is missing (issue 17.10): it FAILS, so CI
cannot pass by skipping the tests that prove the guarantees, unless
``LINEINSPECT_ALLOW_SKIP=1`` is set (a developer's machine without the servers); then it is
skipped with the reason."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest
from sqlalchemy import create_engine, text

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: Set to 1 to skip (instead of fail) the tests whose servers or tools are missing.
ALLOW_SKIP_ENV = "LINEINSPECT_ALLOW_SKIP"


def missing(reason: str) -> NoReturn:
    """A server or tool a test needs is missing: fail, or skip when
    ``LINEINSPECT_ALLOW_SKIP`` is set."""
    if os.environ.get(ALLOW_SKIP_ENV, "") not in ("", "0"):
        pytest.skip(reason)
    pytest.fail(f"{reason} (set {ALLOW_SKIP_ENV}=1 to skip instead)", pytrace=False)


def pg_unreachable() -> str | None:
    """None when the PostgreSQL at 127.0.0.1:5432 answers, else why not."""
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - any reason not to reach it
        return f"PostgreSQL at 127.0.0.1:5432 unreachable: {str(exc).splitlines()[0]}"
    finally:
        engine.dispose()
