"""First schema: users, forget requests, jobs, adapters, metric reports, audit events.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Migrations are frozen history: they use plain SQLAlchemy types, never the app's models, so that
a later change to ``storage/models.py`` cannot rewrite what revision 1 did.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _time(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        _time("at", nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_target", "audit_events", ["target_type", "target_id"])

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        _time("token_created_at"),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        _time("created_at", nullable=False),
        sa.CheckConstraint("role IN ('officer', 'auditor', 'viewer')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_users_token_hash")),
    )

    op.create_table(
        "forget_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("requester", sa.String(length=256), nullable=False),
        sa.Column("submitted_by_id", sa.Integer(), nullable=True),
        sa.Column("individual_ids", JSON, nullable=False),
        sa.Column("categories", JSON, nullable=True),
        sa.Column("pair_ids", JSON, nullable=True),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        _time("completed_at"),
        sa.CheckConstraint(
            "status IN ('submitted', 'queued', 'running', 'verified', 'needs_review', "
            "'failed', 'cancelled')",
            name=op.f("ck_forget_requests_status"),
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by_id"],
            ["users.id"],
            name=op.f("fk_forget_requests_submitted_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forget_requests")),
    )
    op.create_index("ix_forget_requests_status", "forget_requests", ["status"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("min_gpu_mem_mb", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("worker_id", sa.String(length=128), nullable=True),
        _time("heartbeat_at"),
        _time("started_at"),
        _time("finished_at"),
        _time("not_before"),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", JSON, nullable=True),
        _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_jobs_status"),
        ),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name=op.f("ck_jobs_progress")),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["forget_requests.id"],
            name=op.f("fk_jobs_request_id_forget_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_claim", "jobs", ["status", "priority", "id"])
    op.create_index("ix_jobs_request_id", "jobs", ["request_id"])

    op.create_table(
        "adapters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("base_fingerprint", sa.String(length=128), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        _time("created_at", nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_adapters_job_id_jobs")),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["forget_requests.id"],
            name=op.f("fk_adapters_request_id_forget_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adapters")),
        sa.UniqueConstraint("job_id", name=op.f("uq_adapters_job_id")),
    )
    op.create_index("ix_adapters_request_id", "adapters", ["request_id"])

    op.create_table(
        "metric_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("adapter_id", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("method", sa.String(length=32), nullable=True),
        sa.Column("report", JSON, nullable=False),
        *(
            sa.Column(name, sa.Float(), nullable=True)
            for name in (
                "forget_em",
                "forget_ape",
                "forget_rouge_l",
                "forget_truth_ratio",
                "forget_quality",
                "image_leak",
                "nonprivate_rouge_l",
                "nonprivate_em",
                "retain_rouge_l",
                "retain_em",
                "pope_acc",
                "mme_acc",
            )
        ),
        sa.Column("passed", sa.Boolean(), nullable=True),
        _time("created_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["adapter_id"], ["adapters.id"], name=op.f("fk_metric_reports_adapter_id_adapters")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_metric_reports_job_id_jobs")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["forget_requests.id"],
            name=op.f("fk_metric_reports_request_id_forget_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_reports")),
    )
    op.create_index("ix_metric_reports_adapter_id", "metric_reports", ["adapter_id"])
    op.create_index("ix_metric_reports_request_id", "metric_reports", ["request_id"])


def downgrade() -> None:
    for table in ("metric_reports", "adapters", "jobs", "forget_requests", "users", "audit_events"):
        op.drop_table(table)
