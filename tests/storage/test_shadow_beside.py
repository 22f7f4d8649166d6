"""Shadow results beside their live inspection (the QA UI's side-by-side view, issue 21) on
the real SQLite file and PostgreSQL schema: disagreements only, newest first, joined with the
inspection of the same line and frame (None while it is not logged)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.lifecycle import ShadowRecord
from storage.repository import InspectionRepository
from storage.shadow import ShadowRepository

T0 = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)


def _record(line: str, fid: int, live: str, cand: str, kind: str | None) -> ShadowRecord:
    return ShadowRecord(line_id=line, frame_id=fid, captured_at=T0 + timedelta(seconds=fid),
                        recipe="cand", live_verdict=live, verdict=cand, live_classes=[],
                        classes=["pit"] if cand == "NG" else [],
                        defects=[{"class": "pit", "score": 0.7, "bbox": [1, 2, 3, 4],
                                  "area_px": 12, "model": "m@shadow"}] if cand == "NG" else [],
                        disagreement=kind)


def test_disagreements_beside_their_inspection(repo: InspectionRepository, make_result) -> None:
    shadow = ShadowRepository(repo.engine)
    logged, _ = repo.save(make_result("a", 1, T0 + timedelta(seconds=1)))
    repo.set_image_paths(logged, "a/1.png", None)
    repo.save(make_result("a", 2, T0 + timedelta(seconds=2)))
    shadow.save_shadow(_record("a", 1, "OK", "NG", "verdict"))
    shadow.save_shadow(_record("a", 2, "OK", "OK", None))  # agrees: not listed
    shadow.save_shadow(_record("a", 3, "OK", "NG", "verdict"))  # live not logged (yet)
    shadow.save_shadow(_record("b", 1, "OK", "NG", "verdict"))
    items = shadow.disagreements("a")
    assert [(i.record.frame_id, i.inspection_id, i.image_path) for i in items] == [
        (3, None, None), (1, logged, "a/1.png")]
    assert items[1].record.defects[0]["class"] == "pit"
    assert len(shadow.disagreements()) == 3
    assert shadow.disagreements("a", since=T0 + timedelta(seconds=2))[0].record.frame_id == 3
    one = shadow.beside(items[1].shadow_id)
    assert one is not None and one.inspection_id == logged
    assert shadow.beside(10**9) is None
    assert shadow.lines() == ["a", "b"]
