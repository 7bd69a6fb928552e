"""The schema: forget requests, the job queue, adapters, metric reports, the audit log, users.

Conventions:
- Times are UTC-aware (:class:`storage.clock.UTCDateTime`).
- Statuses are short strings guarded by CHECK constraints (portable; no native enums, which
  SQLite lacks and PostgreSQL makes awkward to extend in a migration).
- Every constraint and index has a stable name (``naming_convention``), which Alembic's SQLite
  batch mode needs to rebuild tables in later migrations.
- JSON columns are JSONB on PostgreSQL, JSON text on SQLite.

Changing anything here needs a new migration in ``storage/migrations/versions``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.clock import UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")

# admin: the first-run account (migration 0002), allowed what officers and auditors may do.
ROLES = ("officer", "auditor", "viewer", "admin")

# submitted: stored, not yet queued; queued/running mirror the job; verified: the leak thresholds
# hold; needs_review: the adapter exists but a human must look; failed / cancelled: no adapter.
REQUEST_STATUSES = (
    "submitted",
    "queued",
    "running",
    "verified",
    "needs_review",
    "failed",
    "cancelled",
)
# A request in one of these states still "owns" its pairs: a second request for them is refused.
ACTIVE_REQUEST_STATUSES = ("submitted", "queued", "running")
# The job outcome decided these; queue bookkeeping must not overwrite them.
FINAL_REQUEST_STATUSES = ("verified", "needs_review", "failed", "cancelled")

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_JOB_STATUSES = ("succeeded", "failed", "cancelled")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """A person using the app. Passwords are argon2id hashes; API tokens are stored as sha256."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    # sha256 hex of the API token; the token itself is shown once and never stored.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ForgetRequest(Base):
    """A right-to-be-forgotten request: a compliance record, never deleted.

    ``categories`` None means every pair of the individuals (FIUBench's identity setting);
    a list means only pairs of those categories (the paper's private setting). ``pair_ids``
    optionally narrows the request to single pairs.
    """

    __tablename__ = "forget_requests"
    __table_args__ = (
        CheckConstraint(_in("status", REQUEST_STATUSES), name="status"),
        Index("ix_forget_requests_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Who asked (the data subject or their representative, free text) and who typed it in.
    requester: Mapped[str] = mapped_column(String(256))
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    individual_ids: Mapped[list[str]] = mapped_column(JsonType)
    categories: Mapped[list[str] | None] = mapped_column(JsonType)
    pair_ids: Mapped[list[str] | None] = mapped_column(JsonType)
    method: Mapped[str] = mapped_column(String(32), default="cagul")
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The erasure workflow (storage.erasure): a reference to the data subject in the officer's
    # files, the legal basis, received / due (one month, GDPR Art. 12(3)), the sign-off.
    subject_ref: Mapped[str | None] = mapped_column(String(128))
    legal_basis: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(128))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Job(Base):
    """One unit of work, and the queue itself: workers claim rows of this table.

    ``attempts`` counts claims; ``worker_id`` + ``attempts`` identify the current claim, and every
    write a worker makes is fenced on them, so a worker that lost its claim (reaped after a stall)
    can no longer change the row. ``not_before`` delays retries (back-off).
    """

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress"),
        Index("ix_jobs_claim", "status", "priority", "id"),
        Index("ix_jobs_request_id", "request_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher runs first
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    min_gpu_mem_mb: Mapped[int] = mapped_column(Integer, default=0)  # 0: runs on CPU workers
    request_id: Mapped[int | None] = mapped_column(ForeignKey("forget_requests.id"))
    worker_id: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Adapter(Base):
    """A trained unlearning adapter on disk. Loading must check ``sha256`` and
    ``base_fingerprint`` first (:func:`storage.artifacts.verify_adapter`)."""

    __tablename__ = "adapters"
    __table_args__ = (Index("ix_adapters_request_id", "request_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("forget_requests.id"))
    # Unique: one job attempt publishes at most one adapter, even if it is retried.
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), unique=True)
    method: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    base_fingerprint: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(Text)  # the adapter directory
    sha256: Mapped[str] = mapped_column(String(64))  # of adapter_model.safetensors
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MetricReport(Base):
    """An evaluation report (the evaluation JSON) plus its headline numbers as queryable columns."""

    __tablename__ = "metric_reports"
    __table_args__ = (
        Index("ix_metric_reports_adapter_id", "adapter_id"),
        Index("ix_metric_reports_request_id", "request_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    adapter_id: Mapped[int | None] = mapped_column(ForeignKey("adapters.id"))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("forget_requests.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    method: Mapped[str | None] = mapped_column(String(32))
    report: Mapped[dict[str, Any]] = mapped_column(JsonType)
    forget_em: Mapped[float | None] = mapped_column(Float)
    forget_ape: Mapped[float | None] = mapped_column(Float)  # the paraphrase leak
    forget_rouge_l: Mapped[float | None] = mapped_column(Float)
    forget_truth_ratio: Mapped[float | None] = mapped_column(Float)
    forget_quality: Mapped[float | None] = mapped_column(Float)  # KS p-value vs Retrain
    image_leak: Mapped[float | None] = mapped_column(Float)  # perturbed-image leak, if reported
    nonprivate_rouge_l: Mapped[float | None] = mapped_column(Float)
    nonprivate_em: Mapped[float | None] = mapped_column(Float)
    retain_rouge_l: Mapped[float | None] = mapped_column(Float)
    retain_em: Mapped[float | None] = mapped_column(Float)
    pope_acc: Mapped[float | None] = mapped_column(Float)
    mme_acc: Mapped[float | None] = mapped_column(Float)
    passed: Mapped[bool | None] = mapped_column(Boolean)  # leak thresholds held
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEvent(Base):
    """An append-only record of who did what to which object, and when."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_target", "target_type", "target_id"),
        Index("ix_audit_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))  # "user:alice", "worker:host-1234", "system"
    action: Mapped[str] = mapped_column(String(64))  # "request.created", "job.claimed", ...
    target_type: Mapped[str] = mapped_column(String(32))  # "request", "job", "adapter", ...
    target_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)


class WebSession(Base):
    """A signed-in browser (migration 0003): the cookie holds a random token, only its sha256
    is stored; the session ends at ``expires_at`` or when ``revoked_at`` is set (sign-out)."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SignInThrottle(Base):
    """Consecutive failed sign-ins of one key ("user:<id>", "unknown-name", "client:<sha256 of
    the address>") and until when the key is locked (migration 0003). A success clears it."""

    __tablename__ = "sign_in_throttle"

    key: Mapped[str] = mapped_column(String(96), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
