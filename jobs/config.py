"""Worker timing settings, with defaults from the environment.

| setting          | env                     | default | meaning                                   |
|------------------|-------------------------|---------|-------------------------------------------|
| heartbeat_s      | CAGUL_HEARTBEAT_S       | 5       | how often a running job's row is touched  |
| stale_after_s    | CAGUL_STALE_AFTER_S     | 60      | no heartbeat this long: the worker died   |
| reap_every_s     | CAGUL_REAP_EVERY_S      | stale/4 | how often each worker looks for dead jobs |
| poll_s           | CAGUL_POLL_S            | 1       | idle wait between empty claims            |
| backoff_s        | CAGUL_RETRY_BACKOFF_S   | 30      | first retry delay, doubled per attempt    |
| backoff_max_s    | CAGUL_RETRY_BACKOFF_MAX_S | 900   | longest retry delay                       |
| progress_every_s | CAGUL_PROGRESS_EVERY_S  | 0.5     | least time between two progress writes    |

The stale timeout must exceed a few heartbeats so that one slow database round trip does not
get a healthy job reaped; we require at least two.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

from jobs.errors import WorkerConfigError

_ENV = {
    "heartbeat_s": "CAGUL_HEARTBEAT_S",
    "stale_after_s": "CAGUL_STALE_AFTER_S",
    "reap_every_s": "CAGUL_REAP_EVERY_S",
    "poll_s": "CAGUL_POLL_S",
    "backoff_s": "CAGUL_RETRY_BACKOFF_S",
    "backoff_max_s": "CAGUL_RETRY_BACKOFF_MAX_S",
    "progress_every_s": "CAGUL_PROGRESS_EVERY_S",
}


@dataclass(frozen=True)
class WorkerConfig:
    heartbeat_s: float = 5.0
    stale_after_s: float = 60.0
    reap_every_s: float | None = None  # None: stale_after_s / 4
    poll_s: float = 1.0
    backoff_s: float = 30.0
    backoff_max_s: float = 900.0
    progress_every_s: float = 0.5

    def __post_init__(self) -> None:
        if self.heartbeat_s <= 0 or self.poll_s <= 0:
            raise WorkerConfigError("heartbeat_s and poll_s must be positive")
        if self.stale_after_s < 2 * self.heartbeat_s:
            raise WorkerConfigError(
                f"stale_after_s ({self.stale_after_s}) must be at least twice "
                f"heartbeat_s ({self.heartbeat_s})"
            )
        if self.backoff_s < 0 or self.backoff_max_s < 0:
            raise WorkerConfigError("back-off delays cannot be negative")

    @property
    def reap_interval_s(self) -> float:
        return self.reap_every_s if self.reap_every_s is not None else self.stale_after_s / 4

    @classmethod
    def from_env(cls, **overrides: float | None) -> WorkerConfig:
        """Defaults, then the environment, then non-None ``overrides`` (CLI flags)."""
        values: dict[str, float] = {}
        for field in fields(cls):
            raw = os.environ.get(_ENV[field.name])
            if raw:
                try:
                    values[field.name] = float(raw)
                except ValueError:
                    raise WorkerConfigError(f"{_ENV[field.name]}={raw!r} is not a number") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values) if values else cls()


def backoff_delay(config: WorkerConfig, attempt: int) -> float:
    """Delay before retry number ``attempt`` (1-based): exponential, capped."""
    return min(config.backoff_max_s, config.backoff_s * 2 ** max(0, attempt - 1))
