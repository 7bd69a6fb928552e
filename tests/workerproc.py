"""Start real worker processes (``python -m jobs.worker``) for the queue and runner tests.

Workers get short timings (heartbeat 0.2 s, stale after 1.5 s, no retry back-off) so tests of
crashes and reaping take seconds, and import :mod:`tests.jobkinds` for the test job kinds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FAST_TIMINGS = ["--heartbeat", "0.2", "--stale-after", "1.5", "--poll", "0.05", "--backoff", "0"]


def spawn_worker(
    url: str, *args: str, env: dict[str, str] | None = None, worker_id: str | None = None
) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "jobs.worker",
        "--database-url",
        url,
        "--import",
        "tests.jobkinds",
        "--gpu-mem-mb",
        "0",
        *FAST_TIMINGS,
        *args,
    ]
    if worker_id:
        command += ["--worker-id", worker_id]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full_env.pop("DATABASE_URL", None)
    return subprocess.Popen(
        command, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    """Wait for ``proc``; (returncode, stdout, stderr). Kills it on timeout."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err
