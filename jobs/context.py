"""What a job handler gets: its payload, and the means to report progress, notice cancellation
and write audit events.

Long handlers (training) call ``ctx.progress(fraction, message)`` as they go and
``ctx.check_cancel()`` between steps. ``check_cancel`` reads the job row each time (a cheap
primary-key read), so a cancel request is seen at the very next step, not at the next heartbeat;
it raises :class:`JobCancelled`, or :class:`JobLost` when the reaper has taken the job away.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from jobs.errors import JobCancelled, JobLost
from jobs.queue import Claim, Pulse, poll_claim, set_progress
from storage import Database, record_event


class JobContext:
    def __init__(self, db: Database, claim: Claim, *, progress_every_s: float = 0.5):
        self.db = db
        self.claim = claim
        self._progress_every_s = progress_every_s
        self._last_progress_write = 0.0
        # Set by the worker's heartbeat thread as well as by our own reads.
        self.cancel_seen = threading.Event()
        self.lost = threading.Event()

    @property
    def job_id(self) -> int:
        return self.claim.job_id

    @property
    def payload(self) -> dict[str, Any]:
        return self.claim.payload

    @property
    def attempt(self) -> int:
        return self.claim.attempt

    @property
    def actor(self) -> str:
        return self.claim.actor

    def _note(self, pulse: Pulse) -> None:
        if not pulse.owned:
            self.lost.set()
        if pulse.cancel_requested:
            self.cancel_seen.set()

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Record progress (0..1). Writes are throttled; reaching 1.0 always writes."""
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_progress_write < self._progress_every_s:
            return
        self._last_progress_write = now
        with self.db.transaction() as session:
            self._note(set_progress(session, self.claim, fraction, message))

    def should_cancel(self) -> bool:
        """True when the job should stop now (cancel asked, or the job is no longer ours)."""
        if not (self.cancel_seen.is_set() or self.lost.is_set()):
            with self.db.read() as session:
                self._note(poll_claim(session, self.claim))
        return self.cancel_seen.is_set() or self.lost.is_set()

    def check_cancel(self) -> None:
        """Raise JobLost / JobCancelled if the job must stop; call between steps."""
        if self.should_cancel():
            if self.lost.is_set():
                raise JobLost(f"job {self.job_id} attempt {self.attempt} was taken from us")
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def audit(
        self,
        action: str,
        *,
        target_type: str = "job",
        target_id: object = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Write one audit event now, in its own transaction (it must survive a later crash)."""
        with self.db.transaction() as session:
            record_event(
                session,
                actor=self.actor,
                action=action,
                target_type=target_type,
                target_id=self.job_id if target_id is None else target_id,
                details={"attempt": self.attempt, **(details or {})},
            )
