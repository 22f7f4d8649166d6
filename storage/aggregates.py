"""Read-only aggregates of the inspection log for the QA UI.

Every query here is bounded by an index of :mod:`storage.orm`:

* last NG of a line: ``(line_id, verdict, captured_at, id)``, one row;
* recent throughput of a line: ``(line_id, captured_at, id)`` range count;
* facets (lines, defect classes): ``DISTINCT`` over the leading column of an index;
* neighbours of an inspection (next/previous NG): one row each way along
  ``(captured_at, id)`` under the same filters as the defect log;
* charts: ``GROUP BY`` over a ``captured_at`` range (time buckets are computed in SQL, so
  only ``buckets x classes`` rows leave the database).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, cast, exists, func, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import Integer

from core.timeutil import as_utc, iso_utc
from storage.db import session_factory
from storage.orm import Defect as DefectRow
from storage.orm import Inspection as InspectionRow

#: Most time buckets one chart query may produce.
MAX_BUCKETS = 1000


@dataclass(frozen=True)
class LogFilter:
    """The defect-log filters shared by the list, the CSV export and the neighbours."""

    line_id: str | None = None
    verdict: str | None = None
    defect_class: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    reviewed: bool | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        """WHERE clauses on :class:`~storage.orm.Inspection` for these filters."""
        out: list[ColumnElement[bool]] = []
        if self.line_id is not None:
            out.append(InspectionRow.line_id == self.line_id)
        if self.verdict is not None:
            out.append(InspectionRow.verdict == self.verdict)
        if self.reviewed is not None:
            out.append(InspectionRow.reviewed == self.reviewed)
        if self.since is not None:
            out.append(InspectionRow.captured_at >= as_utc(self.since))
        if self.until is not None:
            out.append(InspectionRow.captured_at < as_utc(self.until))
        if self.defect_class is not None:
            out.append(
                exists().where(
                    DefectRow.inspection_id == InspectionRow.id,
                    DefectRow.cls == self.defect_class,
                )
            )
        return out


class LogAggregates:
    """Aggregates of the inspection log on ``engine`` (thread-safe)."""

    def __init__(self, engine: Engine) -> None:
        """Read through ``engine`` (migrated)."""
        self.engine = engine
        self._read = session_factory(engine)

    # -- line status ------------------------------------------------------------------------
    def last_ng(self, line_id: str) -> dict[str, Any] | None:
        """``{inspection_id, captured_at}`` of the newest NG inspection of a line, or None."""
        stmt = (
            select(InspectionRow.id, InspectionRow.captured_at)
            .where(InspectionRow.line_id == line_id, InspectionRow.verdict == "NG")
            .order_by(InspectionRow.captured_at.desc(), InspectionRow.id.desc())
            .limit(1)
        )
        with self._read() as session:
            row = session.execute(stmt).first()
        if row is None:
            return None
        return {"inspection_id": int(row[0]), "captured_at": iso_utc(row[1])}

    def logged_count(self, line_id: str, since: datetime) -> int:
        """Inspections of a line captured at or after ``since``."""
        stmt = select(func.count()).where(
            InspectionRow.line_id == line_id, InspectionRow.captured_at >= as_utc(since)
        )
        with self._read() as session:
            return int(session.execute(stmt).scalar_one())

    # -- facets -----------------------------------------------------------------------------
    def facets(self) -> dict[str, list[str]]:
        """Distinct line ids and defect classes in the log (filter choices)."""
        with self._read() as session:
            lines = session.scalars(
                select(InspectionRow.line_id).distinct().order_by(InspectionRow.line_id)
            ).all()
            classes = session.scalars(
                select(DefectRow.cls).distinct().order_by(DefectRow.cls)
            ).all()
        return {"lines": list(lines), "classes": list(classes)}

    # -- navigation -------------------------------------------------------------------------
    def neighbours(self, inspection_id: int, flt: LogFilter) -> dict[str, int | None] | None:
        """Ids of the next ``older`` and ``newer`` inspection matching ``flt`` around
        ``inspection_id`` in log order (newest first); None when the id is unknown."""
        with self._read() as session:
            anchor = session.execute(
                select(InspectionRow.captured_at).where(InspectionRow.id == inspection_id)
            ).scalar_one_or_none()
            if anchor is None:
                return None
            t, i = as_utc(anchor), inspection_id
            older = or_(
                InspectionRow.captured_at < t,
                and_(InspectionRow.captured_at == t, InspectionRow.id < i),
            )
            newer = or_(
                InspectionRow.captured_at > t,
                and_(InspectionRow.captured_at == t, InspectionRow.id > i),
            )
            base = select(InspectionRow.id).where(*flt.clauses())
            older_id = session.execute(
                base.where(InspectionRow.captured_at <= t, older)  # <=: an index seek
                .order_by(InspectionRow.captured_at.desc(), InspectionRow.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            newer_id = session.execute(
                base.where(InspectionRow.captured_at >= t, newer)
                .order_by(InspectionRow.captured_at.asc(), InspectionRow.id.asc())
                .limit(1)
            ).scalar_one_or_none()
        return {"older": older_id, "newer": newer_id}

    # -- charts -----------------------------------------------------------------------------
    def _bucket_expr(self, bucket_s: int) -> ColumnElement[Any]:
        """Start of the ``bucket_s`` bucket of ``captured_at``, in Unix seconds."""
        if self.engine.dialect.name == "sqlite":
            epoch = cast(func.strftime("%s", InspectionRow.captured_at), Integer)
            return (epoch // bucket_s) * bucket_s
        epoch = func.extract("epoch", InspectionRow.captured_at)
        return cast(func.floor(epoch / bucket_s) * bucket_s, Integer)

    def defects_per_class(
        self, since: datetime, until: datetime, bucket_s: int, line_id: str | None = None
    ) -> dict[str, Any]:
        """Defect counts per class and time bucket in ``[since, until)``.

        Returns ``{"buckets": [iso, ...], "classes": [...], "series": {class: [count per
        bucket]}}`` with every bucket present (zeros included). Raises ``ValueError`` when
        the range would have more than :data:`MAX_BUCKETS` buckets.
        """
        since, until = as_utc(since), as_utc(until)
        if bucket_s <= 0 or since >= until:
            raise ValueError("need bucket_s > 0 and since < until")
        start = int(since.timestamp()) // bucket_s * bucket_s
        n = bucket_count(since, until, bucket_s)
        if n > MAX_BUCKETS:
            raise ValueError(f"{n} buckets: at most {MAX_BUCKETS}, use a larger bucket_s")
        bucket = self._bucket_expr(bucket_s).label("bucket")
        stmt = (
            select(bucket, DefectRow.cls, func.count())
            .select_from(InspectionRow)
            .join(DefectRow, DefectRow.inspection_id == InspectionRow.id)
            .where(*LogFilter(line_id=line_id, since=since, until=until).clauses())
            .group_by(bucket, DefectRow.cls)
        )
        with self._read() as session:
            rows = session.execute(stmt).all()
        classes = sorted({str(r[1]) for r in rows})
        series = {c: [0] * n for c in classes}
        for b, cls, count in rows:
            k = (int(b) - start) // bucket_s
            if 0 <= k < n:
                series[str(cls)][k] += int(count)
        buckets = [
            iso_utc(datetime.fromtimestamp(start + k * bucket_s, UTC)) for k in range(n)
        ]
        return {"bucket_s": bucket_s, "buckets": buckets, "classes": classes, "series": series}

    def verdicts_per_line(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """Per line in ``[since, until)``: ``total``, ``ok``, ``ng``, ``unknown`` and
        ``inspected`` (OK + NG) and ``ng_rate`` (NG / inspected: frames logged ``UNKNOWN``
        were not inspected - backlog, ``inference.backlog`` - and say nothing of the
        product)."""
        stmt = (
            select(InspectionRow.line_id, InspectionRow.verdict, func.count())
            .where(*LogFilter(since=since, until=until).clauses())
            .group_by(InspectionRow.line_id, InspectionRow.verdict)
        )
        with self._read() as session:
            rows = session.execute(stmt).all()
        per: dict[str, dict[str, Any]] = {}
        for line, verdict, count in rows:
            item = per.setdefault(line, {"line_id": line, "total": 0, "ok": 0, "ng": 0,
                                         "unknown": 0})
            item[str(verdict).lower()] = int(count)
            item["total"] += int(count)
        out = []
        for line in sorted(per):
            item = per[line]
            item["inspected"] = item["ok"] + item["ng"]
            item["ng_rate"] = (
                round(item["ng"] / item["inspected"], 6) if item["inspected"] else 0.0
            )
            out.append(item)
        return out


def bucket_count(since: datetime, until: datetime, bucket_s: int) -> int:
    """How many ``bucket_s`` buckets, aligned to multiples of ``bucket_s`` since the epoch,
    cover ``[since, until)`` (one more than ``(until - since) / bucket_s`` when the window
    does not start on a bucket boundary)."""
    start = int(as_utc(since).timestamp()) // bucket_s * bucket_s
    return (math.ceil(as_utc(until).timestamp()) - start + bucket_s - 1) // bucket_s


def default_window(
    since: datetime | None, until: datetime | None, span: timedelta = timedelta(hours=24)
) -> tuple[datetime, datetime]:
    """``(since, until)`` in UTC, defaulting to the ``span`` before ``until`` (or now)."""
    until_u = as_utc(until) if until is not None else datetime.now(UTC)
    since_u = as_utc(since) if since is not None else until_u - span
    return since_u, until_u
