"""core.plc: the verdict record the worker publishes and the PLC answer read from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.bus import CameraStatus, LineSnapshot
from core.plc import DEFAULT_STALE_AFTER_MS, plc_answer, verdict_record
from core.result import Defect, InspectionResult

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _camera(alive: bool = True, age_s: float = 0.1) -> CameraStatus:
    return CameraStatus(connected=alive, heartbeat=NOW.timestamp() - age_s, info={})


def _record(verdict: str = "NG", age_ms: float = 100.0, stale_after_ms: int = 500) -> dict:
    result = InspectionResult(
        inspection_id=7, line_id="l1", frame_id=42,
        captured_at=NOW - timedelta(milliseconds=age_ms), verdict=verdict,
        defects=[Defect(cls="scratch", score=0.9, bbox=(1, 2, 3, 4), area_px=12, model="m")]
        if verdict == "NG" else [],
    )
    return verdict_record(result, stale_after_ms, now=NOW)


def test_record_carries_its_staleness() -> None:
    record = _record(age_ms=100.0, stale_after_ms=500)
    assert record["stale_after_ms"] == 500
    assert record["valid_until"] == "2026-03-01T12:00:00.400000Z"  # captured + 500 ms
    assert record["inspection_id"] == 7 and record["code"] == 1


@pytest.mark.parametrize(
    ("age_ms", "stale_after_ms", "verdict", "reason"),
    [
        (100.0, 500, "NG", None),
        (499.0, 500, "NG", None),
        (501.0, 500, "UNKNOWN", "stale"),
        (-600.0, 500, "UNKNOWN", "stale"),  # from the future: clock skew
        (2000.0, 5000, "NG", None),  # the record's limit, not a default
    ],
)
def test_staleness(age_ms: float, stale_after_ms: int, verdict: str, reason: str | None) -> None:
    snap = LineSnapshot(_record("NG", age_ms, stale_after_ms), _camera(), known=True)
    answer = plc_answer("l1", snap, NOW)
    assert (answer["verdict"], answer["reason"], answer["last_verdict"]) == (verdict, reason, "NG")
    assert answer["code"] == {"NG": 1, "UNKNOWN": 2}[verdict]
    assert answer["stale_after_ms"] == stale_after_ms
    assert answer["age_ms"] == pytest.approx(age_ms)


def test_a_record_without_staleness_gets_the_default() -> None:
    record = _record("OK", 900.0)
    del record["stale_after_ms"]
    answer = plc_answer("l1", LineSnapshot(record, _camera(), True), NOW)
    assert (answer["verdict"], answer["stale_after_ms"]) == ("OK", DEFAULT_STALE_AFTER_MS)


@pytest.mark.parametrize(
    ("camera", "reason"),
    [(None, "camera_disconnected"), (_camera(alive=False), "camera_disconnected"),
     (_camera(age_s=10.0), "camera_disconnected")],
)
def test_no_live_camera_is_unknown(camera: CameraStatus | None, reason: str) -> None:
    answer = plc_answer("l1", LineSnapshot(_record("OK"), camera, True), NOW)
    assert (answer["verdict"], answer["code"], answer["reason"]) == ("UNKNOWN", 2, reason)
    assert answer["camera_connected"] is False and answer["last_verdict"] == "OK"


def test_no_verdict_yet_and_invalid_records() -> None:
    answer = plc_answer("l1", LineSnapshot(None, _camera(), True), NOW)
    assert (answer["verdict"], answer["reason"], answer["inspection_id"]) == (
        "UNKNOWN", "no_verdict_yet", None)
    for bad in (["not", "a", "dict"], _record() | {"stale_after_ms": "soon"}):
        answer = plc_answer("l1", LineSnapshot(bad, _camera(), True), NOW)  # type: ignore[arg-type]
        assert (answer["verdict"], answer["reason"]) == ("UNKNOWN", "invalid_record")
    answer = plc_answer("l1", LineSnapshot(_record() | {"captured_at": "never"}, _camera(), True),
                        NOW)
    assert (answer["verdict"], answer["reason"], answer["age_ms"]) == ("UNKNOWN", "stale", None)

