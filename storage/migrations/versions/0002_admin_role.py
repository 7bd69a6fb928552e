"""An "admin" role: the first-run account, allowed what officers and auditors may do.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "role IN ('officer', 'auditor', 'viewer')"
NEW = "role IN ('officer', 'auditor', 'viewer', 'admin')"


def _swap(check: str) -> None:
    # batch mode: SQLite cannot alter a constraint in place (it copies the table); PostgreSQL alters.
    with op.batch_alter_table("users", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_users_role"), type_="check")
        batch.create_check_constraint(op.f("ck_users_role"), check)


def upgrade() -> None:
    _swap(NEW)


def downgrade() -> None:
    _swap(OLD)
