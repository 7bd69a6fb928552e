"""Erasure-workflow fields on forget requests: data-subject reference, legal basis, received
and due (one month, GDPR Art. 12(3)), the approver's sign-off (storage.erasure).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("subject_ref", sa.String(length=128)),
    ("legal_basis", sa.String(length=64)),
    ("received_at", sa.DateTime(timezone=True)),
    ("due_at", sa.DateTime(timezone=True)),
    ("approved_by", sa.String(length=128)),
    ("approved_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    # Nullable columns: requests stored before this migration keep NULL (no deadline known);
    # batch mode copies the table on SQLite and alters it in place on PostgreSQL.
    with op.batch_alter_table("forget_requests", recreate="auto") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("forget_requests", recreate="auto") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
