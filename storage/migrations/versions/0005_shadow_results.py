"""Shadow results: a candidate recipe's inspection of a frame beside the live one (issue 21).

Revision ID: 0005_shadow_results
Revises: 0004_access
Create Date: 2026-11-30 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_shadow_results"
down_revision: str | Sequence[str] | None = "0004_access"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create ``shadow_results``."""
    op.create_table(
        "shadow_results",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("line_id", sa.String(64), nullable=False),
        sa.Column("frame_id", sa.BigInteger(), nullable=False),
        sa.Column("captured_at", _TS, nullable=False),
        sa.Column("recipe", sa.String(128), nullable=False),
        sa.Column("live_verdict", sa.String(8), nullable=False),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("live_classes", _JSON, nullable=False),
        sa.Column("classes", _JSON, nullable=False),
        sa.Column("defects", _JSON, nullable=False),
        sa.Column("models", _JSON, nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("disagreement", sa.String(16), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_shadow_results"),
        sa.UniqueConstraint(
            "line_id", "frame_id", "recipe", name="uq_shadow_results_line_id_frame_id_recipe"
        ),
    )
    op.create_index(
        "ix_shadow_results_line_id_captured_at", "shadow_results", ["line_id", "captured_at"]
    )


def downgrade() -> None:
    """Drop ``shadow_results``."""
    op.drop_index("ix_shadow_results_line_id_captured_at", table_name="shadow_results")
    op.drop_table("shadow_results")
