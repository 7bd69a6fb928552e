"""The durable job queue of cagul-studio and its worker (``python -m jobs.worker``).

Jobs live in the ``jobs`` table (see :mod:`storage.models`); :mod:`jobs.queue` claims them
atomically, :mod:`jobs.worker` runs them with heartbeats, retries and cooperative cancellation,
and :mod:`jobs.runner` is the "unlearn" kind that turns a forget request into an adapter.
Importing this package does not import torch or the CAGUL model code.
"""

from jobs.config import WorkerConfig
from jobs.context import JobContext
from jobs.errors import (
    JobCancelled,
    JobError,
    JobLost,
    PermanentJobError,
    UnknownJobKindError,
    WorkerConfigError,
)
from jobs.queue import Claim, claim_next, enqueue, request_cancel
from jobs.reaper import any_stale, reap_stale
from jobs.registry import add_kind, get_kind, register, registered_kinds
from jobs.runner import UnlearnSettings, make_unlearn_handler, request_verdict
from jobs.submit import cancel_forget_request, submit_forget_request
from jobs.verdict import MAX_FORGET_EM, MAX_IMAGE_LEAK, MAX_PARAPHRASE_LEAK, Verdict, verdict


def __getattr__(name: str) -> object:
    # jobs.worker is imported on demand: importing it here would make
    # `python -m jobs.worker` warn that the module was imported before it ran as __main__.
    if name in ("Worker", "JobOutcome"):
        from jobs import worker

        return getattr(worker, name)
    raise AttributeError(f"module 'jobs' has no attribute {name!r}")


__all__ = [
    "MAX_FORGET_EM",
    "MAX_IMAGE_LEAK",
    "MAX_PARAPHRASE_LEAK",
    "Claim",
    "JobCancelled",
    "JobContext",
    "JobError",
    "JobLost",
    "JobOutcome",
    "PermanentJobError",
    "UnknownJobKindError",
    "UnlearnSettings",
    "Worker",
    "WorkerConfig",
    "WorkerConfigError",
    "add_kind",
    "cancel_forget_request",
    "claim_next",
    "enqueue",
    "get_kind",
    "request_verdict",
    "verdict",
    "Verdict",
    "make_unlearn_handler",
    "any_stale",
    "reap_stale",
    "register",
    "registered_kinds",
    "request_cancel",
    "submit_forget_request",
]
