"""The "to review" queue: logged frames sampled for a QA look (issue 21.5).

Table ``review_queue`` (migration ``0007_review_queue``), one row per sampled inspection
(unique ``inspection_id``, deleted with it): the line, the UTC ``day`` of the frame's capture
(the day the cap counts on), the first and best ``reason`` (``core.review.REVIEW_REASONS``),
every reason it was sampled for (``reasons``), a ``score`` (how worth a look within the reason,
0..1) and the figures behind each reason (``detail``).

:meth:`ReviewQueue.enqueue` keeps at most ``cap`` frames per line and day (serialised per line
on PostgreSQL with a transaction-scoped advisory lock; SQLite serialises writers anyway). An
item leaves the queue when its inspection is reviewed (``inspections.reviewed``, set by the
review endpoint): :meth:`ReviewQueue.pending` lists only unreviewed ones, best reason first,
then highest score.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Engine,
    Float,
    ForeignKey,
    Index,
    String,
    case,
    func,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.review import REVIEW_REASONS, QueueOutcome, ReviewSample, reason_rank
from core.timeutil import as_utc, iso_utc
from storage.db import is_sqlite, session_factory, write_engine
from storage.orm import Base, IdType, Inspection, JsonType, UTCDateTime, utcnow


class ReviewQueueRow(Base):
    """A logged frame sampled for QA review."""

    __tablename__ = "review_queue"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    inspection_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("inspections.id", ondelete="CASCADE"), unique=True
    )
    line_id: Mapped[str] = mapped_column(String(64))
    frame_id: Mapped[int] = mapped_column(BigInteger)
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: UTC day of ``captured_at`` (``YYYY-MM-DD``): the daily cap counts per line and day
    day: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str]] = mapped_column(JsonType, default=list)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    #: reason -> the figures behind it
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    sampled_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_review_queue_line_id_day", "line_id", "day"),)


@dataclass(frozen=True)
class QueueItem:
    """A pending item of the queue with what the UI lists of its inspection."""

    inspection_id: int
    line_id: str
    frame_id: int
    captured_at: datetime
    reason: str
    reasons: list[str]
    score: float
    detail: dict[str, Any]
    sampled_at: datetime
    verdict: str
    has_image: bool

    def as_json(self) -> dict[str, Any]:
        """JSON form (times ISO 8601 UTC)."""
        return {
            "inspection_id": self.inspection_id, "line_id": self.line_id,
            "frame_id": self.frame_id, "captured_at": iso_utc(self.captured_at),
            "reason": self.reason, "reasons": self.reasons, "score": round(self.score, 4),
            "detail": self.detail, "sampled_at": iso_utc(self.sampled_at),
            "verdict": self.verdict, "has_image": self.has_image,
        }


def utc_day(moment: datetime) -> str:
    """``YYYY-MM-DD`` of ``moment`` in UTC."""
    return as_utc(moment).strftime("%Y-%m-%d")


def _rank_expr() -> Any:
    return case({r: i for i, r in enumerate(REVIEW_REASONS)}, value=ReviewQueueRow.reason,
                else_=len(REVIEW_REASONS))


class ReviewQueue:
    """Reads and writes ``review_queue`` (thread-safe)."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine`` (migrated with :func:`storage.db.migrate`)."""
        self.engine = engine
        self._sqlite = is_sqlite(engine)
        self._read = session_factory(engine)
        self._write = session_factory(write_engine(engine))

    def _lock_line(self, session: Session, line_id: str) -> None:
        if not self._sqlite:  # one sampler of the line at a time counts against the cap
            key = zlib.crc32(f"review_queue:{line_id}".encode())
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    def enqueue(self, sample: ReviewSample, cap: int) -> QueueOutcome:
        """Queue the inspection of ``(sample.line_id, sample.frame_id)`` for ``sample.reason``
        unless ``cap`` frames of its line and day are queued already; a frame queued before
        gets the reason added (the best reason and its score lead)."""
        with self._write.begin() as session:
            self._lock_line(session, sample.line_id)
            found = session.execute(
                select(Inspection.id, Inspection.image_path).where(
                    Inspection.line_id == sample.line_id, Inspection.frame_id == sample.frame_id)
            ).first()
            if found is None:
                return QueueOutcome("not_logged")
            inspection_id, image_path = int(found[0]), found[1] is not None
            row = session.scalars(
                select(ReviewQueueRow).where(ReviewQueueRow.inspection_id == inspection_id)
            ).first()
            if row is not None:
                if sample.reason not in row.reasons:
                    row.reasons = [*row.reasons, sample.reason]
                    row.detail = {**row.detail, sample.reason: sample.detail}
                    if reason_rank(sample.reason) < reason_rank(row.reason):
                        row.reason, row.score = sample.reason, sample.score
                return QueueOutcome("merged", inspection_id, image_path)
            day = utc_day(sample.captured_at)
            taken = session.scalar(select(func.count()).select_from(ReviewQueueRow).where(
                ReviewQueueRow.line_id == sample.line_id, ReviewQueueRow.day == day))
            if int(taken or 0) >= cap:
                return QueueOutcome("capped", inspection_id, image_path)
            session.add(ReviewQueueRow(
                inspection_id=inspection_id, line_id=sample.line_id,
                frame_id=int(sample.frame_id), captured_at=as_utc(sample.captured_at), day=day,
                reason=sample.reason, reasons=[sample.reason], score=float(sample.score),
                detail={sample.reason: sample.detail}, sampled_at=utcnow(),
            ))
            return QueueOutcome("queued", inspection_id, image_path)

    def pending(self, line_id: str | None = None, limit: int = 100) -> list[QueueItem]:
        """Unreviewed items, best reason first (``REVIEW_REASONS`` order), then highest
        score, then newest."""
        stmt = (
            select(ReviewQueueRow, Inspection.verdict, Inspection.image_path)
            .join(Inspection, Inspection.id == ReviewQueueRow.inspection_id)
            .where(Inspection.reviewed.is_(False))
        )
        if line_id is not None:
            stmt = stmt.where(ReviewQueueRow.line_id == line_id)
        stmt = stmt.order_by(_rank_expr(), ReviewQueueRow.score.desc(),
                             ReviewQueueRow.captured_at.desc(), ReviewQueueRow.id.desc())
        with self._read() as session:
            rows = session.execute(stmt.limit(max(1, min(int(limit), 1000)))).all()
        return [
            QueueItem(
                inspection_id=r.inspection_id, line_id=r.line_id, frame_id=r.frame_id,
                captured_at=as_utc(r.captured_at), reason=r.reason, reasons=list(r.reasons),
                score=r.score, detail=dict(r.detail or {}), sampled_at=as_utc(r.sampled_at),
                verdict=verdict, has_image=image_path is not None,
            )
            for r, verdict, image_path in rows
        ]

    def line_counts(self, day: str | None = None) -> list[dict[str, Any]]:
        """Per line: frames sampled on ``day`` (default today, UTC; what the cap counts),
        pending (unreviewed) items of any day and pending items per reason."""
        day = day or utc_day(datetime.now(UTC))
        sampled: dict[str, int] = {}
        pending: dict[str, dict[str, int]] = {}
        with self._read() as session:
            for line, n in session.execute(
                select(ReviewQueueRow.line_id, func.count())
                .where(ReviewQueueRow.day == day).group_by(ReviewQueueRow.line_id)
            ):
                sampled[line] = int(n)
            for line, reason, n in session.execute(
                select(ReviewQueueRow.line_id, ReviewQueueRow.reason, func.count())
                .join(Inspection, Inspection.id == ReviewQueueRow.inspection_id)
                .where(Inspection.reviewed.is_(False))
                .group_by(ReviewQueueRow.line_id, ReviewQueueRow.reason)
            ):
                pending.setdefault(line, {})[reason] = int(n)
        return [
            {"line_id": line, "day": day, "sampled_today": sampled.get(line, 0),
             "pending": sum(pending.get(line, {}).values()),
             "pending_by_reason": pending.get(line, {})}
            for line in sorted(set(sampled) | set(pending))
        ]
