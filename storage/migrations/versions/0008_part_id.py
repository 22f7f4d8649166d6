"""Trigger mode = parts (issue 18.2): ``inspections.part_id`` and ``unknown_reason``.

``part_id`` is the part a triggered frame is (= ``frame_id`` in trigger mode, NULL in
free-run); ``unknown_reason`` says why an ``UNKNOWN`` row was not inspected (``grab_failed``,
``part_missed``, ``overloaded``; NULL for inspected frames and rows logged before).

Revision ID: 0008_part_id
Revises: 0007_review_queue
Create Date: 2026-12-06 18:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_part_id"
down_revision: str | Sequence[str] | None = "0007_review_queue"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``inspections.part_id`` (BIGINT) and ``inspections.unknown_reason`` (both NULL)."""
    with op.batch_alter_table("inspections") as batch:
        batch.add_column(sa.Column("part_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("unknown_reason", sa.String(32), nullable=True))


def downgrade() -> None:
    """Drop both columns."""
    with op.batch_alter_table("inspections") as batch:
        batch.drop_column("unknown_reason")
        batch.drop_column("part_id")
