"""SQLAlchemy 2 models of the inspection log: ``inspections``, ``defects``, ``reviews``.

Schema changes go through an Alembic revision in ``storage/migrations/versions`` that mirrors
these models (``tests/storage`` checks that the migrated schema matches them).

* Primary keys are ``BIGINT`` on PostgreSQL (every frame is logged: 30 fps on one line is
  ~2.6 M rows a day, 2**31 is reached in about two years) and ``INTEGER`` on SQLite (the only
  type SQLite turns into an auto-incrementing rowid).
* Timestamps are timezone-aware UTC in Python. PostgreSQL stores ``timestamptz``; SQLite
  stores the naive UTC value in SQLAlchemy's fixed-width text format, which sorts correctly.
* ``models``, ``mask_classes`` and a defect's ``evidence`` are JSON (``jsonb`` on PostgreSQL).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

#: Constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Auto-increment primary key: BIGINT, INTEGER on SQLite (rowid alias).
IdType = BigInteger().with_variant(Integer(), "sqlite")
#: JSON column: ``jsonb`` on PostgreSQL.
JsonType = JSON().with_variant(JSONB(), "postgresql")

VERDICTS = ("OK", "NG", "UNKNOWN")
REVIEW_ACTIONS = ("confirm", "correct", "false_reject")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (naive input is taken as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Normalise to UTC; SQLite gets the naive UTC value (it has no time zones)."""
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the inspection log."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Inspection(Base):
    """One inspected frame (unique per line and camera frame id)."""

    __tablename__ = "inspections"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    line_id: Mapped[str] = mapped_column(String(64))
    frame_id: Mapped[int] = mapped_column(BigInteger)
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime())
    verdict: Mapped[str] = mapped_column(String(8))
    code: Mapped[int] = mapped_column(SmallInteger)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    recipe: Mapped[str] = mapped_column(String(128), default="")
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    brightness: Mapped[float] = mapped_column(Float, default=0.0)
    models: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)
    mask_classes: Mapped[list[str]] = mapped_column(JsonType, default=list)
    image_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    mask_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.current_timestamp()
    )
    #: trigger mode: the part this frame is (= frame_id); NULL in free-run (0008)
    part_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: why an UNKNOWN row was not inspected: grab_failed, part_missed, overloaded (0008)
    unknown_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)

    defects: Mapped[list[Defect]] = relationship(
        back_populates="inspection",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Defect.id",
    )
    reviews: Mapped[list[Review]] = relationship(
        back_populates="inspection",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Review.id",
    )

    __table_args__ = (
        UniqueConstraint("line_id", "frame_id"),
        CheckConstraint("verdict IN ('OK', 'NG', 'UNKNOWN')", name="verdict"),
        Index("ix_inspections_line_id_captured_at_id", "line_id", "captured_at", "id"),
        Index("ix_inspections_verdict_captured_at_id", "verdict", "captured_at", "id"),
        # QA UI (0002): line + verdict filter, last NG per line, the reviewed filter
        Index(
            "ix_inspections_line_id_verdict_captured_at_id",
            "line_id", "verdict", "captured_at", "id",
        ),
        Index("ix_inspections_reviewed_captured_at_id", "reviewed", "captured_at", "id"),
    )


# defect log, newest first (keyset pagination on captured_at, id)
Index(
    "ix_inspections_captured_at_id", Inspection.captured_at.desc(), Inspection.id.desc()
)


class Defect(Base):
    """One defect of an inspection; ``bbox`` ``(x, y, w, h)`` in frame pixels."""

    __tablename__ = "defects"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    inspection_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("inspections.id", ondelete="CASCADE"), index=True
    )
    cls: Mapped[str] = mapped_column("class", String(64))
    score: Mapped[float] = mapped_column(Float)
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    w: Mapped[int] = mapped_column(Integer)
    h: Mapped[int] = mapped_column(Integer)
    area_px: Mapped[int] = mapped_column(Integer)
    #: the model whose detection named the defect
    model: Mapped[str] = mapped_column(String(64))
    #: every model's detection of the region (``inference.merge``; 0003); None before that
    evidence: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonType, nullable=True)

    inspection: Mapped[Inspection] = relationship(back_populates="defects")

    # filter "inspections with a defect of class X": (class, inspection_id) covers it
    __table_args__ = (Index("ix_defects_class", "class", "inspection_id"),)


class Review(Base):
    """A QA review of an inspection: confirm, correct, or mark a false reject."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    inspection_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("inspections.id", ondelete="CASCADE"), index=True
    )
    reviewer: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))
    #: the verdict QA says is right (confirm: the machine's; false_reject: OK)
    verdict: Mapped[str | None] = mapped_column(String(8), nullable=True)
    #: the defect classes QA says are present (None: unchanged)
    classes: Mapped[list[str] | None] = mapped_column(JsonType, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.current_timestamp()
    )

    inspection: Mapped[Inspection] = relationship(back_populates="reviews")

    __table_args__ = (
        CheckConstraint("action IN ('confirm', 'correct', 'false_reject')", name="action"),
        CheckConstraint("verdict IS NULL OR verdict IN ('OK', 'NG', 'UNKNOWN')", name="verdict"),
    )

