"""Initial schema: inspections, defects, reviews.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the inspection log."""
    op.create_table(
        "inspections",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("line_id", sa.String(64), nullable=False),
        sa.Column("frame_id", sa.BigInteger(), nullable=False),
        sa.Column("captured_at", _TS, nullable=False),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("code", sa.SmallInteger(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("recipe", sa.String(128), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("brightness", sa.Float(), nullable=False),
        sa.Column("models", _JSON, nullable=False),
        sa.Column("mask_classes", _JSON, nullable=False),
        sa.Column("image_path", sa.String(512), nullable=True),
        sa.Column("mask_path", sa.String(512), nullable=True),
        sa.Column("reviewed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "created_at", _TS, server_default=sa.func.current_timestamp(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name="pk_inspections"),
        sa.UniqueConstraint("line_id", "frame_id", name="uq_inspections_line_id_frame_id"),
        sa.CheckConstraint(
            "verdict IN ('OK', 'NG', 'UNKNOWN')", name=op.f("ck_inspections_verdict")
        ),
    )
    op.create_index(
        "ix_inspections_captured_at_id",
        "inspections",
        [sa.text("captured_at DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "ix_inspections_line_id_captured_at_id", "inspections", ["line_id", "captured_at", "id"]
    )
    op.create_index(
        "ix_inspections_verdict_captured_at_id", "inspections", ["verdict", "captured_at", "id"]
    )

    op.create_table(
        "defects",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("inspection_id", _ID, nullable=False),
        sa.Column("class", sa.String(64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("x", sa.Integer(), nullable=False),
        sa.Column("y", sa.Integer(), nullable=False),
        sa.Column("w", sa.Integer(), nullable=False),
        sa.Column("h", sa.Integer(), nullable=False),
        sa.Column("area_px", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_defects"),
        sa.ForeignKeyConstraint(
            ["inspection_id"],
            ["inspections.id"],
            name="fk_defects_inspection_id_inspections",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_defects_inspection_id", "defects", ["inspection_id"])
    op.create_index("ix_defects_class", "defects", ["class", "inspection_id"])

    op.create_table(
        "reviews",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("inspection_id", _ID, nullable=False),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("verdict", sa.String(8), nullable=True),
        sa.Column("classes", _JSON, nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column(
            "created_at", _TS, server_default=sa.func.current_timestamp(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
        sa.ForeignKeyConstraint(
            ["inspection_id"],
            ["inspections.id"],
            name="fk_reviews_inspection_id_inspections",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "action IN ('confirm', 'correct', 'false_reject')", name=op.f("ck_reviews_action")
        ),
        sa.CheckConstraint(
            "verdict IS NULL OR verdict IN ('OK', 'NG', 'UNKNOWN')", name=op.f("ck_reviews_verdict")
        ),
    )
    op.create_index("ix_reviews_inspection_id", "reviews", ["inspection_id"])


def downgrade() -> None:
    """Drop the inspection log."""
    op.drop_table("reviews")
    op.drop_table("defects")
    op.drop_table("inspections")
