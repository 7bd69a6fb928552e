"""The job-kind registry: which function runs a job of kind "unlearn", "test.noop", ...

Handlers take a :class:`jobs.context.JobContext` and return a JSON-serialisable dict (stored as
the job's result) or None. Kinds carry defaults for new jobs (max attempts, GPU memory)::

    @register("thumbnail", max_attempts=5)
    def make_thumbnail(ctx): ...

A worker claims only jobs of kinds it has handlers for, so a worker started without a module
never takes (and fails) that module's jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobs.errors import DuplicateJobKindError, UnknownJobKindError

# A handler takes the job's `jobs.context.JobContext`; it is not imported here, since the
# context imports the queue, which reads this registry.
Handler = Callable[[Any], dict[str, Any] | None]


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Handler
    max_attempts: int = 3
    min_gpu_mem_mb: int = 0


_KINDS: dict[str, JobKind] = {}


def add_kind(
    name: str,
    handler: Handler,
    *,
    max_attempts: int = 3,
    min_gpu_mem_mb: int = 0,
    replace: bool = False,
) -> JobKind:
    """Register ``handler`` for ``name``. Registering the same function again is a no-op;
    a different one needs ``replace=True`` (tests swap the trainer this way)."""
    existing = _KINDS.get(name)
    if existing is not None and existing.handler is not handler and not replace:
        raise DuplicateJobKindError(f"job kind {name!r} is already registered")
    kind = JobKind(name, handler, max_attempts=max_attempts, min_gpu_mem_mb=min_gpu_mem_mb)
    _KINDS[name] = kind
    return kind


def register(
    name: str, *, max_attempts: int = 3, min_gpu_mem_mb: int = 0, replace: bool = False
) -> Callable[[Handler], Handler]:
    """Decorator form of :func:`add_kind`."""

    def decorate(handler: Handler) -> Handler:
        add_kind(
            name,
            handler,
            max_attempts=max_attempts,
            min_gpu_mem_mb=min_gpu_mem_mb,
            replace=replace,
        )
        return handler

    return decorate


def get_kind(name: str) -> JobKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownJobKindError(f"no handler registered for job kind {name!r}") from None


def find_kind(name: str) -> JobKind | None:
    return _KINDS.get(name)


def registered_kinds() -> dict[str, JobKind]:
    """A snapshot of the registry."""
    return dict(_KINDS)


def unregister(name: str) -> None:
    _KINDS.pop(name, None)
