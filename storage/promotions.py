"""Recipe promotions: the active recipe of each line and the record of every switch.

* ``line_recipes`` - one row per line whose recipe was promoted: the active recipe (name,
  the path it was promoted from, SHA-256 and full YAML text, model versions) and the one
  before it (kept for one-step rollback), ``version`` (raised by every switch; workers
  compare it to reload) and the ``recipe_promotions`` row that set it.
* ``recipe_promotions`` - append-only record: who (API key name and role, or the OS user
  of the CLI), from where, when, ``promote`` or ``rollback``, from which recipe to which
  (each with its models' name, version and file SHA-256) and, for a promotion, the replay
  report it rests on (path, SHA-256, summary figures).

Tables hang on :class:`storage.orm.Base` (migration ``0006_recipe_promotions``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.orm import Base, IdType, JsonType, UTCDateTime, utcnow

ACTIONS = ("promote", "rollback")


class PromotionRow(Base):
    """One promote or rollback of a line's recipe."""

    __tablename__ = "recipe_promotions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    line_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    from_recipe: Mapped[str | None] = mapped_column(String(128), nullable=True)
    from_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    from_models: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonType, nullable=True)
    to_recipe: Mapped[str] = mapped_column(String(128))
    to_source: Mapped[str] = mapped_column(String(1024))
    to_sha256: Mapped[str] = mapped_column(String(64))
    to_models: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    report_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    report_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    report_summary: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    client: Mapped[str] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        CheckConstraint("action IN ('promote', 'rollback')", name="action"),
        Index("ix_recipe_promotions_line_id_id", "line_id", "id"),
    )


class LineRecipeRow(Base):
    """The active (and previous) recipe of a line."""

    __tablename__ = "line_recipes"

    line_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    recipe: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    models: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    previous_recipe: Mapped[str | None] = mapped_column(String(128), nullable=True)
    previous_source: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    previous_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    previous_content: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_models: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonType, nullable=True)
    promotion_id: Mapped[int] = mapped_column(IdType, ForeignKey("recipe_promotions.id"))
    promoted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
