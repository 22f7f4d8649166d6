"""The defect log at 100k inspections (SQLite): every filter the UI offers pages with an index
seek to the cursor - no OFFSET, no sort of the whole log, no walk from the newest row - and
a page deep in the log costs about what the first page costs. Also the chart and neighbour
aggregates on the real PostgreSQL (time buckets are computed in SQL per dialect)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

from core.result import Defect, InspectionResult
from storage.aggregates import LogAggregates, LogFilter
from storage.db import make_engine, migrate, write_engine
from storage.orm import Defect as DefectRow
from storage.orm import Inspection as InspectionRow
from storage.repository import InspectionRepository, encode_cursor

T0 = datetime(2026, 1, 1, tzinfo=UTC)
N = 100_000
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FILTERS: list[dict[str, Any]] = [
    {}, {"line_id": "line-1"}, {"verdict": "NG"}, {"line_id": "line-2", "verdict": "NG"},
    {"reviewed": True}, {"defect_class": "pit"}, {"since": T0 + timedelta(seconds=100)},
]


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """100k inspections on 4 lines, one a second; every 5th NG with a defect."""
    url = f"sqlite:///{tmp_path_factory.mktemp('scale') / 'log.db'}"
    migrate(url)
    engine = make_engine(url)
    rows = [
        {"line_id": f"line-{k % 4}", "frame_id": k, "captured_at": T0 + timedelta(seconds=k),
         "verdict": "NG" if k % 5 == 0 else "OK", "code": 1 if k % 5 == 0 else 0,
         "latency_ms": 1.0, "recipe": "r", "width": 8, "height": 8, "brightness": 1.0,
         "models": {}, "mask_classes": ["background"], "reviewed": k % 97 == 0}
        for k in range(N)
    ]
    with write_engine(engine).begin() as conn:
        conn.execute(InspectionRow.__table__.insert(), rows)
        ng = conn.execute(text("SELECT id FROM inspections WHERE verdict = 'NG'")).scalars()
        conn.execute(DefectRow.__table__.insert(), [
            {"inspection_id": i, "class": "pit" if i % 3 else "scratch", "score": 0.5, "x": 0,
             "y": 0, "w": 1, "h": 1, "area_px": 1, "model": "m"} for i in ng
        ])
    yield engine
    engine.dispose()


def _plan_and_time(engine: Engine, flt: dict[str, Any], cursor: str | None) -> tuple[list, float]:
    repo = InspectionRepository(engine)
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        t = time.perf_counter()
        items, _ = repo.query(limit=50, cursor=cursor, **flt)
        elapsed = time.perf_counter() - t
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert len(items) == 50
    sql, params = next(s for s in seen if "FROM inspections" in s[0] and "LIMIT" in s[0])
    with engine.connect() as conn:
        plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
    return plan, elapsed


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: ",".join(f) or "none")
def test_deep_pages_seek_the_index(big_log: Engine, flt: dict[str, Any]) -> None:
    deep = encode_cursor(T0 + timedelta(seconds=5000), 5001)  # 95 % of the log behind us
    _, first_s = _plan_and_time(big_log, flt, None)
    plan, deep_s = _plan_and_time(big_log, flt, deep)
    main = plan[0]
    assert main.startswith("SEARCH inspections USING INDEX") and "captured_at<?" in main, plan
    assert not any("TEMP B-TREE" in step for step in plan), plan
    assert not any(step.startswith("SCAN") for step in plan), plan
    assert deep_s < max(0.25, 10 * first_s), (first_s, deep_s)


def test_walking_the_whole_log_by_cursor(big_log: Engine) -> None:
    repo = InspectionRepository(big_log)
    cursor, seen, pages = None, 0, 0
    t = time.perf_counter()
    while True:
        items, cursor = repo.query(verdict="NG", limit=500, cursor=cursor)
        seen += len(items)
        pages += 1
        if cursor is None:
            break
    assert seen == N // 5 and pages == N // 5 // 500
    assert time.perf_counter() - t < 60


@pytest.fixture()
def pg_engine() -> Iterator[Engine]:
    """A fresh schema on the real PostgreSQL (skipped when it does not answer)."""
    admin = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    schema = f"li_ui_{uuid.uuid4().hex[:10]}"
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 unreachable: {str(exc).splitlines()[0]}")
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    migrate(url)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.postgres
def test_aggregates_on_postgresql(pg_engine: Engine) -> None:
    repo = InspectionRepository(pg_engine)
    base = datetime(2026, 11, 23, 8, 0, 0, 250000, tzinfo=UTC)
    ids = []
    for k in range(12):  # every 10 min; NG when k % 3 == 0, class alternating
        ng = k % 3 == 0
        ids.append(repo.save(InspectionResult(
            line_id=f"l{k % 2}", frame_id=k, captured_at=base + timedelta(minutes=10 * k),
            verdict="NG" if ng else "OK",
            defects=[Defect(cls="pit" if k % 2 else "scratch", score=0.9, bbox=(0, 0, 1, 1),
                            area_px=1, model="m")] if ng else [],
        ))[0])
    agg = LogAggregates(pg_engine)
    chart = agg.defects_per_class(base - timedelta(minutes=1), base + timedelta(hours=2), 3600)
    assert chart["buckets"] == ["2026-11-23T07:00:00Z", "2026-11-23T08:00:00Z",
                                "2026-11-23T09:00:00Z", "2026-11-23T10:00:00Z"]  # until 10:00.25
    # NG at k = 0 (08:00, scratch), 3 (08:30, pit), 6 (09:00, scratch), 9 (09:30, pit)
    assert chart["series"] == {"pit": [0, 1, 1, 0], "scratch": [0, 1, 1, 0]}
    rates = {r["line_id"]: r for r in agg.verdicts_per_line(base, base + timedelta(hours=3))}
    assert (rates["l0"]["ng"], rates["l0"]["total"], rates["l1"]["ng"]) == (2, 6, 2)
    assert agg.neighbours(ids[6], LogFilter(verdict="NG")) == {"older": ids[3], "newer": ids[9]}
    assert agg.neighbours(ids[0], LogFilter(verdict="NG"))["older"] is None
    assert agg.last_ng("l1") == {"inspection_id": ids[9],
                                 "captured_at": "2026-11-23T09:30:00.250000Z"}
    assert agg.facets() == {"lines": ["l0", "l1"], "classes": ["pit", "scratch"]}
