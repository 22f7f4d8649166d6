"""The inspection log: idempotent writes, defect-log queries with keyset pagination, reviews.

Idempotent save
    ``INSERT ... ON CONFLICT (line_id, frame_id) DO NOTHING RETURNING id`` (the dialect's
    insert, SQLite and PostgreSQL alike), the defects in the same transaction, then - when
    nothing was inserted - ``SELECT id``. A frame re-delivered after a worker crash, or
    inspected by two workers at once, is logged exactly once. On PostgreSQL a concurrent
    inserter of the same key waits for the first transaction and then does nothing; on SQLite
    write transactions begin ``IMMEDIATE`` (see :mod:`storage.db`) and serialise.

Keyset pagination
    Newest first, ordered by ``(captured_at DESC, id DESC)``; the cursor encodes the last row's
    ``(captured_at, id)`` and the next page is ``WHERE (captured_at, id) < (:t, :id)`` - no
    OFFSET, so a page costs the same anywhere in the log and rows inserted meanwhile neither
    repeat nor skip rows. The cursor is opaque: url-safe base64 (no padding) of
    ``{"v": 1, "t": "<ISO-8601 UTC>", "i": <id>}``; :func:`decode_cursor` raises
    :class:`InvalidCursor` for anything else.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, delete, exists, func, or_, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import selectinload

from core.result import Defect, InspectionResult, Verdict
from core.timeutil import as_utc, iso_utc
from storage.db import is_sqlite, session_factory, write_engine
from storage.orm import REVIEW_ACTIONS, VERDICTS
from storage.orm import Defect as DefectRow
from storage.orm import Inspection as InspectionRow
from storage.orm import Review as ReviewRow

#: Largest page the defect log hands out.
MAX_PAGE = 500


class InvalidCursor(ValueError):
    """A pagination cursor that this repository did not produce."""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso_utc(value)


def encode_cursor(captured_at: datetime, inspection_id: int) -> str:
    """Opaque url-safe cursor for the row ``(captured_at, inspection_id)``."""
    raw = json.dumps(
        {"v": 1, "t": as_utc(captured_at).isoformat(), "i": int(inspection_id)},
        separators=(",", ":"),
    ).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """``(captured_at, id)`` of a cursor from :func:`encode_cursor`; :class:`InvalidCursor`
    when it is malformed."""
    try:
        if len(cursor) > 200:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("v") != 1:
            raise ValueError("unknown cursor version")
        when = datetime.fromisoformat(data["t"])
        ident = data["i"]
        if not isinstance(ident, int) or isinstance(ident, bool):
            raise ValueError("bad id")
        return as_utc(when), ident
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor(f"invalid cursor: {exc}") from None


@dataclass(frozen=True)
class ReviewRecord:
    """A stored QA review."""

    id: int
    inspection_id: int
    reviewer: str
    action: str
    verdict: str | None
    classes: list[str] | None
    comment: str | None
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        """JSON form of the review."""
        return {
            "id": self.id,
            "inspection_id": self.inspection_id,
            "reviewer": self.reviewer,
            "action": self.action,
            "verdict": self.verdict,
            "classes": self.classes,
            "comment": self.comment,
            "created_at": _iso(self.created_at),
        }


@dataclass
class InspectionRecord:
    """A logged inspection: the result plus what only the log knows."""

    result: InspectionResult
    reviewed: bool = False
    image_path: str | None = None
    mask_path: str | None = None
    created_at: datetime | None = None
    reviews: list[ReviewRecord] = field(default_factory=list)

    @property
    def id(self) -> int:
        """The inspection id."""
        assert self.result.inspection_id is not None
        return self.result.inspection_id

    def as_json(self, now: datetime | None = None) -> dict[str, Any]:
        """The inspection JSON (docs/CONTRACT.md, section 4) plus ``reviewed``, the latest
        ``review``, ``has_image``/``has_mask`` and ``created_at``."""
        out = self.result.as_json(now)
        out["reviewed"] = self.reviewed
        out["review"] = self.reviews[-1].as_json() if self.reviews else None
        out["has_image"] = self.image_path is not None
        out["has_mask"] = self.mask_path is not None
        out["created_at"] = _iso(self.created_at)
        return out


def _review_record(row: ReviewRow) -> ReviewRecord:
    return ReviewRecord(
        id=row.id,
        inspection_id=row.inspection_id,
        reviewer=row.reviewer,
        action=row.action,
        verdict=row.verdict,
        classes=list(row.classes) if row.classes is not None else None,
        comment=row.comment,
        created_at=row.created_at,
    )


def _result(row: InspectionRow) -> InspectionResult:
    return InspectionResult(
        inspection_id=row.id,
        line_id=row.line_id,
        frame_id=row.frame_id,
        captured_at=as_utc(row.captured_at),
        verdict=row.verdict,
        defects=[
            Defect(cls=d.cls, score=d.score, bbox=(d.x, d.y, d.w, d.h), area_px=d.area_px,
                   model=d.model, evidence=list(d.evidence or []))
            for d in row.defects
        ],
        models=dict(row.models or {}),
        latency_ms=row.latency_ms,
        recipe=row.recipe,
        width=row.width,
        height=row.height,
        brightness=row.brightness,
        mask_classes=list(row.mask_classes or ["background"]),
        part_id=row.part_id,
        unknown_reason=row.unknown_reason,
    )


def _record(row: InspectionRow, with_reviews: bool) -> InspectionRecord:
    return InspectionRecord(
        result=_result(row),
        reviewed=row.reviewed,
        image_path=row.image_path,
        mask_path=row.mask_path,
        created_at=row.created_at,
        reviews=[_review_record(r) for r in row.reviews] if with_reviews else [],
    )


class InspectionRepository:
    """Reads and writes the inspection log through a SQLAlchemy engine (thread-safe)."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine`` (migrated with :func:`storage.db.migrate`)."""
        self.engine = engine
        self._sqlite = is_sqlite(engine)
        self._read = session_factory(engine)
        self._write = session_factory(write_engine(engine))

    # -- writes -----------------------------------------------------------------------------
    def save(self, result: InspectionResult) -> tuple[int, bool]:
        """Log ``result`` once per ``(line_id, frame_id)``; return ``(id, created)``.

        A second save of the same frame (re-delivery, a concurrent worker) returns the
        existing id and ``False`` and writes nothing. ``result.inspection_id`` is not changed.
        """
        if result.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {result.verdict!r}")
        values = {
            "line_id": result.line_id,
            "frame_id": int(result.frame_id),
            "captured_at": as_utc(result.captured_at),
            "verdict": result.verdict,
            "code": int(Verdict[result.verdict]),
            "latency_ms": float(result.latency_ms),
            "recipe": result.recipe,
            "width": int(result.width),
            "height": int(result.height),
            "brightness": float(result.brightness),
            "models": dict(result.models),
            "mask_classes": list(result.mask_classes),
            "reviewed": False,
            "created_at": datetime.now(UTC),
            "part_id": None if result.part_id is None else int(result.part_id),
            "unknown_reason": result.unknown_reason,
        }
        dialect_insert = sqlite.insert if self._sqlite else postgresql.insert
        stmt = (
            dialect_insert(InspectionRow)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["line_id", "frame_id"])
            .returning(InspectionRow.id)
        )
        with self._write.begin() as session:
            new_id = session.execute(stmt).scalar_one_or_none()
            if new_id is not None:
                if result.defects:
                    session.execute(
                        DefectRow.__table__.insert(),
                        [
                            {
                                "inspection_id": new_id,
                                "class": d.cls,
                                "score": float(d.score),
                                "x": int(d.bbox[0]),
                                "y": int(d.bbox[1]),
                                "w": int(d.bbox[2]),
                                "h": int(d.bbox[3]),
                                "area_px": int(d.area_px),
                                "model": d.model,
                                "evidence": list(d.evidence) or None,
                            }
                            for d in result.defects
                        ],
                    )
                return int(new_id), True
            existing = session.execute(
                select(InspectionRow.id).where(
                    InspectionRow.line_id == result.line_id,
                    InspectionRow.frame_id == int(result.frame_id),
                )
            ).scalar_one()
            return int(existing), False

    def set_image_paths(
        self, inspection_id: int, image_path: str | None, mask_path: str | None
    ) -> None:
        """Record where the retained frame and mask were written (None: not retained)."""
        with self._write.begin() as session:
            session.execute(
                update(InspectionRow)
                .where(InspectionRow.id == inspection_id)
                .values(image_path=image_path, mask_path=mask_path)
            )

    def clear_image_paths(self, paths: Iterable[str]) -> int:
        """Forget image/mask paths the image store deleted; return rows changed."""
        paths = sorted(set(paths))
        changed = 0
        for i in range(0, len(paths), 500):
            chunk = paths[i : i + 500]
            with self._write.begin() as session:
                changed += session.execute(
                    update(InspectionRow)
                    .where(InspectionRow.image_path.in_(chunk))
                    .values(image_path=None)
                ).rowcount
                changed += session.execute(
                    update(InspectionRow)
                    .where(InspectionRow.mask_path.in_(chunk))
                    .values(mask_path=None)
                ).rowcount
        return changed

    def add_review(
        self,
        inspection_id: int,
        reviewer: str,
        action: str,
        verdict: str | None = None,
        classes: Sequence[str] | None = None,
        comment: str | None = None,
    ) -> ReviewRecord | None:
        """Store a QA review and mark the inspection reviewed; None when the id is unknown.

        The machine verdict of the inspection is kept as logged (audit trail); the review
        says what QA found (``verdict``/``classes``).
        """
        if action not in REVIEW_ACTIONS:
            raise ValueError(f"unknown review action {action!r}")
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}")
        with self._write.begin() as session:
            done = session.execute(
                update(InspectionRow)
                .where(InspectionRow.id == inspection_id)
                .values(reviewed=True)
            ).rowcount
            if not done:
                return None
            row = ReviewRow(
                inspection_id=inspection_id,
                reviewer=reviewer,
                action=action,
                verdict=verdict,
                classes=list(classes) if classes is not None else None,
                comment=comment,
            )
            session.add(row)
            session.flush()
            return _review_record(row)

    def delete_before(self, cutoff: datetime) -> int:
        """Delete inspections captured before ``cutoff`` (defects and reviews cascade)."""
        with self._write.begin() as session:
            ids = select(InspectionRow.id).where(InspectionRow.captured_at < as_utc(cutoff))
            session.execute(delete(DefectRow).where(DefectRow.inspection_id.in_(ids)))
            session.execute(delete(ReviewRow).where(ReviewRow.inspection_id.in_(ids)))
            return session.execute(
                delete(InspectionRow).where(InspectionRow.captured_at < as_utc(cutoff))
            ).rowcount

    # -- reads ------------------------------------------------------------------------------
    def get(self, inspection_id: int) -> InspectionResult | None:
        """The logged result (``inspection_id`` and defects set, no mask) or None."""
        record = self.get_record(inspection_id, with_reviews=False)
        return record.result if record else None

    def get_record(self, inspection_id: int, with_reviews: bool = True) -> InspectionRecord | None:
        """The logged inspection with image paths, review flag and reviews, or None."""
        opts = [selectinload(InspectionRow.defects)]
        if with_reviews:
            opts.append(selectinload(InspectionRow.reviews))
        with self._read() as session:
            row = session.get(InspectionRow, inspection_id, options=opts)
            return _record(row, with_reviews) if row is not None else None

    def reviews(self, inspection_id: int) -> list[ReviewRecord]:
        """Reviews of an inspection, oldest first."""
        with self._read() as session:
            rows = session.scalars(
                select(ReviewRow)
                .where(ReviewRow.inspection_id == inspection_id)
                .order_by(ReviewRow.id)
            )
            return [_review_record(r) for r in rows]

    def query(
        self,
        line_id: str | None = None,
        verdict: str | None = None,
        defect_class: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        reviewed: bool | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[InspectionRecord], str | None]:
        """The defect log, newest first: ``(items, next_cursor)``.

        ``since`` is inclusive, ``until`` exclusive (naive datetimes are UTC);
        ``defect_class``: inspections with at least one defect of that class. ``limit`` is
        clamped to 1..:data:`MAX_PAGE`. ``next_cursor`` is None on the last page. Raises
        :class:`InvalidCursor` for a malformed cursor.
        """
        limit = max(1, min(int(limit), MAX_PAGE))
        stmt = select(InspectionRow)
        if line_id is not None:
            stmt = stmt.where(InspectionRow.line_id == line_id)
        if verdict is not None:
            stmt = stmt.where(InspectionRow.verdict == verdict)
        if reviewed is not None:
            stmt = stmt.where(InspectionRow.reviewed == reviewed)
        if since is not None:
            stmt = stmt.where(InspectionRow.captured_at >= as_utc(since))
        if until is not None:
            stmt = stmt.where(InspectionRow.captured_at < as_utc(until))
        if defect_class is not None:
            stmt = stmt.where(
                exists().where(
                    DefectRow.inspection_id == InspectionRow.id, DefectRow.cls == defect_class
                )
            )
        if cursor:
            t, i = decode_cursor(cursor)
            if self._sqlite:
                # the redundant ``captured_at <= t`` lets SQLite seek the index to the cursor
                # (the OR alone makes it walk the index from the newest row: O(depth))
                stmt = stmt.where(
                    InspectionRow.captured_at <= t,
                    or_(
                        InspectionRow.captured_at < t,
                        and_(InspectionRow.captured_at == t, InspectionRow.id < i),
                    ),
                )
            else:  # row comparison: one index range scan on (captured_at DESC, id DESC)
                stmt = stmt.where(tuple_(InspectionRow.captured_at, InspectionRow.id) < (t, i))
        stmt = (
            stmt.order_by(InspectionRow.captured_at.desc(), InspectionRow.id.desc())
            .limit(limit + 1)
            .options(selectinload(InspectionRow.defects), selectinload(InspectionRow.reviews))
        )
        with self._read() as session:
            rows = list(session.scalars(stmt))
            more = len(rows) > limit
            rows = rows[:limit]
            items = [_record(r, with_reviews=True) for r in rows]
        next_cursor = encode_cursor(rows[-1].captured_at, rows[-1].id) if more else None
        return items, next_cursor

    def count(
        self, line_id: str | None = None, verdict: str | None = None
    ) -> int:
        """Number of logged inspections (optionally of one line / verdict)."""
        stmt = select(func.count()).select_from(InspectionRow)
        if line_id is not None:
            stmt = stmt.where(InspectionRow.line_id == line_id)
        if verdict is not None:
            stmt = stmt.where(InspectionRow.verdict == verdict)
        with self._read() as session:
            return int(session.execute(stmt).scalar_one())

    def max_frame_id(self, line_id: str) -> int | None:
        """Highest frame id logged for a line (None: nothing logged)."""
        with self._read() as session:
            return session.execute(
                select(func.max(InspectionRow.frame_id)).where(InspectionRow.line_id == line_id)
            ).scalar_one()

    def ping(self) -> None:
        """``SELECT 1``; raises when the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

