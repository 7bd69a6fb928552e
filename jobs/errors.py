"""Typed errors of the job queue and its handlers.

A handler signals how a failure should be treated by the exception it raises:
- :class:`JobCancelled` (from ``JobContext.check_cancel()``): someone asked to cancel; the job
  becomes ``cancelled``;
- :class:`PermanentJobError`: retrying cannot help (bad payload, missing request); ``failed`` now;
- any other exception: retried with back-off until ``max_attempts``, then ``failed``.
:class:`JobLost` means this worker no longer owns the job (it was reaped and maybe re-run
elsewhere); the worker stops and writes nothing more about it.
"""

from __future__ import annotations


class JobError(Exception):
    """Base class of every job-queue problem."""


class JobCancelled(JobError):
    """Cancellation was requested; raised between training steps by ``check_cancel()``."""


class JobLost(JobError):
    """This worker's claim on the job is gone (reaped after missed heartbeats)."""


class PermanentJobError(JobError):
    """The job cannot succeed by retrying; fail it now."""


class UnknownJobKindError(JobError, KeyError):
    """No handler is registered for this job kind."""


class DuplicateJobKindError(JobError):
    """A different handler is already registered under this kind."""


class WorkerConfigError(JobError, ValueError):
    """Worker timing settings that cannot work (e.g. stale timeout below two heartbeats)."""
