"""Which model and data directories a job payload may name: only those inside an input root.

A payload's ``model_dir`` / ``data_dir`` comes from whoever queued the job (the app, a script,
anyone with database access), so it is untrusted: it must be a non-empty string, and resolved
(relative to the first root; ``..`` and symlinks followed) it must lie inside an **input
root** and be a directory. The input roots are, in order: ``UnlearnSettings.input_root``,
``CAGUL_INPUT_ROOT`` (several roots separated by ``os.pathsep``, e.g. ``/models:/data``),
else the repository root (which holds the shipped demo bundle). An operator serving models
from outside the repository (``python app.py --model /models/...``) sets ``CAGUL_INPUT_ROOT``
for the app and the workers. Directories the operator configured for a worker
(``UnlearnSettings.model_dir``, ``CAGUL_MODEL_DIR``, ...) are trusted and not checked here;
the trainer's own errors about them are permanent.

A payload path that breaks these rules cannot become valid by retrying, so it is a
:class:`PayloadPathError`, a :class:`jobs.errors.PermanentJobError`; at submission
(:func:`jobs.submit.submit_forget_request`) the same check refuses the request instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from jobs.errors import PermanentJobError
from storage.config import REPO_ROOT

INPUT_ROOT_ENV = "CAGUL_INPUT_ROOT"
PAYLOAD_PATH_KEYS = ("model_dir", "data_dir")


class PayloadPathError(PermanentJobError, ValueError):
    """A payload's model or data directory is not a string, lies outside every input root, or
    is not a directory."""


def input_roots(configured: str | Path | None = None) -> tuple[Path, ...]:
    """The folders payload paths must stay inside (see the module docstring)."""
    if configured:
        chosen = [str(configured)]
    elif os.environ.get(INPUT_ROOT_ENV, "").strip():
        chosen = [r for r in os.environ[INPUT_ROOT_ENV].split(os.pathsep) if r.strip()]
    else:
        chosen = [str(REPO_ROOT)]
    return tuple(Path(r).expanduser().resolve() for r in chosen)


def checked_payload_path(value: object, key: str, roots: Path | Sequence[Path]) -> str:
    """``value`` resolved inside one of ``roots``, as a string, or :class:`PayloadPathError`."""
    roots = (roots,) if isinstance(roots, Path) else tuple(roots)
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise PayloadPathError(f"payload {key} must be a non-empty path string, got {value!r:.80}")
    candidate = Path(value).expanduser()
    resolved = (candidate if candidate.is_absolute() else roots[0] / candidate).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        shown = ", ".join(str(r) for r in roots)
        raise PayloadPathError(
            f"payload {key} {value!r} lies outside the input root ({shown}); set "
            f"{INPUT_ROOT_ENV} to allow it"
        )
    if not resolved.is_dir():
        raise PayloadPathError(f"payload {key} {value!r} is not a directory")
    return str(resolved)
