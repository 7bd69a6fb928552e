"""The job worker: claim a job, run its handler, record the outcome; repeat.

``python -m jobs.worker [--once] [--database-url URL]`` runs one worker against ``DATABASE_URL``
(default: the app's SQLite file). Run one per GPU; several hosts may share one PostgreSQL.
It migrates the schema on start, prints one JSON line per finished job to stdout and logs to
stderr. ``--once`` handles at most one job and exits (0 when it succeeded or none was ready);
``--until-empty`` exits when no job is ready. SIGTERM finishes the current job, then exits.

Outcome of a handler (see :mod:`jobs.errors`): return -> succeeded; JobCancelled -> cancelled;
PermanentJobError -> failed; other exceptions -> retried with exponential back-off until
max_attempts, then failed; JobLost -> nothing written (the job belongs to someone else now).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from jobs.config import WorkerConfig, backoff_delay
from jobs.context import JobContext
from jobs.errors import JobCancelled, JobLost, PermanentJobError, WorkerConfigError
from jobs.gpu import detect_gpu_mem_mb
from jobs.heartbeat import HeartbeatThread
from jobs.queue import Claim, claim_next, complete, fail, jittered, mark_cancelled
from jobs.registry import Handler, registered_kinds
from storage import Database, connect
from storage.limits import check_text

log = logging.getLogger("jobs.worker")


@dataclass(frozen=True)
class JobOutcome:
    job_id: int
    kind: str
    attempt: int
    status: str  # succeeded | failed | queued (retry later) | cancelled | lost
    error: str | None = None
    result: dict[str, Any] | None = None


# Audit actors are "worker:<id>" / "reaper:<id>" in a 128-character column.
MAX_WORKER_ID_CHARS = 100


def default_worker_id() -> str:
    # host + pid for humans; a random suffix because pids are reused after restarts. A long
    # FQDN is cut so the id fits the audit log's actor column.
    return f"{socket.gethostname()[:64]}-{os.getpid()}-{secrets.token_hex(2)}"


class Worker:
    """Runs jobs from ``db``. ``handlers`` defaults to every registered kind (a snapshot taken
    now); tests pass their own mapping to run a kind with a fake implementation."""

    def __init__(
        self,
        db: Database,
        config: WorkerConfig | None = None,
        *,
        worker_id: str | None = None,
        gpu_mem_mb: int | None = None,
        handlers: Mapping[str, Handler] | None = None,
    ):
        self.db = db
        self.config = config or WorkerConfig.from_env()
        # Refused at start, not at the first audit event: an id the audit log cannot store.
        self.worker_id = check_text(
            worker_id or default_worker_id(),
            "worker id",
            MAX_WORKER_ID_CHARS,
            error=WorkerConfigError,
        )
        self.gpu_mem_mb = detect_gpu_mem_mb() if gpu_mem_mb is None else gpu_mem_mb
        if handlers is None:
            handlers = {name: kind.handler for name, kind in registered_kinds().items()}
        self.handlers = dict(handlers)
        self._heartbeat: HeartbeatThread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> HeartbeatThread:
        if self._heartbeat is None:
            heartbeat = HeartbeatThread(self.db, self.config, self.worker_id)
            # Recover jobs of dead workers before the first claim, so that a worker started
            # to replace a crashed one (``--once`` included) picks up the crashed job.
            try:
                heartbeat.reap()
            except Exception:  # the thread retries; a worker must still start
                log.exception("initial reap failed")
            heartbeat.start()
            self._heartbeat = heartbeat
        return self._heartbeat

    def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat.join(timeout=10)
            self._heartbeat = None

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one job ---------------------------------------------------------------------------
    def claim(self) -> Claim | None:
        with self.db.transaction() as session:
            return claim_next(
                session,
                worker_id=self.worker_id,
                kinds=self.handlers.keys(),
                gpu_mem_mb=self.gpu_mem_mb,
            )

    def run_one(self) -> JobOutcome | None:
        """Claim and run one job; None when no job is ready for this worker."""
        heartbeat = self.start()
        claim = self.claim()
        if claim is None:
            return None
        log.info("job %s (%s) attempt %s: start", claim.job_id, claim.kind, claim.attempt)
        ctx = JobContext(self.db, claim, progress_every_s=self.config.progress_every_s)
        handler = self.handlers[claim.kind]
        heartbeat.attach(ctx)
        try:
            result = handler(ctx)
        except BaseException as exc:
            # Stop heartbeating before recording the outcome: a heartbeat racing with the
            # final write would see a finished job and report the claim as lost.
            heartbeat.attach(None)
            return self._record_failure(claim, exc)
        heartbeat.attach(None)
        with self.db.transaction() as session:
            owned = complete(session, claim, result)
        status = "succeeded" if owned else "lost"
        log.info("job %s attempt %s: %s", claim.job_id, claim.attempt, status)
        return JobOutcome(claim.job_id, claim.kind, claim.attempt, status, result=result)

    def _record_failure(self, claim: Claim, exc: BaseException) -> JobOutcome:
        if isinstance(exc, JobLost):
            log.warning("job %s: %s", claim.job_id, exc)
            return JobOutcome(claim.job_id, claim.kind, claim.attempt, "lost", str(exc))
        if isinstance(exc, JobCancelled):
            with self.db.transaction() as session:
                owned = mark_cancelled(session, claim, str(exc))
            status = "cancelled" if owned else "lost"
            return JobOutcome(claim.job_id, claim.kind, claim.attempt, status, str(exc))
        if not isinstance(exc, Exception):
            # Ctrl-C / SystemExit inside a handler: hand the job back now rather than
            # leaving it to the reaper, then let the interruption proceed.
            with self.db.transaction() as session:
                fail(session, claim, "worker interrupted", retry=True, backoff_s=0.0)
            raise exc
        error = "".join(traceback.format_exception(exc))
        retry = not isinstance(exc, PermanentJobError)
        delay = jittered(backoff_delay(self.config, claim.attempt))
        with self.db.transaction() as session:
            status = fail(session, claim, error, retry=retry, backoff_s=delay)
        log.error("job %s attempt %s failed (%s): %s", claim.job_id, claim.attempt, status, exc)
        return JobOutcome(
            claim.job_id,
            claim.kind,
            claim.attempt,
            status or "lost",
            f"{type(exc).__name__}: {exc}",
        )

    # -- the loop --------------------------------------------------------------------------
    def run(
        self,
        *,
        once: bool = False,
        until_empty: bool = False,
        max_jobs: int | None = None,
        stop: threading.Event | None = None,
        on_outcome: Any = None,
    ) -> list[JobOutcome]:
        """Process jobs until ``stop`` is set (or: one job with ``once``; until none is ready
        with ``until_empty``; ``max_jobs`` jobs). Returns the outcomes."""
        stop = stop or threading.Event()
        outcomes: list[JobOutcome] = []
        self.start()
        try:
            while not stop.is_set():
                try:
                    outcome = self.run_one()
                except Exception:  # database trouble: wait and try again
                    log.exception("worker loop error; retrying in %.1f s", self.config.poll_s)
                    stop.wait(self.config.poll_s)
                    continue
                if outcome is None:
                    if once or until_empty:
                        break
                    stop.wait(self.config.poll_s)
                    continue
                outcomes.append(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
                if once or (max_jobs is not None and len(outcomes) >= max_jobs):
                    break
        finally:
            self.close()
        return outcomes


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m jobs.worker", description=__doc__.split("\n")[0])
    p.add_argument("--once", action="store_true", help="handle at most one job, then exit")
    p.add_argument("--until-empty", action="store_true", help="exit when no job is ready")
    p.add_argument("--max-jobs", type=int, help="exit after this many jobs")
    p.add_argument("--database-url", help="default: DATABASE_URL, else the app's SQLite file")
    p.add_argument("--worker-id", help="default: host-pid-random")
    p.add_argument("--gpu-mem-mb", type=int, help="GPU memory to offer (default: detected)")
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (it registers more job kinds); repeatable",
    )
    p.add_argument("--heartbeat", type=float, help="seconds between heartbeats")
    p.add_argument("--stale-after", type=float, help="seconds without heartbeat = dead worker")
    p.add_argument("--poll", type=float, help="seconds to wait when no job is ready")
    p.add_argument("--backoff", type=float, help="first retry delay in seconds")
    p.add_argument("--no-upgrade", action="store_true", help="do not migrate the schema")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    import jobs.runner  # noqa: F401 - registers the built-in "unlearn" kind

    for module in args.imports:
        importlib.import_module(module)
    config = WorkerConfig.from_env(
        heartbeat_s=args.heartbeat,
        stale_after_s=args.stale_after,
        poll_s=args.poll,
        backoff_s=args.backoff,
    )
    db = connect(args.database_url, upgrade=not args.no_upgrade)
    worker = Worker(db, config, worker_id=args.worker_id, gpu_mem_mb=args.gpu_mem_mb)
    stop = threading.Event()

    # SIGTERM: finish the current job, then exit (a second SIGTERM uses the default action).
    def _on_term(signum: int, _frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, _on_term)
    log.info(
        "worker %s: gpu %s MiB, kinds %s, db %s",
        worker.worker_id,
        worker.gpu_mem_mb,
        sorted(worker.handlers),
        db.engine.url.render_as_string(hide_password=True),
    )

    def _print(outcome: JobOutcome) -> None:
        print(
            json.dumps({"worker_id": worker.worker_id, **asdict(outcome)}, default=str), flush=True
        )

    try:
        outcomes = worker.run(
            once=args.once,
            until_empty=args.until_empty,
            max_jobs=args.max_jobs,
            stop=stop,
            on_outcome=_print,
        )
    finally:
        db.dispose()
    return 0 if all(o.status == "succeeded" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
