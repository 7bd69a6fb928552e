"""Which model and data directories a job payload may name: only those inside the input root.

A payload's ``model_dir`` / ``data_dir`` comes from whoever queued the job (the app, a script,
anyone with database access), so it is untrusted: it must be a non-empty string, and resolved
(relative to the root, ``..`` and symlinks followed) it must lie inside the **input root**
and exist. The input root is, in order: ``UnlearnSettings.input_root``, ``CAGUL_INPUT_ROOT``,
else the repository root (which holds the shipped demo bundle). An operator serving models
from ``/models`` and data from ``/data`` sets ``CAGUL_INPUT_ROOT=/`` or a common parent.
Directories the operator configured (``UnlearnSettings.model_dir``, ``CAGUL_MODEL_DIR``, ...)
are trusted and not checked here; the trainer's own errors about them are permanent.

A payload path that breaks these rules cannot become valid by retrying, so it is a
:class:`PayloadPathError`, a :class:`jobs.errors.PermanentJobError`; at submission
(:func:`jobs.submit.submit_forget_request`) the same check refuses the request instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from jobs.errors import PermanentJobError
from storage.config import REPO_ROOT

INPUT_ROOT_ENV = "CAGUL_INPUT_ROOT"
PAYLOAD_PATH_KEYS = ("model_dir", "data_dir")


class PayloadPathError(PermanentJobError, ValueError):
    """A payload's model or data directory is not a string, lies outside the input root, or
    does not exist."""


def input_root(configured: str | Path | None = None) -> Path:
    """The folder payload paths must stay inside (see the module docstring)."""
    chosen = configured or os.environ.get(INPUT_ROOT_ENV) or REPO_ROOT
    return Path(chosen).expanduser().resolve()


def checked_payload_path(value: object, key: str, root: Path) -> str:
    """``value`` resolved inside ``root``, as a string, or :class:`PayloadPathError`."""
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise PayloadPathError(f"payload {key} must be a non-empty path string, got {value!r:.80}")
    candidate = Path(value).expanduser()
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise PayloadPathError(f"payload {key} {value!r} lies outside the input root {root}")
    if not resolved.is_dir():
        raise PayloadPathError(f"payload {key} {value!r} is not a directory under {root}")
    return str(resolved)
