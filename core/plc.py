"""The verdict a PLC (or any other line output) may act on, and the record it is read from.

The inference worker publishes a *verdict record* per inspected frame
(:func:`verdict_record`): the inspection JSON plus the recipe's ``stale_after_ms`` and the
``valid_until`` time derived from it, so whoever reads the record needs nothing else - no
recipe file, no database. :func:`plc_answer` turns the latest record and the camera status
into the answer (docs/CONTRACT.md, fail-safe rule):

* ``UNKNOWN`` (code 2), ``reason: camera_disconnected`` - the camera status says
  disconnected, its heartbeat is older than 3 s, or no acquisition worker ever reported;
* ``UNKNOWN``, ``no_verdict_yet`` - the camera is alive but no frame was inspected yet;
* ``UNKNOWN``, ``overloaded`` - the worker skips frames that waited longer than the
  recipe's ``max_backlog_ms`` (the record says ``overloaded``; ``inference.backlog``), so
  the line is not fully inspected, whatever the last verdict was;
* ``UNKNOWN``, ``stale`` - ``|age_ms|`` is above the record's ``stale_after_ms`` (a verdict
  dated in the future by more than that is clock skew and is also stale);
* otherwise the record's own ``OK``/``NG`` with ``reason: null``.

The original verdict stays in ``last_verdict``. Never a stale ``OK``.

Every PLC interface (REST, Modbus TCP, OPC UA) shows the same :class:`PlcStatus`
(:func:`plc_status`): that answer, plus the line's result sequence against the PLC's cursor
- results pending, NG since the cursor and the :func:`worst_code` since it - so a PLC
polling at any rate accounts for every result and every NG (docs/PLC.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.bus import LineSnapshot
from core.result import InspectionResult, Verdict
from core.results import ResultPage
from core.timeutil import as_utc, iso_utc, parse_iso

#: ``stale_after_ms`` of a record that does not carry one (written before the field existed).
DEFAULT_STALE_AFTER_MS = 1000


def verdict_record(
    result: InspectionResult, stale_after_ms: int, now: datetime | None = None
) -> dict[str, Any]:
    """The record published for ``result``: its inspection JSON, ``stale_after_ms`` and
    ``valid_until`` (``captured_at`` + ``stale_after_ms``, ISO-8601 UTC)."""
    record = result.as_json(now)
    valid_until = as_utc(result.captured_at) + timedelta(milliseconds=stale_after_ms)
    record["stale_after_ms"] = int(stale_after_ms)
    record["valid_until"] = iso_utc(valid_until)
    return record


def unknown(line_id: str, reason: str, **fields: Any) -> dict[str, Any]:
    """An ``UNKNOWN`` answer without a usable record (e.g. ``reason="invalid_record"``)."""
    return {
        "line_id": line_id, "verdict": Verdict.UNKNOWN.name, "code": int(Verdict.UNKNOWN),
        "reason": reason, "defects": [], "age_ms": None, **fields,
    }


def _age_ms(record: dict[str, Any], now: datetime) -> float | None:
    try:
        captured = parse_iso(str(record.get("captured_at")))
    except ValueError:
        return None
    return round((now - captured).total_seconds() * 1000.0, 3)


def _overloaded(record: dict[str, Any], age_ms: float | None, stale_after: int) -> bool:
    """The worker said it skips frames (``inference.backlog``), and said so recently: within
    ``stale_after_ms`` + ``max_backlog_ms`` of the frame's capture (later, a worker that
    stopped is ``stale``, not overloaded)."""
    if not record.get("overloaded") or age_ms is None:
        return False
    try:
        return abs(age_ms) <= stale_after + int(record.get("max_backlog_ms", 0))
    except (TypeError, ValueError):
        return False


def plc_answer(line_id: str, snapshot: LineSnapshot, now: datetime) -> dict[str, Any]:
    """The answer for a line from its :class:`~core.bus.LineSnapshot` at ``now`` (aware UTC).

    The body is the verdict record (or an empty one) with ``verdict``/``code`` replaced by
    ``UNKNOWN``/2 whenever ``reason`` is set, plus ``age_ms``, ``last_verdict``, ``reason``,
    ``stale_after_ms`` and ``camera_connected``.
    """
    record = snapshot.verdict
    if record is not None and not isinstance(record, dict):
        return unknown(line_id, "invalid_record")
    if record is None:
        body: dict[str, Any] = {
            "inspection_id": None, "line_id": line_id, "frame_id": None,
            "captured_at": None, "verdict": Verdict.UNKNOWN.name, "code": int(Verdict.UNKNOWN),
            "defects": [], "models": {}, "latency_ms": None, "age_ms": None,
        }
        stale_after = DEFAULT_STALE_AFTER_MS
    else:
        body = dict(record)
        body["age_ms"] = _age_ms(record, now)
        try:
            stale_after = int(record.get("stale_after_ms", DEFAULT_STALE_AFTER_MS))
        except (TypeError, ValueError):
            return unknown(line_id, "invalid_record")
    age_ms = body["age_ms"]
    camera_alive = snapshot.camera is not None and snapshot.camera.alive(now.timestamp())
    reason: str | None = None
    if not camera_alive:
        reason = "camera_disconnected"
    elif record is None:
        reason = "no_verdict_yet"
    elif _overloaded(record, age_ms, stale_after):
        reason = "overloaded"
    elif age_ms is None or abs(age_ms) > stale_after:
        reason = "stale"
    body["last_verdict"] = record.get("verdict") if record else None
    if reason is not None:
        body["verdict"] = Verdict.UNKNOWN.name
        body["code"] = int(Verdict.UNKNOWN)
    body["reason"] = reason
    body["stale_after_ms"] = stale_after
    body["camera_connected"] = camera_alive
    return body


# -- the result sequence as a PLC sees it -----------------------------------------------------
#: ``system state`` code per answer ``reason`` (Modbus register, OPC UA variable):
#: 1 running (the answer is the verdict itself), 2 stale, 3 camera disconnected, 4 no verdict
#: yet, 5 invalid record, 6 Redis unavailable, 7 overloaded (frames skipped); 0 is never
#: sent for a known reason.
STATE_CODES: dict[str | None, int] = {
    None: 1, "stale": 2, "camera_disconnected": 3, "no_verdict_yet": 4,
    "invalid_record": 5, "redis_unavailable": 6, "overloaded": 7,
}


def state_code(reason: str | None) -> int:
    """The system-state code of an answer's ``reason`` (:data:`STATE_CODES`; 0 unknown)."""
    return STATE_CODES.get(reason, 0)


def worst_code(ng: int, unknown: int, lost: int, answer_code: int) -> int:
    """The worst verdict code since a cursor: ``NG`` (1) when any result after it was NG,
    else ``UNKNOWN`` (2) when any was UNKNOWN, some were lost (no longer retained: they may
    have been NG) or the line's answer right now is ``UNKNOWN`` (stale, camera down), else
    ``OK`` (0). A PLC that acts on this never lets an NG or a blind spot pass as OK."""
    if ng > 0:
        return int(Verdict.NG)
    if unknown > 0 or lost > 0 or answer_code != int(Verdict.OK):
        return int(Verdict.UNKNOWN)
    return int(Verdict.OK)


@dataclass(frozen=True)
class PlcStatus:
    """Everything a PLC interface shows for one line at one instant: the fail-safe answer
    (:func:`plc_answer`), the result sequence against the PLC's cursor, and the first
    results after that cursor (its small result buffer)."""

    line_id: str
    #: :func:`plc_answer` of the line
    answer: dict[str, Any]
    #: :func:`state_code` of the answer
    state: int
    #: the PLC's cursor (last acknowledged result id) the counts refer to
    cursor: int
    last_result_id: int
    #: :func:`worst_code` since the cursor
    worst_code: int
    #: results after the cursor, of them NG, and those no longer retained
    pending: int
    ng_since: int
    lost: int
    #: more results pending than the buffer shows
    overrun: bool
    #: the cursor was ahead of the sequence (Redis lost its data)
    cursor_reset: bool
    #: the first results after the cursor, oldest first (at most the buffer size)
    buffer: list[dict[str, Any]]
    #: results since the line started, by verdict name
    totals: dict[str, int]
    last_ng_result_id: int | None

    @property
    def code(self) -> int:
        """The line's verdict code right now (0 OK, 1 NG, 2 UNKNOWN)."""
        return int(self.answer["code"])


def plc_status(
    line_id: str, snapshot: LineSnapshot, page: ResultPage, now: datetime, buffer_size: int
) -> PlcStatus:
    """The :class:`PlcStatus` of a line from its snapshot and its :class:`ResultPage` read
    after the PLC's cursor (``page.after``) with ``limit = buffer_size``."""
    answer = plc_answer(line_id, snapshot, now)
    return PlcStatus(
        line_id=line_id,
        answer=answer,
        state=state_code(answer.get("reason")),
        cursor=page.effective_after,
        last_result_id=page.last_result_id,
        worst_code=worst_code(page.ng, page.unknown, page.lost, int(answer["code"])),
        pending=page.pending,
        ng_since=page.ng,
        lost=page.lost,
        overrun=page.pending > buffer_size,
        cursor_reset=page.cursor_reset,
        buffer=page.results[:buffer_size],
        totals=page.totals,
        last_ng_result_id=page.last_ng_result_id,
    )


def unavailable_status(line_id: str, cursor: int, reason: str = "redis_unavailable") -> PlcStatus:
    """The status shown when the line's state cannot be read: ``UNKNOWN`` everywhere."""
    return PlcStatus(
        line_id=line_id, answer=unknown(line_id, reason), state=state_code(reason),
        cursor=cursor, last_result_id=0, worst_code=int(Verdict.UNKNOWN), pending=0,
        ng_since=0, lost=0, overrun=False, cursor_reset=False, buffer=[], totals={},
        last_ng_result_id=None,
    )
