"""The durable job queue, kept in the ``jobs`` table: enqueue, claim, heartbeat, finish, cancel.

Every function works inside the caller's session and transaction, so a state change, the linked
forget request's status and the audit event commit together.

Claiming is one statement on both databases::

    UPDATE jobs SET status='running', worker_id=:w, attempts=attempts+1, heartbeat_at=now ...
    WHERE id = (SELECT id FROM jobs WHERE status='queued' AND <fits this worker>
                ORDER BY priority DESC, id LIMIT 1 [FOR UPDATE SKIP LOCKED])
    RETURNING ...

On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets concurrent workers each take a different row
without waiting. On SQLite the session's ``BEGIN IMMEDIATE`` (storage.engine) holds the only
write lock, so the select and the update cannot interleave with another claim.

Fencing: a claim is (job id, worker id, attempt number). Every later write by the worker
matches all three and ``status='running'``; once the reaper (:mod:`jobs.reaper`) has re-queued
a job, the old worker's writes match no row and it learns that it lost the job.

"now" is the database server's clock (:func:`storage.db_now`), so worker hosts with skewed clocks
still agree on when a heartbeat is stale or a retry is due.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from jobs.registry import find_kind
from storage import FINAL_REQUEST_STATUSES, ForgetRequest, Job, db_now, record_event, utcnow
from storage.jsonsafe import json_safe
from storage.limits import storable_text

_NO_SYNC = {"synchronize_session": False}


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one job for one attempt."""

    job_id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    worker_id: str
    request_id: int | None

    @property
    def actor(self) -> str:
        return f"worker:{self.worker_id}"


@dataclass(frozen=True)
class Pulse:
    """What a heartbeat or progress write learned: do we still own the job, is cancel asked?"""

    owned: bool
    cancel_requested: bool


def _owned(claim: Claim):
    return (
        Job.id == claim.job_id,
        Job.worker_id == claim.worker_id,
        Job.attempts == claim.attempt,
        Job.status == "running",
    )


def sync_request(session: Session, request_id: int | None, status: str) -> None:
    """Mirror the job's state on its forget request, unless the request already has a verdict."""
    if request_id is None:
        return
    values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
    if status in FINAL_REQUEST_STATUSES:
        values["completed_at"] = utcnow()
    session.execute(
        update(ForgetRequest)
        .where(
            ForgetRequest.id == request_id,
            ForgetRequest.status.not_in(FINAL_REQUEST_STATUSES),
        )
        .values(**values),
        execution_options=_NO_SYNC,
    )


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    priority: int = 0,
    max_attempts: int | None = None,
    min_gpu_mem_mb: int | None = None,
    request_id: int | None = None,
    delay_s: float | None = None,
    actor: str = "system",
) -> Job:
    """Add a queued job (flushed, committed with the session). Defaults for ``max_attempts``
    and ``min_gpu_mem_mb`` come from the kind's registration when the kind is known here."""
    registered = find_kind(kind)
    if max_attempts is None:
        max_attempts = registered.max_attempts if registered else 3
    if min_gpu_mem_mb is None:
        min_gpu_mem_mb = registered.min_gpu_mem_mb if registered else 0
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    job = Job(
        kind=kind,
        payload=json_safe(dict(payload or {})),
        priority=priority,
        max_attempts=max_attempts,
        min_gpu_mem_mb=max(0, int(min_gpu_mem_mb)),
        request_id=request_id,
        status="queued",
        attempts=0,
        progress=0.0,
        message="queued",
    )
    session.add(job)
    session.flush()
    if delay_s:
        session.execute(
            update(Job).where(Job.id == job.id).values(not_before=db_now(delay_s)),
            execution_options=_NO_SYNC,
        )
        session.refresh(job, ["not_before"])
    record_event(
        session,
        actor=actor,
        action="job.enqueued",
        target_type="job",
        target_id=job.id,
        details={"kind": kind, "request_id": request_id, "priority": priority},
    )
    return job


def claim_next(
    session: Session, *, worker_id: str, kinds: Collection[str], gpu_mem_mb: int = 0
) -> Claim | None:
    """Atomically take the most urgent queued job this worker can run, or None."""
    if not kinds:
        return None
    pick = (
        select(Job.id)
        .where(
            Job.status == "queued",
            Job.kind.in_(sorted(kinds)),
            Job.min_gpu_mem_mb <= max(0, int(gpu_mem_mb)),
            or_(Job.not_before.is_(None), Job.not_before <= db_now()),
        )
        .order_by(Job.priority.desc(), Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)  # PostgreSQL only; SQLite ignores it (see above)
        .scalar_subquery()
    )
    stmt = (
        update(Job)
        .where(Job.id == pick, Job.status == "queued")
        .values(
            status="running",
            worker_id=worker_id,
            attempts=Job.attempts + 1,
            heartbeat_at=db_now(),
            started_at=db_now(),
            updated_at=db_now(),
            cancel_requested=False,
            progress=0.0,
            message="claimed",
        )
        .returning(Job.id, Job.kind, Job.payload, Job.attempts, Job.max_attempts, Job.request_id)
    )
    row = session.execute(stmt, execution_options=_NO_SYNC).first()
    if row is None:
        return None
    claim = Claim(
        job_id=row.id,
        kind=row.kind,
        payload=dict(row.payload or {}),
        attempt=row.attempts,
        max_attempts=row.max_attempts,
        worker_id=worker_id,
        request_id=row.request_id,
    )
    sync_request(session, claim.request_id, "running")
    record_event(
        session,
        actor=claim.actor,
        action="job.claimed",
        target_type="job",
        target_id=claim.job_id,
        details={"attempt": claim.attempt, "max_attempts": claim.max_attempts},
    )
    return claim


def heartbeat(session: Session, claim: Claim) -> Pulse:
    """Touch the job's heartbeat; tells whether we still own it and whether cancel is asked."""
    row = session.execute(
        update(Job)
        .where(*_owned(claim))
        .values(heartbeat_at=db_now())
        .returning(Job.cancel_requested),
        execution_options=_NO_SYNC,
    ).first()
    return Pulse(owned=row is not None, cancel_requested=bool(row and row.cancel_requested))


def set_progress(session: Session, claim: Claim, fraction: float, message: str | None) -> Pulse:
    """Write progress (clamped to 0..1) and message; also counts as a heartbeat."""
    fraction = min(1.0, max(0.0, float(fraction)))
    row = session.execute(
        update(Job)
        .where(*_owned(claim))
        .values(
            progress=fraction,
            message=storable_text(message, 1000),  # handler text: NUL-free on every backend
            heartbeat_at=db_now(),
            updated_at=db_now(),
        )
        .returning(Job.cancel_requested),
        execution_options=_NO_SYNC,
    ).first()
    return Pulse(owned=row is not None, cancel_requested=bool(row and row.cancel_requested))


def poll_claim(session: Session, claim: Claim) -> Pulse:
    """Read (without writing) whether we still own the job and whether cancel is asked."""
    row = session.execute(select(Job.cancel_requested).where(*_owned(claim))).first()
    return Pulse(owned=row is not None, cancel_requested=bool(row and row.cancel_requested))


def lock_claim(session: Session, claim: Claim) -> bool:
    """Lock the job row if we still own it, until the transaction ends (the reaper skips locked
    rows), so a final write and the ownership check cannot be separated. False: not ours."""
    row = session.execute(select(Job.id).where(*_owned(claim)).with_for_update()).first()
    return row is not None


def complete(session: Session, claim: Claim, result: dict[str, Any] | None) -> bool:
    """Mark the job succeeded. False when we no longer own it (nothing written)."""
    done = _update_owned(
        session,
        claim,
        status="succeeded",
        progress=1.0,
        message="succeeded",
        error=None,  # an earlier attempt's failure (a dead worker) no longer describes it
        result=json_safe(result),
        finished_at=db_now(),
    )
    if done:
        _job_event(session, claim, "job.succeeded", {"attempt": claim.attempt})
    return done


def _update_owned(session: Session, claim: Claim, **values: Any) -> bool:
    """Write `values` (and `updated_at`) to the claimed job; False when we no longer own it."""
    done = session.execute(
        update(Job).where(*_owned(claim)).values(**values, updated_at=db_now()).returning(Job.id),
        execution_options=_NO_SYNC,
    ).first()
    return done is not None


def _job_event(session: Session, claim: Claim, action: str, details: dict[str, Any]) -> None:
    """Record `action` on the claimed job in the event log, by the claim's actor."""
    record_event(
        session,
        actor=claim.actor,
        action=action,
        target_type="job",
        target_id=claim.job_id,
        details=details,
    )


def fail(
    session: Session, claim: Claim, error: str, *, retry: bool, backoff_s: float = 0.0
) -> str | None:
    """Record a failed attempt: re-queue after ``backoff_s`` while attempts remain and ``retry``,
    else fail for good. Returns the new status, or None when we no longer own the job."""
    again = retry and claim.attempt < claim.max_attempts
    error = storable_text(error, 4000) or ""  # an exception may quote a NUL byte
    values: dict[str, Any] = {"error": error}
    if again:
        values.update(
            status="queued",
            worker_id=None,
            not_before=db_now(backoff_s),
            message=f"attempt {claim.attempt} failed; retry in {backoff_s:.0f} s",
        )
    else:
        values.update(status="failed", finished_at=db_now(), message="failed")
    if not _update_owned(session, claim, **values):
        return None
    status = "queued" if again else "failed"
    sync_request(session, claim.request_id, status)
    details = {"attempt": claim.attempt, "error": error[-1000:], "backoff_s": backoff_s}
    _job_event(session, claim, "job.retry_scheduled" if again else "job.failed", details)
    return status


def mark_cancelled(session: Session, claim: Claim, reason: str = "cancel requested") -> bool:
    """The handler stopped on a cancel request: record the job (and its request) cancelled."""
    message = storable_text(reason, 1000)
    if not _update_owned(session, claim, status="cancelled", message=message, finished_at=db_now()):
        return False
    sync_request(session, claim.request_id, "cancelled")
    _job_event(session, claim, "job.cancelled", {"attempt": claim.attempt, "reason": reason})
    return True


def request_cancel(session: Session, job_id: int, *, actor: str = "system") -> str | None:
    """Ask for a job to stop. A queued job is cancelled at once; a running one gets a flag its
    handler sees at the next ``check_cancel()``. Returns the job's status afterwards (None: no
    such job); finished jobs are left alone."""
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued")
        .values(
            status="cancelled",
            message="cancelled before start",
            finished_at=db_now(),
            updated_at=db_now(),
        )
        .returning(Job.request_id),
        execution_options=_NO_SYNC,
    ).first()
    if row is not None:
        sync_request(session, row.request_id, "cancelled")
        record_event(
            session,
            actor=actor,
            action="job.cancelled",
            target_type="job",
            target_id=job_id,
            details={"while": "queued"},
        )
        return "cancelled"
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running")
        .values(cancel_requested=True, message="cancel requested", updated_at=db_now())
        .returning(Job.id),
        execution_options=_NO_SYNC,
    ).first()
    if row is not None:
        record_event(
            session, actor=actor, action="job.cancel_requested", target_type="job", target_id=job_id
        )
        return "running"
    return session.scalar(select(Job.status).where(Job.id == job_id))


def jittered(delay_s: float) -> float:
    """Spread retries of many jobs that failed together (up to +10 %)."""
    return delay_s * (1.0 + 0.1 * random.random())
