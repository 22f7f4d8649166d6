"""One defect, one record: a defect keeps every model's detection of its region as evidence.

Revision ID: 0003_defect_evidence
Revises: 0002_qa_ui_indexes
Create Date: 2026-11-29 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_defect_evidence"
down_revision: str | Sequence[str] | None = "0002_qa_ui_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Add ``defects.evidence`` (JSON, NULL for defects logged before)."""
    with op.batch_alter_table("defects") as batch:
        batch.add_column(sa.Column("evidence", _JSON, nullable=True))


def downgrade() -> None:
    """Drop ``defects.evidence``."""
    with op.batch_alter_table("defects") as batch:
        batch.drop_column("evidence")
