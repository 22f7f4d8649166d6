"""The result sequence against the real Redis: dense ids, re-delivery, the window, a cursor
reader that sees every result while several workers publish out of order."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
import redis

from core.bus import CameraStatus, LineSnapshot, latest_verdict, publish_result
from core.plc import plc_status, worst_code
from core.results import read_line

pytestmark = pytest.mark.redis

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def _record(frame_id: int, verdict: str = "OK", captured_ms: int | None = None) -> dict:
    captured = BASE + timedelta(milliseconds=frame_id if captured_ms is None else captured_ms)
    defects = [{"class": "scratch", "score": 0.9, "bbox": [0, 0, 1, 1], "area_px": 1,
                "model": "m"}] * (2 if verdict == "NG" else 0)
    return {"inspection_id": frame_id + 1000, "frame_id": frame_id, "verdict": verdict,
            "code": {"OK": 0, "NG": 1, "UNKNOWN": 2}[verdict], "defects": defects,
            "captured_at": captured.isoformat().replace("+00:00", "Z")}


def test_every_frame_gets_the_next_id_once(redis_client: redis.Redis, line_id: str) -> None:
    r = redis_client
    ids = [publish_result(r, line_id, _record(f, "NG" if f == 3 else "OK")).result_id
           for f in (1, 2, 3, 4)]
    assert ids == [1, 2, 3, 4]
    again = publish_result(r, line_id, _record(3, "NG"))  # re-delivered after a crash
    assert (again.result_id, again.duplicate) == (3, True)
    assert latest_verdict(r, line_id)["result_id"] == 4
    _, page = read_line(r, line_id, after=1)
    assert [x["result_id"] for x in page.results] == [2, 3, 4]
    assert [x["frame_id"] for x in page.results] == [2, 3, 4]
    assert page.results[1]["counts"] == {"scratch": 2} and page.results[1]["code"] == 1
    assert (page.last_result_id, page.ng, page.unknown, page.lost) == (4, 1, 0, 0)
    assert page.totals == {"OK": 3, "NG": 1}  # the repeat was not counted again
    assert page.last_ng_result_id == 3 and not page.has_more and page.next_after == 4


def test_an_old_frame_gets_a_new_id_but_not_the_latest_verdict(
    redis_client: redis.Redis, line_id: str
) -> None:
    r = redis_client
    assert publish_result(r, line_id, _record(10)).latest
    late = publish_result(r, line_id, _record(9, "NG"))  # reclaimed from a dead worker
    assert (late.result_id, late.latest) == (2, False)
    assert latest_verdict(r, line_id)["frame_id"] == 10
    _, page = read_line(r, line_id, after=1)
    assert [x["frame_id"] for x in page.results] == [9] and page.ng == 1


def test_a_cursor_behind_the_window_counts_what_it_lost(
    redis_client: redis.Redis, line_id: str
) -> None:
    r = redis_client
    for f in range(1, 13):
        publish_result(r, line_id, _record(f, "NG" if f in (3, 11) else "OK"), maxlen=5)
    _, page = read_line(r, line_id, after=2, limit=3)
    assert page.oldest_result_id == 8 and page.lost == 5  # ids 3..7 are gone (3 was NG)
    assert [x["result_id"] for x in page.results] == [8, 9, 10]
    assert page.ng == 1 and page.pending == 10 and page.has_more and page.next_after == 10
    assert worst_code(page.ng, page.unknown, page.lost, 0) == 1
    _, page = read_line(r, line_id, after=2, limit=0)
    assert page.results == [] and page.next_after == 7  # skip the lost range
    _, page = read_line(r, line_id, after=11)
    assert (page.lost, page.ng, page.pending) == (0, 0, 1)


def test_a_cursor_ahead_of_the_sequence_restarts(redis_client: redis.Redis, line_id: str) -> None:
    publish_result(redis_client, line_id, _record(1, "NG"))
    _, page = read_line(redis_client, line_id, after=500)  # Redis lost its data
    assert page.cursor_reset and page.after == 500 and page.effective_after == 0
    assert [x["result_id"] for x in page.results] == [1] and page.ng == 1 and page.pending == 1


@pytest.mark.parametrize(
    ("ng", "unknown", "lost", "answer", "worst"),
    [(0, 0, 0, 0, 0), (1, 0, 0, 0, 1), (1, 3, 2, 2, 1), (0, 1, 0, 0, 2), (0, 0, 1, 0, 2),
     (0, 0, 0, 2, 2), (0, 0, 0, 1, 2)],
)
def test_worst_code(ng: int, unknown: int, lost: int, answer: int, worst: int) -> None:
    assert worst_code(ng, unknown, lost, answer) == worst


def test_plc_status_is_fail_safe(redis_client: redis.Redis, line_id: str) -> None:
    r = redis_client
    now = datetime.now(UTC)
    for f in range(1, 6):
        rec = _record(f, "NG" if f == 2 else "OK")
        rec["captured_at"] = now.isoformat().replace("+00:00", "Z")
        rec["stale_after_ms"] = 1000
        publish_result(r, line_id, rec)
    snap, page = read_line(r, line_id, after=2, limit=2)
    alive = LineSnapshot(snap.verdict, CameraStatus(True, now.timestamp(), {}), True)
    status = plc_status(line_id, alive, page, now, buffer_size=2)
    assert (status.code, status.state, status.worst_code) == (0, 1, 0)  # the NG was acked
    assert (status.pending, status.overrun, [x["result_id"] for x in status.buffer]) == (
        3, True, [3, 4])
    later = plc_status(line_id, alive, page, now + timedelta(seconds=2), buffer_size=8)
    assert (later.code, later.state, later.worst_code, later.overrun) == (2, 2, 2, False)
    snap, page = read_line(r, line_id, after=1, limit=8)
    dead = LineSnapshot(snap.verdict, CameraStatus(False, now.timestamp(), {}), True)
    status = plc_status(line_id, dead, page, now, buffer_size=8)
    assert (status.code, status.state, status.worst_code, status.ng_since) == (2, 3, 1, 1)


def test_out_of_order_workers_and_a_cursor_reader_see_every_result_once(
    redis_client: redis.Redis, line_id: str
) -> None:
    """Three workers publish 900 frames (every 7th NG) in shuffled order with capture times
    out of order; a reader pages through with its cursor while they run. It sees ids
    1..900 once each, every frame once, every NG, and its NG count matches the pages."""
    n, workers = 900, 3
    frames = list(range(1, n + 1))
    random.Random(7).shuffle(frames)
    parts = [frames[i::workers] for i in range(workers)]
    start = threading.Barrier(workers + 1)
    done = threading.Event()
    errors: list[BaseException] = []

    def publisher(ids: list[int]) -> None:
        r = redis.Redis(connection_pool=redis_client.connection_pool)
        try:
            start.wait()
            for fid in ids:
                publish_result(r, line_id, _record(fid, "NG" if fid % 7 == 0 else "OK"))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    seen: list[dict] = []
    ng_counted = 0
    threads = [threading.Thread(target=publisher, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    start.wait()
    cursor = 0
    while True:
        finished = done.is_set()
        _, page = read_line(redis_client, line_id, after=cursor, limit=random.randint(1, 40))
        assert page.lost == 0
        ng_in_page = sum(1 for x in page.results if x["code"] == 1)
        assert page.ng >= ng_in_page  # counts cover the page and beyond
        ng_counted += ng_in_page
        seen.extend(page.results)
        cursor = page.next_after
        if finished and not page.has_more:
            break
        if all(not t.is_alive() for t in threads):
            done.set()
    assert not errors, errors
    assert [x["result_id"] for x in seen] == list(range(1, n + 1))
    assert sorted(x["frame_id"] for x in seen) == list(range(1, n + 1))
    assert ng_counted == n // 7 == sum(1 for x in seen if x["verdict"] == "NG")
    assert latest_verdict(redis_client, line_id)["frame_id"] == n
