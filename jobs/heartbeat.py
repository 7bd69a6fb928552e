"""The worker's background thread: heartbeat the running job, and reap dead workers' jobs.

Heartbeats run on their own thread because a training step can take longer than the stale
timeout's margin; the main thread must not need to remember to heartbeat. The same thread runs
the reaper, so even a worker busy with a long job keeps recovering jobs of workers that died.
A failing database call is logged and retried at the next tick: a short database outage must
not kill the thread (the job would then be reaped although its worker is alive). The reaper
never takes the job its own worker is running: on an overloaded host this thread can be starved
for longer than the stale timeout, and the job would be reaped by the very process running it.
"""

from __future__ import annotations

import logging
import threading
import time

from jobs.config import WorkerConfig, backoff_delay
from jobs.context import JobContext
from jobs.queue import heartbeat, jittered
from jobs.reaper import any_stale, reap_stale
from storage import Database

log = logging.getLogger(__name__)


class HeartbeatThread(threading.Thread):
    def __init__(self, db: Database, config: WorkerConfig, worker_id: str):
        super().__init__(name=f"heartbeat-{worker_id}", daemon=True)
        self.db = db
        self.config = config
        self.worker_id = worker_id
        self._ctx: JobContext | None = None
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def attach(self, ctx: JobContext | None) -> None:
        with self._lock:
            self._ctx = ctx

    def stop(self) -> None:
        self._halt.set()

    def beat(self) -> None:
        # The lock is held through the write so that once attach(None) returns, no heartbeat
        # of the finished job is in flight (it would find the job no longer "running" and
        # wrongly report the claim as lost).
        with self._lock:
            ctx = self._ctx
            if ctx is None:
                return
            with self.db.transaction() as session:
                ctx._note(heartbeat(session, ctx.claim))
            if ctx.lost.is_set():
                log.warning("job %s: lost our claim (reaped); the handler will stop", ctx.job_id)

    def reap(self) -> None:
        ctx = self._ctx
        running_here = ctx.claim.job_id if ctx is not None else None
        # Look first without a write lock: nearly always nothing is stale, and on SQLite a
        # write transaction per tick per worker would compete with claims for the one lock.
        with self.db.read() as session:
            if not any_stale(
                session, stale_after_s=self.config.stale_after_s, running_here=running_here
            ):
                return
        with self.db.transaction() as session:
            reaped = reap_stale(
                session,
                stale_after_s=self.config.stale_after_s,
                backoff_s=jittered(backoff_delay(self.config, 1)),
                actor=f"reaper:{self.worker_id}",
                running_here=running_here,
            )
        for job in reaped:
            log.warning(
                "reaped job %s of dead worker %s -> %s", job.job_id, job.worker_id, job.status
            )

    def run(self) -> None:
        tick = min(self.config.heartbeat_s, self.config.reap_interval_s)
        next_reap = time.monotonic() + self.config.reap_interval_s  # Worker.start reaped once
        while not self._halt.is_set():
            try:
                self.beat()
                if time.monotonic() >= next_reap:
                    next_reap = time.monotonic() + self.config.reap_interval_s
                    self.reap()
            except Exception:  # keep beating through transient database errors
                log.exception("heartbeat/reaper tick failed; retrying")
            self._halt.wait(tick)
