"""The "to review" queue: logged frames sampled for a QA look (issue 21.5).

Revision ID: 0007_review_queue
Revises: 0006_recipe_promotions
Create Date: 2026-12-06 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_review_queue"
down_revision: str | Sequence[str] | None = "0006_recipe_promotions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create ``review_queue``."""
    op.create_table(
        "review_queue",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("inspection_id", _ID, nullable=False),
        sa.Column("line_id", sa.String(64), nullable=False),
        sa.Column("frame_id", sa.BigInteger(), nullable=False),
        sa.Column("captured_at", _TS, nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("reasons", _JSON, nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("detail", _JSON, nullable=False),
        sa.Column("sampled_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_review_queue"),
        sa.ForeignKeyConstraint(
            ["inspection_id"], ["inspections.id"], ondelete="CASCADE",
            name="fk_review_queue_inspection_id_inspections",
        ),
        sa.UniqueConstraint("inspection_id", name="uq_review_queue_inspection_id"),
    )
    op.create_index("ix_review_queue_line_id_day", "review_queue", ["line_id", "day"])


def downgrade() -> None:
    """Drop ``review_queue``."""
    op.drop_index("ix_review_queue_line_id_day", table_name="review_queue")
    op.drop_table("review_queue")
