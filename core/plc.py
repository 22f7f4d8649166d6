"""The verdict a PLC (or any other line output) may act on, and the record it is read from.

The inference worker publishes a *verdict record* per inspected frame
(:func:`verdict_record`): the inspection JSON plus the recipe's ``stale_after_ms`` and the
``valid_until`` time derived from it, so whoever reads the record needs nothing else - no
recipe file, no database. :func:`plc_answer` turns the latest record and the camera status
into the answer (docs/CONTRACT.md, fail-safe rule):

* ``UNKNOWN`` (code 2), ``reason: camera_disconnected`` - the camera status says
  disconnected, its heartbeat is older than 3 s, or no acquisition worker ever reported;
* ``UNKNOWN``, ``no_verdict_yet`` - the camera is alive but no frame was inspected yet;
* ``UNKNOWN``, ``stale`` - ``|age_ms|`` is above the record's ``stale_after_ms`` (a verdict
  dated in the future by more than that is clock skew and is also stale);
* otherwise the record's own ``OK``/``NG`` with ``reason: null``.

The original verdict stays in ``last_verdict``. Never a stale ``OK``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from core.bus import LineSnapshot
from core.result import InspectionResult, Verdict
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
