"""Access control records: API keys (stored hashed) and the audit log.

* ``api_keys`` - one row per key: ``name`` (who), ``role`` (``viewer``, ``operator``,
  ``admin``), ``key_hash`` = SHA-256 of the key (hex). Keys are 256-bit random tokens, so a
  fast hash suffices (no password stretching needed: nothing to brute-force), and the plain
  key exists only in the answer that created it. Revoked keys keep their row.
* ``audit_log`` - every write and configuration change (IEC 62443-4-2 CR 2.8): ``at`` (when),
  ``actor`` and ``role`` (who), ``client`` (from where), ``action`` (what: method and path or
  command), ``target``, ``result`` (HTTP status or ``ok``/``denied``/``failed``), ``detail``.

The tables hang on :class:`storage.orm.Base` (migration ``0004_access``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Engine, Index, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import session_factory, write_engine
from storage.orm import Base, IdType, UTCDateTime, utcnow

ROLES = ("viewer", "operator", "admin")
KEY_PREFIX = "li_"


def hash_key(key: str) -> str:
    """SHA-256 (hex) of an API key: what is stored and compared."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A new random API key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKeyRow(Base):
    """An API key: who holds it, its role, its hash."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        CheckConstraint("role IN ('viewer', 'operator', 'admin')", name="role"),
    )


class AuditRow(Base):
    """One audited write or configuration change."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    client: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(256))
    target: Mapped[str | None] = mapped_column(String(256), nullable=True)
    result: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_audit_log_at_id", "at", "id"),)


@dataclass(frozen=True)
class KeyInfo:
    """An API key without its secret."""

    id: int
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        """JSON form (ISO-8601 times)."""
        return {
            "id": self.id, "name": self.name, "role": self.role,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _info(row: ApiKeyRow) -> KeyInfo:
    return KeyInfo(row.id, row.name, row.role, row.created_at, row.revoked_at)


class AccessStore:
    """API keys and the audit log on one engine (thread-safe)."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine`` (migrated)."""
        self._read = session_factory(engine)
        self._write = session_factory(write_engine(engine))

    # -- keys ---------------------------------------------------------------------------
    def create_key(self, name: str, role: str) -> tuple[KeyInfo, str]:
        """Create a key; return its info and the plain key (shown once, never stored)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        key = new_key()
        with self._write.begin() as session:
            row = ApiKeyRow(name=name, role=role, key_hash=hash_key(key))
            session.add(row)
            session.flush()
            return _info(row), key

    def lookup(self, key: str) -> KeyInfo | None:
        """The active key whose hash matches ``key``, or None."""
        with self._read() as session:
            row = session.execute(
                select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(key),
                                        ApiKeyRow.revoked_at.is_(None))
            ).scalar_one_or_none()
            return _info(row) if row is not None else None

    def keys(self) -> list[KeyInfo]:
        """Every key (revoked ones included), oldest first."""
        with self._read() as session:
            return [_info(r) for r in session.execute(select(ApiKeyRow).order_by(ApiKeyRow.id))
                    .scalars()]

    def revoke(self, key_id: int) -> bool:
        """Revoke a key; False when there is no such active key."""
        with self._write.begin() as session:
            res = session.execute(
                update(ApiKeyRow).where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            return bool(res.rowcount)

    # -- audit --------------------------------------------------------------------------
    def audit(self, *, actor: str, role: str | None, client: str, action: str,
              result: str, target: str | None = None, detail: str | None = None) -> None:
        """Append one audit record."""
        with self._write.begin() as session:
            session.add(AuditRow(actor=actor[:128], role=role, client=client[:128],
                                 action=action[:256], target=target and target[:256],
                                 result=str(result)[:32], detail=detail))

    def audit_records(self, limit: int = 100, before_id: int | None = None
                      ) -> list[dict[str, Any]]:
        """Newest audit records first (``before_id``: older than that id)."""
        stmt = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(AuditRow.id < before_id)
        with self._read() as session:
            return [
                {"id": r.id, "at": r.at.isoformat(), "actor": r.actor, "role": r.role,
                 "client": r.client, "action": r.action, "target": r.target,
                 "result": r.result, "detail": r.detail}
                for r in session.execute(stmt).scalars()
            ]
