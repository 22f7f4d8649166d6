"""Recipe promotions: each line's active recipe and the record of every promote/rollback
(issue 21, item 3).

Revision ID: 0006_recipe_promotions
Revises: 0005_shadow_results
Create Date: 2026-12-06 18:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_recipe_promotions"
down_revision: str | Sequence[str] | None = "0005_shadow_results"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create ``recipe_promotions`` and ``line_recipes``."""
    op.create_table(
        "recipe_promotions",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("line_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_recipe", sa.String(128), nullable=True),
        sa.Column("from_sha256", sa.String(64), nullable=True),
        sa.Column("from_models", _JSON, nullable=True),
        sa.Column("to_recipe", sa.String(128), nullable=False),
        sa.Column("to_source", sa.String(1024), nullable=False),
        sa.Column("to_sha256", sa.String(64), nullable=False),
        sa.Column("to_models", _JSON, nullable=False),
        sa.Column("report_path", sa.String(1024), nullable=True),
        sa.Column("report_sha256", sa.String(64), nullable=True),
        sa.Column("report_summary", _JSON, nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("client", sa.String(128), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("at", _TS, nullable=False),
        sa.CheckConstraint("action IN ('promote', 'rollback')", name="ck_recipe_promotions_action"),
        sa.PrimaryKeyConstraint("id", name="pk_recipe_promotions"),
    )
    op.create_index("ix_recipe_promotions_line_id_id", "recipe_promotions", ["line_id", "id"])
    op.create_table(
        "line_recipes",
        sa.Column("line_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("recipe", sa.String(128), nullable=False),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("models", _JSON, nullable=False),
        sa.Column("previous_recipe", sa.String(128), nullable=True),
        sa.Column("previous_source", sa.String(1024), nullable=True),
        sa.Column("previous_sha256", sa.String(64), nullable=True),
        sa.Column("previous_content", sa.Text(), nullable=True),
        sa.Column("previous_models", _JSON, nullable=True),
        sa.Column("promotion_id", _ID, nullable=False),
        sa.Column("promoted_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["promotion_id"],
            ["recipe_promotions.id"],
            name="fk_line_recipes_promotion_id_recipe_promotions",
        ),
        sa.PrimaryKeyConstraint("line_id", name="pk_line_recipes"),
    )


def downgrade() -> None:
    """Drop ``line_recipes`` and ``recipe_promotions``."""
    op.drop_table("line_recipes")
    op.drop_index("ix_recipe_promotions_line_id_id", table_name="recipe_promotions")
    op.drop_table("recipe_promotions")
