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

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Engine, ForeignKey, Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.promotion import PromotionRefused, RecipeSnapshot, ReplayEvidence
from core.timeutil import as_utc, iso_utc
from storage.db import is_sqlite, session_factory, write_engine
from storage.orm import Base, IdType, Inspection, JsonType, UTCDateTime, utcnow

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


@dataclass(frozen=True)
class Actor:
    """Who switches a recipe: an API key's name and role, or ``cli:<user>``; and from where."""

    name: str
    role: str | None
    client: str


@dataclass(frozen=True)
class ActiveRecipe:
    """A line's active recipe, the one before it (for rollback) and the switch counter."""

    line_id: str
    version: int
    current: RecipeSnapshot
    previous: RecipeSnapshot | None
    promotion_id: int
    promoted_at: datetime

    def as_json(self) -> dict[str, Any]:
        """JSON form (without the YAML texts)."""
        return {
            "line_id": self.line_id, "version": self.version, "current": self.current.as_json(),
            "previous": self.previous.as_json() if self.previous else None,
            "promotion_id": self.promotion_id, "promoted_at": iso_utc(self.promoted_at),
        }


def _active(row: LineRecipeRow) -> ActiveRecipe:
    previous = None
    if row.previous_content is not None:
        previous = RecipeSnapshot(row.previous_recipe or "", row.previous_source or "",
                                  row.previous_sha256 or "", row.previous_content,
                                  list(row.previous_models or []))
    return ActiveRecipe(
        row.line_id, row.version,
        RecipeSnapshot(row.recipe, row.source, row.sha256, row.content, list(row.models)),
        previous, row.promotion_id, as_utc(row.promoted_at),
    )


def promotion_json(row: PromotionRow) -> dict[str, Any]:
    """JSON form of a ``recipe_promotions`` row."""
    return {
        "id": row.id, "line_id": row.line_id, "action": row.action, "at": iso_utc(row.at),
        "from": None if row.from_recipe is None else {
            "recipe": row.from_recipe, "sha256": row.from_sha256, "models": row.from_models},
        "to": {"recipe": row.to_recipe, "source": row.to_source, "sha256": row.to_sha256,
               "models": row.to_models},
        "report": None if row.report_path is None else {
            "path": row.report_path, "sha256": row.report_sha256,
            "summary": row.report_summary},
        "actor": row.actor, "role": row.role, "client": row.client, "note": row.note,
    }


class PromotionStore:
    """Reads and switches the lines' active recipes (thread-safe; one transaction each)."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine`` (migrated with :func:`storage.db.migrate`)."""
        self._read = session_factory(engine)
        self._write = session_factory(write_engine(engine))
        self._pg = not is_sqlite(engine)

    def active(self, line_id: str) -> ActiveRecipe | None:
        """The line's promoted recipe; None when none was ever promoted (the line runs its
        configured recipe)."""
        with self._read() as session:
            row = session.get(LineRecipeRow, line_id)
            return _active(row) if row is not None else None

    def version(self, line_id: str) -> int:
        """The line's switch counter (0: never promoted) - what workers poll."""
        with self._read() as session:
            v = session.scalar(
                select(LineRecipeRow.version).where(LineRecipeRow.line_id == line_id))
            return int(v or 0)

    def line_logged(self, line_id: str) -> bool:
        """Whether the inspection log holds a frame of ``line_id`` (a line that ran)."""
        with self._read() as session:
            return session.scalar(
                select(Inspection.id).where(Inspection.line_id == line_id).limit(1)
            ) is not None

    def history(self, line_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The line's promotions and rollbacks, newest first."""
        stmt = (select(PromotionRow).where(PromotionRow.line_id == line_id)
                .order_by(PromotionRow.id.desc()).limit(max(1, min(int(limit), 500))))
        with self._read() as session:
            return [promotion_json(r) for r in session.scalars(stmt)]

    def _locked(self, session: Session, line_id: str, expected_version: int
                ) -> LineRecipeRow | None:
        stmt = select(LineRecipeRow).where(LineRecipeRow.line_id == line_id)
        row = session.scalars(stmt.with_for_update() if self._pg else stmt).one_or_none()
        if (row.version if row is not None else 0) != expected_version:
            raise PromotionRefused(409, "conflict", f"line {line_id}: its recipe was switched "
                                   "meanwhile; look at its history and try again")
        return row

    def promote(
        self, line_id: str, live: RecipeSnapshot, candidate: RecipeSnapshot,
        evidence: ReplayEvidence, actor: Actor, *, expected_version: int,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Make ``candidate`` the line's recipe, ``live`` (what runs now) its previous one,
        and record it; the record's JSON. ``expected_version``: the switch counter the checks
        were made against (409 when another switch came first)."""
        with self._write.begin() as session:
            row = self._locked(session, line_id, expected_version)
            record = self._record(session, line_id, "promote", live, candidate, actor, note,
                                  evidence)
            if row is None:
                row = LineRecipeRow(line_id=line_id, version=0)
                session.add(row)
            _set(row, candidate, live, record.id)
            return promotion_json(record)

    def rollback(
        self, line_id: str, to_models: list[dict[str, str]], actor: Actor, *,
        expected_version: int, note: str | None = None,
    ) -> dict[str, Any]:
        """Make the line's previous recipe active again (one step: afterwards there is no
        previous) and record it with ``to_models`` (its model files as they are now)."""
        with self._write.begin() as session:
            row = self._locked(session, line_id, expected_version)
            current = _active(row).current if row is not None else None
            previous = _active(row).previous if row is not None else None
            if row is None or current is None or previous is None:
                raise PromotionRefused(409, "no_previous_recipe",
                                       f"line {line_id}: no previous recipe to roll back to")
            back = RecipeSnapshot(previous.name, previous.source, previous.sha256,
                                  previous.content, to_models)
            record = self._record(session, line_id, "rollback", current, back, actor, note)
            _set(row, back, None, record.id)
            return promotion_json(record)

    @staticmethod
    def _record(
        session: Session, line_id: str, action: str, old: RecipeSnapshot,
        new: RecipeSnapshot, actor: Actor, note: str | None,
        evidence: ReplayEvidence | None = None,
    ) -> PromotionRow:
        record = PromotionRow(
            line_id=line_id, action=action, from_recipe=old.name, from_sha256=old.sha256,
            from_models=old.models, to_recipe=new.name, to_source=new.source[:1024],
            to_sha256=new.sha256, to_models=new.models,
            report_path=evidence.path[:1024] if evidence else None,
            report_sha256=evidence.sha256 if evidence else None,
            report_summary=evidence.summary if evidence else None,
            actor=actor.name[:128], role=actor.role, client=actor.client[:128], note=note,
            at=utcnow(),
        )
        session.add(record)
        session.flush()
        return record


def _set(row: LineRecipeRow, current: RecipeSnapshot, previous: RecipeSnapshot | None,
         promotion_id: int) -> None:
    row.version += 1
    row.recipe, row.source, row.sha256 = current.name, current.source[:1024], current.sha256
    row.content, row.models = current.content, current.models
    row.previous_recipe = previous.name if previous else None
    row.previous_source = previous.source[:1024] if previous else None
    row.previous_sha256 = previous.sha256 if previous else None
    row.previous_content = previous.content if previous else None
    row.previous_models = previous.models if previous else None
    row.promotion_id, row.promoted_at = promotion_id, utcnow()
