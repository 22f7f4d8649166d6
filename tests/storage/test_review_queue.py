"""The "to review" queue (issue 21.5) on the real SQLite file and PostgreSQL schema: the daily
cap per line, reasons merged per frame, the order QA sees, and a review takes an item off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.review import ReviewSample
from storage.repository import InspectionRepository
from storage.review_queue import ReviewQueue

T0 = datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC)


def _sample(line: str, frame: int, reason: str, score: float,
            at: datetime = T0) -> ReviewSample:
    return ReviewSample(line, frame, at, reason, score, {"why": reason})


def test_cap_per_line_and_day(repo: InspectionRepository, make_result) -> None:
    queue = ReviewQueue(repo.engine)
    for fid in range(1, 6):
        repo.save(make_result("a", fid, T0 + timedelta(minutes=fid)))
        repo.save(make_result("b", fid, T0 + timedelta(minutes=fid)))
    repo.save(make_result("a", 99, T0 + timedelta(days=1)))
    outcomes = [queue.enqueue(_sample("a", fid, "uncertain", 0.5), cap=3).outcome
                for fid in range(1, 6)]
    assert outcomes == ["queued"] * 3 + ["capped"] * 2
    # another line has its own cap, the next day starts again
    assert queue.enqueue(_sample("b", 1, "drift", 0.3), cap=3).outcome == "queued"
    assert queue.enqueue(_sample("a", 99, "drift", 0.3, T0 + timedelta(days=1)),
                         cap=3).outcome == "queued"
    counts = {c["line_id"]: c for c in queue.line_counts("2026-12-01")}
    assert counts["a"]["sampled_today"] == 3 and counts["b"]["sampled_today"] == 1
    assert counts["a"]["pending"] == 4  # the next day's frame is pending too
    assert counts["a"]["pending_by_reason"] == {"uncertain": 3, "drift": 1}
    assert queue.enqueue(_sample("a", 1, "uncertain", 0.5), cap=0).outcome == "merged"


def test_frame_not_logged_yet(repo: InspectionRepository) -> None:
    queue = ReviewQueue(repo.engine)
    assert queue.enqueue(_sample("a", 12345, "uncertain", 0.9), cap=10).outcome == "not_logged"
    assert queue.pending() == []


def test_reasons_merge_and_order(repo: InspectionRepository, make_result) -> None:
    queue = ReviewQueue(repo.engine)
    ids = {}
    for fid in range(1, 5):
        ids[fid], _ = repo.save(make_result("a", fid, T0 + timedelta(minutes=fid),
                                            verdict="NG", classes=("pit",)))
    queue.enqueue(_sample("a", 1, "drift", 0.25), cap=10)
    queue.enqueue(_sample("a", 2, "uncertain", 0.2), cap=10)
    queue.enqueue(_sample("a", 3, "uncertain", 0.9), cap=10)
    queue.enqueue(_sample("a", 4, "drift", 0.3), cap=10)
    # frame 4 also disagrees with the candidate: one item, the better reason leads
    merged = queue.enqueue(_sample("a", 4, "disagreement", 1.0), cap=10)
    assert merged.outcome == "merged" and merged.inspection_id == ids[4]
    items = queue.pending()
    assert [i.inspection_id for i in items] == [ids[4], ids[3], ids[2], ids[1]]
    first = items[0]
    assert first.reason == "disagreement" and first.reasons == ["drift", "disagreement"]
    assert first.detail == {"drift": {"why": "drift"}, "disagreement": {"why": "disagreement"}}
    assert first.verdict == "NG" and not first.has_image
    assert [i.inspection_id for i in queue.pending(line_id="b")] == []


def test_review_takes_item_off_the_queue(repo: InspectionRepository, make_result) -> None:
    queue = ReviewQueue(repo.engine)
    a, _ = repo.save(make_result("a", 1, T0, verdict="NG", classes=("pit",)))
    b, _ = repo.save(make_result("a", 2, T0))
    queue.enqueue(_sample("a", 1, "uncertain", 0.5), cap=10)
    queue.enqueue(_sample("a", 2, "drift", 0.5), cap=10)
    repo.add_review(a, "qa", "confirm", "NG", ["pit"], None)
    assert [i.inspection_id for i in queue.pending()] == [b]
    # reviewed items still count against the day's cap
    assert queue.line_counts("2026-12-01")[0]["sampled_today"] == 2
    assert queue.enqueue(_sample("a", 2, "uncertain", 0.5), cap=2).outcome == "merged"
