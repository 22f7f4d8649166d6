"""InspectionRepository against SQLite and the real PostgreSQL (see conftest.db_url)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect as sa_inspect

from storage.db import current_revision, head_revision, make_engine, migrate
from storage.repository import (
    InspectionRepository,
    InvalidCursor,
    decode_cursor,
    encode_cursor,
)
from storage.schema import metadata

T0 = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)


def test_migrations_apply_on_empty_db(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) is None
        migrate(db_url)
        migrate(db_url)  # idempotent
        assert current_revision(engine) == head_revision() is not None
        tables = set(sa_inspect(engine).get_table_names())
        assert {"inspections", "defects", "reviews", "alembic_version"} <= tables
        uniques = sa_inspect(engine).get_unique_constraints("inspections")
        assert any(u["column_names"] == ["line_id", "frame_id"] for u in uniques)
        with engine.connect() as conn:  # the migrated schema is what the models say
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_save_get_roundtrip(repo: InspectionRepository, make_result) -> None:
    result = make_result(frame_id=7, captured_at=T0, verdict="NG", classes=("scratch", "pit"))
    inspection_id, created = repo.save(result)
    assert created and inspection_id > 0
    got = repo.get(inspection_id)
    assert got is not None
    assert got.inspection_id == inspection_id
    assert got.captured_at == T0 and got.captured_at.tzinfo is not None
    assert got.verdict == "NG" and got.code == 1
    assert [d.as_json() for d in got.defects] == [d.as_json() for d in result.defects]
    assert got.models == {"m": "1.0.0"}
    assert got.mask_classes == ["background", "scratch", "pit"]
    assert (got.width, got.height, got.brightness, got.latency_ms) == (1296, 966, 101.25, 12.5)
    record = repo.get_record(inspection_id)
    assert record is not None and not record.reviewed and record.image_path is None
    body = record.as_json(now=T0 + timedelta(seconds=1))
    assert body["captured_at"] == "2026-11-23T08:00:00Z" and body["age_ms"] == 1000.0
    assert repo.get(inspection_id + 1000) is None


def test_timezones_normalised_to_utc(repo: InspectionRepository, make_result) -> None:
    cet = timezone(timedelta(hours=1))
    a, _ = repo.save(make_result(frame_id=1, captured_at=datetime(2026, 1, 1, 9, 0, tzinfo=cet)))
    b, _ = repo.save(make_result(frame_id=2, captured_at=datetime(2026, 1, 1, 8, 30)))  # naive=UTC
    assert repo.get(a).captured_at == datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    assert repo.get(b).captured_at == datetime(2026, 1, 1, 8, 30, tzinfo=UTC)
    items, _ = repo.query()
    assert [i.id for i in items] == [b, a]


def test_save_is_idempotent(repo: InspectionRepository, make_result) -> None:
    first = repo.save(make_result(frame_id=42, verdict="NG", classes=("scratch",)))
    again = repo.save(make_result(frame_id=42, verdict="OK"))  # a re-delivery
    assert first[1] is True and again == (first[0], False)
    assert repo.count() == 1
    assert repo.get(first[0]).verdict == "NG"  # the first write wins
    assert len(repo.get(first[0]).defects) == 1
    other_line = repo.save(make_result(line_id="line-2", frame_id=42))
    assert other_line[1] is True and repo.count() == 2


def test_concurrent_saves_make_one_row(db_url: str, repo: InspectionRepository,
                                       make_result) -> None:
    """Four workers (separate engines, like separate processes) save the same frame."""
    workers = 4
    result = make_result(frame_id=1000, verdict="NG", classes=("scratch", "pit"))
    barrier = threading.Barrier(workers)
    outcomes: list[tuple[int, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        engine = make_engine(db_url)
        try:
            mine = InspectionRepository(engine)
            barrier.wait()
            out = mine.save(result)
            with lock:
                outcomes.append(out)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(outcomes) == workers
    assert sum(created for _, created in outcomes) == 1
    assert len({i for i, _ in outcomes}) == 1
    assert repo.count() == 1
    assert len(repo.get(outcomes[0][0]).defects) == 2


def test_filters(repo: InspectionRepository, make_result) -> None:
    ids = {}
    rows = [
        ("line-1", 1, 0, "OK", ()),
        ("line-1", 2, 1, "NG", ("scratch",)),
        ("line-1", 3, 2, "NG", ("pit", "scratch")),
        ("line-2", 1, 3, "NG", ("pit",)),
        ("line-2", 2, 4, "OK", ()),
        ("line-2", 3, 5, "UNKNOWN", ()),
    ]
    for line, frame, minute, verdict, classes in rows:
        ids[(line, frame)], _ = repo.save(
            make_result(line, frame, T0 + timedelta(minutes=minute), verdict, classes)
        )

    def q(**kw) -> list[tuple[str, int]]:
        items, cursor = repo.query(**kw)
        assert cursor is None
        return [(i.result.line_id, i.result.frame_id) for i in items]

    assert q() == [("line-2", 3), ("line-2", 2), ("line-2", 1), ("line-1", 3), ("line-1", 2),
                   ("line-1", 1)]
    assert q(line_id="line-1") == [("line-1", 3), ("line-1", 2), ("line-1", 1)]
    assert q(verdict="NG") == [("line-2", 1), ("line-1", 3), ("line-1", 2)]
    assert q(verdict="NG", line_id="line-2") == [("line-2", 1)]
    assert q(defect_class="scratch") == [("line-1", 3), ("line-1", 2)]
    assert q(defect_class="pit", line_id="line-1") == [("line-1", 3)]
    assert q(defect_class="nothing") == []
    assert q(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4)) == [
        ("line-2", 1), ("line-1", 3)]  # since inclusive, until exclusive
    assert q(since=(T0 + timedelta(minutes=5)).replace(tzinfo=None)) == [("line-2", 3)]
    assert q(reviewed=True) == []
    review = repo.add_review(ids[("line-1", 2)], "qa", "confirm", "NG", ["scratch"], "ok")
    assert review is not None and review.action == "confirm"
    assert q(reviewed=True) == [("line-1", 2)]
    assert len(q(reviewed=False)) == 5
    record = repo.get_record(ids[("line-1", 2)])
    assert record.reviewed and record.reviews[0].classes == ["scratch"]
    assert record.as_json()["review"]["reviewer"] == "qa"
    assert repo.add_review(10**9, "qa", "confirm") is None
    with pytest.raises(ValueError):
        repo.add_review(ids[("line-1", 2)], "qa", "approve")
    assert repo.count(line_id="line-2") == 3 and repo.count(verdict="NG") == 3
    assert repo.max_frame_id("line-2") == 3 and repo.max_frame_id("nope") is None


def test_cursor_paging_250_rows(repo: InspectionRepository, make_result) -> None:
    """Each row exactly once, newest first; ties on captured_at broken by id; rows added
    while paging do not shift pages."""
    for n in range(250):  # five frames per timestamp: ties
        repo.save(make_result("line-1", n, T0 + timedelta(seconds=n // 5), "NG" if n % 3 else "OK"))
    expected = [i.id for i in repo.query(limit=500)[0]]
    assert len(expected) == 250
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        items, cursor = repo.query(limit=37, cursor=cursor)
        seen += [i.id for i in items]
        pages += 1
        if pages == 2:  # a newer frame arrives meanwhile: not in this walk, nothing repeats
            repo.save(make_result("line-1", 10_000, T0 + timedelta(hours=1)))
        if cursor is None:
            break
    assert pages == 7
    assert seen == expected and len(set(seen)) == 250
    keys = [(r.result.captured_at, r.id) for r in repo.query(limit=500)[0]][1:]
    assert keys == sorted(keys, reverse=True)
    # with a filter
    ng, cursor, walked = [], None, 0
    while True:
        items, cursor = repo.query(verdict="NG", limit=50, cursor=cursor)
        ng += [i.result.frame_id for i in items]
        walked += 1
        if cursor is None:
            break
    assert sorted(ng) == [n for n in range(250) if n % 3]


def test_cursor_is_opaque_and_validated(repo: InspectionRepository) -> None:
    c = encode_cursor(T0, 12)
    assert c.replace("-", "").replace("_", "").isalnum()
    assert decode_cursor(c) == (T0, 12)
    for bad in ["", "nonsense", "eyJ2IjoyfQ", "e30", "x" * 300, encode_cursor(T0, 1)[:-3]]:
        with pytest.raises(InvalidCursor):
            repo.query(cursor=bad or "=")


def test_image_paths(repo: InspectionRepository, make_result) -> None:
    a, _ = repo.save(make_result(frame_id=1, verdict="NG"))
    b, _ = repo.save(make_result(frame_id=2, verdict="NG"))
    repo.set_image_paths(a, "l/d/1.png", "l/d/1.mask.png")
    repo.set_image_paths(b, "l/d/2.png", None)
    assert repo.get_record(a).image_path == "l/d/1.png"
    assert repo.clear_image_paths(["l/d/1.png", "l/d/1.mask.png", "other.png"]) == 2
    ra, rb = repo.get_record(a), repo.get_record(b)
    assert ra.image_path is None and ra.mask_path is None
    assert rb.image_path == "l/d/2.png" and rb.mask_path is None


def test_delete_before(repo: InspectionRepository, make_result) -> None:
    old, _ = repo.save(make_result(frame_id=1, captured_at=T0, verdict="NG", classes=("pit",)))
    repo.add_review(old, "qa", "false_reject", "OK", [])
    new, _ = repo.save(make_result(frame_id=2, captured_at=T0 + timedelta(days=2)))
    assert repo.delete_before(T0 + timedelta(days=1)) == 1
    assert repo.get(old) is None and repo.get(new) is not None


def test_ng_rate_is_over_inspected_frames(repo: InspectionRepository, make_result) -> None:
    """Frames logged UNKNOWN were not inspected (backlog): they do not dilute the NG rate."""
    from storage.aggregates import LogAggregates

    verdicts = ["NG", "OK", "OK", "OK"] + ["UNKNOWN"] * 6
    for i, v in enumerate(verdicts):
        repo.save(make_result(frame_id=100 + i, captured_at=T0 + timedelta(seconds=i), verdict=v,
                              classes=("pit",) if v == "NG" else ()))
    [row] = LogAggregates(repo.engine).verdicts_per_line(T0, T0 + timedelta(minutes=1))
    assert (row["total"], row["inspected"], row["ng"], row["unknown"]) == (10, 4, 1, 6)
    assert row["ng_rate"] == 0.25


def test_defect_evidence_roundtrip(repo: InspectionRepository, make_result) -> None:
    """A merged defect keeps every model's detection of its region (migration 0003); a
    defect without evidence reads back with an empty list.

    (Re-written by the issue 17 session: an uncommitted first version of this test was lost
    when that session restored this file from git.)
    """
    evidence = [
        {"model": "seg", "class": "scratches", "mapped": "scratch", "score": 0.91,
         "bbox": [10, 20, 30, 40]},
        {"model": "cls", "class": "scratch", "mapped": "scratch", "score": 0.77,
         "bbox": [0, 0, 224, 224]},
    ]
    result = make_result(frame_id=11, captured_at=T0, verdict="NG", classes=("scratch", "pit"))
    result.defects[0].evidence = evidence
    inspection_id, created = repo.save(result)
    assert created
    got = repo.get(inspection_id)
    assert got is not None and [d.cls for d in got.defects] == ["scratch", "pit"]
    assert got.defects[0].evidence == evidence
    assert got.defects[1].evidence == []
