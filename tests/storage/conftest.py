"""Fixtures of the storage tests: the repository on SQLite (temporary file) and on the real
PostgreSQL at 127.0.0.1:5432 (a fresh schema per test, dropped afterwards)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from core.result import Defect, InspectionResult
from storage.db import make_engine, migrate
from storage.repository import InspectionRepository


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL schema (``pg_schema_url``)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lineinspect.db'}"
        return
    yield request.getfixturevalue("pg_schema_url")


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
