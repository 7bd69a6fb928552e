"""The reaper: give the jobs of dead workers back to the queue.

A worker that crashes, is killed (SIGKILL, OOM) or loses its host stops heartbeating. Once a
running job's heartbeat is older than the stale timeout, the reaper (run by every worker's
heartbeat thread) re-queues it, or fails it with the reason when no attempts remain, or
cancels it when a cancel had been asked. The row's attempt number fences the old worker out
(see :mod:`jobs.queue`), so if it was merely slow, its later writes are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from jobs.queue import sync_request
from storage import Job, db_now, record_event

_NO_SYNC = {"synchronize_session": False}


@dataclass(frozen=True)
class Reaped:
    job_id: int
    status: str  # "queued" (will run again), "failed" or "cancelled"
    worker_id: str | None


def _stale(stale_after_s: float, running_here: int | None = None):
    conditions = [
        Job.status == "running",
        or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < db_now(-stale_after_s)),
    ]
    if running_here is not None:
        # A worker reaping from its own heartbeat thread is alive: its job can only look stale
        # because that thread was starved (an overloaded host), never because it died.
        conditions.append(Job.id != running_here)
    return tuple(conditions)


def any_stale(session: Session, *, stale_after_s: float, running_here: int | None = None) -> bool:
    """Whether some running job has missed its heartbeats (a read; no lock taken). The job
    ``running_here`` (the caller's own) never counts."""
    return (
        session.execute(select(Job.id).where(*_stale(stale_after_s, running_here)).limit(1)).first()
        is not None
    )


def reap_stale(
    session: Session,
    *,
    stale_after_s: float,
    backoff_s: float = 0.0,
    actor: str = "reaper",
    limit: int = 100,
    running_here: int | None = None,
) -> list[Reaped]:
    """Return running jobs whose heartbeat is older than ``stale_after_s`` to the queue (their
    worker died), or fail them when no attempts remain, or cancel them when cancel was asked.
    ``running_here`` is the id of the job the caller itself is running: it is never reaped."""
    stale = session.execute(
        select(
            Job.id,
            Job.worker_id,
            Job.attempts,
            Job.max_attempts,
            Job.heartbeat_at,
            Job.cancel_requested,
            Job.request_id,
        )
        .where(*_stale(stale_after_s, running_here))
        .order_by(Job.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    reaped: list[Reaped] = []
    for job in stale:
        reason = (
            f"worker {job.worker_id} stopped heartbeating (last at {job.heartbeat_at}, "
            f"attempt {job.attempts} of {job.max_attempts})"
        )
        values: dict[str, Any] = {"worker_id": None, "error": reason, "updated_at": db_now()}
        if job.cancel_requested:
            status = "cancelled"
            values.update(status=status, finished_at=db_now(), message="cancelled (worker died)")
        elif job.attempts >= job.max_attempts:
            status = "failed"
            values.update(
                status=status,
                finished_at=db_now(),
                message="failed: worker died, attempts exhausted",
            )
        else:
            status = "queued"
            values.update(
                status=status, not_before=db_now(backoff_s), message="re-queued: worker died"
            )
        done = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == "running", Job.attempts == job.attempts)
            .values(**values)
            .returning(Job.id),
            execution_options=_NO_SYNC,
        ).first()
        if done is None:
            continue
        sync_request(session, job.request_id, status)
        record_event(
            session,
            actor=actor,
            action={"queued": "job.requeued", "failed": "job.failed", "cancelled": "job.cancelled"}[
                status
            ],
            target_type="job",
            target_id=job.id,
            details={"reason": reason, "attempt": job.attempts, "worker_id": job.worker_id},
        )
        reaped.append(Reaped(job.id, status, job.worker_id))
    return reaped
