"""Fixtures of the storage tests: the repository on SQLite (temporary file) and on the real
PostgreSQL at 127.0.0.1:5432 (a fresh schema per test, dropped afterwards)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from core.result import Defect, InspectionResult
from storage.db import make_engine, migrate
from storage.repository import InspectionRepository
from tests.servers import missing

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pg_unreachable() -> str | None:
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except OperationalError as exc:
        return f"PostgreSQL at 127.0.0.1:5432 unreachable: {str(exc).splitlines()[0]}"
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_available() -> str | None:
    """None when PostgreSQL answers, else the reason to skip."""
    return _pg_unreachable()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path, pg_available: str | None) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL schema (search_path)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lineinspect.db'}"
        return
    if pg_available:
        missing(pg_available)
    schema = f"li_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture()
def repo(db_url: str) -> Iterator[InspectionRepository]:
    """A repository on the migrated database."""
    migrate(db_url)
    engine = make_engine(db_url)
    yield InspectionRepository(engine)
    engine.dispose()


def build_result(
    line_id: str = "line-1",
    frame_id: int = 1,
    captured_at: datetime | None = None,
    verdict: str = "OK",
    classes: tuple[str, ...] = (),
) -> InspectionResult:
    """An inspection result with one defect per class in ``classes``."""
    return InspectionResult(
        line_id=line_id,
        frame_id=frame_id,
        captured_at=captured_at or datetime.now(UTC),
        verdict=verdict,
        defects=[
            Defect(cls=c, score=0.9 - 0.1 * i, bbox=(10 * i, 20, 30, 40), area_px=1200, model="m")
            for i, c in enumerate(classes)
        ],
        models={"m": "1.0.0"},
        latency_ms=12.5,
        recipe="steel-strip",
        width=1296,
        height=966,
        brightness=101.25,
        mask_classes=["background", *dict.fromkeys(classes)],
    )


@pytest.fixture()
def make_result():  # noqa: ANN201 - returns build_result
    """:func:`build_result`, as a fixture (test modules do not import conftest)."""
    return build_result
