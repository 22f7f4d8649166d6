"""Inference worker delivery guarantees on the real parts: the real Redis at 127.0.0.1:6379
(unique line ids, cleaned up), the real inspection log - ``InspectionRepository`` on a
migrated SQLite file and on a fresh schema of the real PostgreSQL - and the real image store
in a temporary folder.

Failures are injected at the seams the worker crosses: a process "killed" right after the
log committed a frame (before its XACK), database errors raised by the log (a real
``sqlalchemy.exc.OperationalError``), a Redis connection reset on XACK.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError

from core.bus import GROUP, latest_verdict, stream_key
from core.frame import Frame
from core.recipe import Recipe
from core.result import InspectionResult
from core.settings import Settings
from inference.pipeline import Inspector
from inference.worker import run_inference
from storage.db import make_engine, migrate
from storage.images import ImageStore
from storage.repository import InspectionRecord, InspectionRepository

pytestmark = pytest.mark.redis

FW, FH = 256, 192
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InspectionRepository]:
    """The real inspection log, migrated: a SQLite file or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'log.db'}"
    else:
        url = request.getfixturevalue("pg_schema_url")
    migrate(url)
    engine = make_engine(url)
    yield InspectionRepository(engine)
    engine.dispose()


@pytest.fixture()
def store(tmp_path: Path) -> ImageStore:
    """The real image store in a temporary folder."""
    return ImageStore(tmp_path / "images")


def logged(repo: InspectionRepository, line: str) -> dict[int, InspectionRecord]:
    """Every logged inspection of ``line`` by frame id (one row per frame by contract)."""
    items, cursor = repo.query(line_id=line, limit=500)
    assert cursor is None
    by_frame = {rec.result.frame_id: rec for rec in items}
    assert len(by_frame) == len(items), "a frame logged twice"
    return by_frame


class Spy:
    """The real log, counting saves and noting whether the frame's stream entry was still
    pending (not yet acknowledged) when the log committed it."""

    def __init__(self, repo: InspectionRepository, r: redis.Redis | None = None,
                 key: str = "", entry_of: dict[int, bytes] | None = None) -> None:
        self.repo, self.saves = repo, 0
        self.r, self.key, self.entry_of = r, key, entry_of or {}
        self.pending_at_save: list[bool] = []

    def save(self, result: InspectionResult) -> tuple[int, bool]:
        self.saves += 1
        out = self.repo.save(result)
        if self.r is not None and result.frame_id in self.entry_of:
            pending = self.r.xpending_range(self.key, GROUP, "-", "+", 1000)
            ids = {p["message_id"] for p in pending}
            self.pending_at_save.append(self.entry_of[result.frame_id] in ids)
        return out

    def set_image_paths(self, *args: Any) -> None:
        self.repo.set_image_paths(*args)


class Killed(BaseException):
    """Simulates the worker process dying (not caught by the worker)."""


@pytest.fixture(scope="module")
def inspector(model_dir: Path) -> Inspector:
    rec = Recipe.model_validate(
        {
            "name": "t",
            "models": [
                {"name": "seg", "path": str(model_dir / "seg.onnx"), "tile": 64, "min_area": 20}
            ],
        }
    )
    return Inspector(rec, Settings())


def _settings(line: str, worker: str) -> Settings:
    return Settings(line_id=line, redis_url=REDIS_URL, worker_name=worker)


def _push(r: redis.Redis, line: str, n: int, start: int = 1) -> dict[int, bytes]:
    """n frames; odd frame ids carry a dark square (NG), even ones are clean (OK)."""
    ids = {}
    for fid in range(start, start + n):
        img = np.full((FH, FW), 200, np.uint8)
        if fid % 2:
            img[40:60, 100:130] = 10
        f = Frame(line, fid, fid * 1000, time.time(), FW, FH, "Mono8", img.tobytes())
        ids[fid] = r.xadd(stream_key(line), f.to_fields())
    return ids


def _run(**kw: Any) -> Any:
    stop = threading.Event()
    timer = threading.Timer(30.0, stop.set)  # safety net: never hang the suite
    timer.start()
    try:
        return run_inference(stop=stop, block_ms=100, **kw)
    finally:
        timer.cancel()


def test_n_frames_in_n_results(
    redis_client: redis.Redis, line_id: str, inspector: Inspector,
    repo: InspectionRepository, store: ImageStore,
) -> None:
    r = redis_client
    entry_of = _push(r, line_id, 6)
    bad = Frame(line_id, 99, 0, time.time(), FW, FH, "Mono8", b"\x00" * 100)  # wrong size
    r.xadd(stream_key(line_id), bad.to_fields())
    spy = Spy(repo, r, stream_key(line_id), entry_of)
    stats = _run(
        settings=_settings(line_id, "w1"),
        recipe=inspector.recipe,
        max_frames=7,
        repository=spy,
        image_store=store,
        inspector=inspector,
        redis_client=r,
    )
    assert (stats.processed, stats.duplicates, stats.dropped, stats.ng) == (6, 0, 1, 3)
    rows = logged(repo, line_id)
    assert sorted(rows) == [1, 2, 3, 4, 5, 6]  # never the bad frame
    assert all(spy.pending_at_save) and len(spy.pending_at_save) == 6  # acked after commit
    assert r.xpending(stream_key(line_id), GROUP)["pending"] == 0
    for fid, rec in rows.items():
        assert rec.result.verdict == ("NG" if fid % 2 else "OK")
        if fid % 2:
            assert tuple(rec.result.defects[0].bbox) == (100, 40, 30, 20)
            # only NG frames retained, on disk, named after their own inspection
            assert rec.image_path and rec.mask_path
            assert (store.root / rec.image_path).is_file()
            assert (store.root / rec.mask_path).is_file()
            assert str(rec.id) in Path(rec.image_path).name
        else:
            assert rec.image_path is None and rec.mask_path is None
    sample = REGISTRY.get_sample_value
    assert sample("lineinspect_verdicts_total", {"line": line_id, "verdict": "NG"}) == 3
    assert sample("lineinspect_verdicts_total", {"line": line_id, "verdict": "OK"}) == 3
    assert sample("lineinspect_defects_total", {"line": line_id, "class": "dark_spot"}) == 3
    assert sample("lineinspect_frames_dropped_total", {"line": line_id}) == 1
    assert sample("lineinspect_grab_to_verdict_seconds_count", {"line": line_id}) == 6
    assert sample("lineinspect_stream_lag_frames", {"line": line_id}) == 0
    assert sample("lineinspect_model_inference_seconds_count", {"model": "seg"}) >= 6
    v = latest_verdict(r, line_id)
    assert v["frame_id"] == 6 and v["inspection_id"] == rows[6].id
    assert v["verdict"] == "OK" and v["code"] == 0


def test_killed_between_save_and_ack_is_reclaimed(
    redis_client: redis.Redis, line_id: str, inspector: Inspector,
    repo: InspectionRepository, store: ImageStore,
) -> None:
    r = redis_client
    _push(r, line_id, 5)
    spy = Spy(repo)

    class DiesAfterSave:
        def save(self, result: InspectionResult) -> tuple[int, bool]:
            out = spy.save(result)
            if result.frame_id == 3:
                raise Killed  # committed, but the process dies before XACK
            return out

        def set_image_paths(self, *a: Any) -> None:
            spy.set_image_paths(*a)

    with pytest.raises(Killed):
        _run(
            settings=_settings(line_id, "w-dead"),
            recipe=inspector.recipe,
            repository=DiesAfterSave(),
            image_store=store,
            inspector=inspector,
            redis_client=r,
        )
    assert sorted(logged(repo, line_id)) == [1, 2, 3]
    pending = r.xpending_range(stream_key(line_id), GROUP, "-", "+", 100)
    assert pending and {p["consumer"] for p in pending} == {b"w-dead"}
    first_id_of_3 = logged(repo, line_id)[3].id
    time.sleep(0.3)
    stats = _run(
        settings=_settings(line_id, "w-alive"),
        recipe=inspector.recipe,
        max_frames=3,
        repository=spy,
        image_store=store,
        inspector=inspector,
        redis_client=r,
        claim_idle_ms=200,
    )
    assert stats.reclaimed >= 1 and stats.duplicates == 1 and stats.processed == 2
    rows = logged(repo, line_id)
    assert sorted(rows) == [1, 2, 3, 4, 5]  # exactly one row per frame
    assert rows[3].id == first_id_of_3  # the reclaimed frame kept its first record
    assert spy.saves == 6  # frame 3 saved twice, logged once
    assert r.xpending(stream_key(line_id), GROUP)["pending"] == 0


def test_db_error_is_retried_not_acked(
    redis_client: redis.Redis, line_id: str, inspector: Inspector,
    repo: InspectionRepository,
) -> None:
    r = redis_client
    _push(r, line_id, 3)
    failures = {"left": 2}
    pending_while_failing: list[int] = []

    class Flaky:
        def save(self, result: InspectionResult) -> tuple[int, bool]:
            if result.frame_id == 2 and failures["left"]:
                failures["left"] -= 1
                pending_while_failing.append(r.xpending(stream_key(line_id), GROUP)["pending"])
                raise OperationalError("INSERT INTO inspections ...", {},
                                       Exception("database is locked"))
            return repo.save(result)

        def set_image_paths(self, *a: Any) -> None:
            repo.set_image_paths(*a)

    stats = _run(
        settings=_settings(line_id, "w1"),
        recipe=inspector.recipe,
        max_frames=3,
        repository=Flaky(),
        inspector=inspector,
        redis_client=r,
    )
    assert len(pending_while_failing) == 2 and min(pending_while_failing) >= 1  # not acked
    assert stats.errors == 2 and stats.processed == 3
    assert sorted(logged(repo, line_id)) == [1, 2, 3]
    assert r.xpending(stream_key(line_id), GROUP)["pending"] == 0


class FlakyRedis:
    """Proxy to a real client whose first XACK fails with a connection error."""

    def __init__(self, r: redis.Redis) -> None:
        self._r, self.failed = r, False

    def xack(self, *a: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise redis.ConnectionError("connection reset by peer")
        return self._r.xack(*a)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._r, name)


def test_redis_error_on_ack_retries_without_double_logging(
    redis_client: redis.Redis, line_id: str, inspector: Inspector,
    repo: InspectionRepository,
) -> None:
    r = redis_client
    _push(r, line_id, 2)
    spy = Spy(repo)
    stats = _run(
        settings=_settings(line_id, "w1"),
        recipe=inspector.recipe,
        max_frames=2,
        repository=spy,
        inspector=inspector,
        redis_client=FlakyRedis(r),
    )
    # frame 1 was committed, its XACK failed: re-read from our pending list, found logged, acked
    assert (stats.errors, stats.processed, stats.duplicates) == (1, 1, 1)
    assert sorted(logged(repo, line_id)) == [1, 2]
    assert spy.saves == 3
    assert r.xpending(stream_key(line_id), GROUP)["pending"] == 0


def test_two_workers_on_one_stream_one_killed_every_frame_logged_once(
    redis_client: redis.Redis, line_id: str, inspector: Inspector,
    repo: InspectionRepository,
) -> None:
    """Two workers consume one stream at the same time (as compose runs them); one dies
    right after the log committed its third frame. The other takes over its pending
    entries: every frame is logged exactly once and nothing stays pending."""
    r, n = redis_client, 24
    _push(r, line_id, n)
    spy = Spy(repo)
    deaths: list[BaseException] = []

    class DiesOnThirdSave:
        def __init__(self) -> None:
            self.saves = 0

        def save(self, result: InspectionResult) -> tuple[int, bool]:
            out = spy.save(result)
            self.saves += 1
            if self.saves == 3:
                raise Killed
            return out

        def set_image_paths(self, *a: Any) -> None:
            spy.set_image_paths(*a)

    def doomed() -> None:
        try:
            _run(settings=_settings(line_id, "w-doomed"), recipe=inspector.recipe,
                 repository=DiesOnThirdSave(), inspector=inspector, redis_client=r)
        except Killed as exc:
            deaths.append(exc)

    stop = threading.Event()

    def done() -> None:  # stops the survivor once the line is fully logged and acked
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not stop.is_set():
            if (len(logged(repo, line_id)) == n
                    and r.xpending(stream_key(line_id), GROUP)["pending"] == 0):
                break
            time.sleep(0.2)
        stop.set()

    threads = [threading.Thread(target=doomed), threading.Thread(target=done)]
    for t in threads:
        t.start()
    run_inference(settings=_settings(line_id, "w-survivor"), recipe=inspector.recipe,
                  repository=spy, inspector=inspector, redis_client=r, stop=stop,
                  block_ms=100, claim_idle_ms=300)
    for t in threads:
        t.join(30)
    assert len(deaths) == 1
    rows = logged(repo, line_id)
    assert sorted(rows) == list(range(1, n + 1))
    assert spy.saves == n + 1  # the doomed worker's last frame: committed, then again
    assert r.xpending(stream_key(line_id), GROUP)["pending"] == 0
