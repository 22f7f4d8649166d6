"""QA UI indexes: line + verdict (filtered log, last NG per line) and reviewed.

Revision ID: 0002_qa_ui_indexes
Revises: 0001_initial
Create Date: 2026-11-23 09:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002_qa_ui_indexes"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the indexes the QA UI's filters and line status use."""
    op.create_index(
        "ix_inspections_line_id_verdict_captured_at_id",
        "inspections",
        ["line_id", "verdict", "captured_at", "id"],
    )
    op.create_index(
        "ix_inspections_reviewed_captured_at_id", "inspections", ["reviewed", "captured_at", "id"]
    )


def downgrade() -> None:
    """Drop the QA UI indexes."""
    op.drop_index("ix_inspections_reviewed_captured_at_id", table_name="inspections")
    op.drop_index("ix_inspections_line_id_verdict_captured_at_id", table_name="inspections")
