"""Atomic adapter directories: write into a hidden temp dir, then rename into place.

Layout under the adapters root::

    request-12-job-34/                 a published adapter (complete, referenced by a row)
    .tmp-request-12-job-34-a2-x1y2/    attempt 2 writing (or a crashed attempt's leftovers)

The temp dir lives in the same parent as the final one, so ``os.replace`` is a single rename on
one file system: readers see no adapter or a complete one, never half of one. Files and the
parent directory are fsynced around the rename so a power cut cannot leave a renamed directory
with empty files. Deleting also goes through a rename (final -> ``.tmp-...-discard``) first, so
an interrupted ``rmtree`` never leaves a half-deleted directory under the final name.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

TMP_PREFIX = ".tmp-"


def adapter_dir_name(request_id: int, job_id: int) -> str:
    return f"request-{request_id}-job-{job_id}"


def make_temp_dir(root: Path, name: str, attempt: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{name}-a{attempt}-", dir=root))


def discard(path: Path) -> None:
    """Remove a directory so that no partial copy stays under its name."""
    if not path.exists():
        return
    if not path.name.startswith(TMP_PREFIX):
        hidden = path.with_name(f"{TMP_PREFIX}{path.name}-discard-{secrets.token_hex(3)}")
        os.replace(path, hidden)
        path = hidden
    shutil.rmtree(path, ignore_errors=True)


def clean_leftovers(root: Path, name: str, *, final_is_orphan: bool) -> list[Path]:
    """Remove what earlier attempts of ``name`` left: temp dirs, and the final dir too when no
    stored Adapter row refers to it (renamed, but the database commit never happened)."""
    removed: list[Path] = []
    if not root.exists():
        return removed
    for leftover in root.glob(f"{TMP_PREFIX}{name}-*"):
        discard(leftover)
        removed.append(leftover)
    final = root / name
    if final_is_orphan and final.exists():
        discard(final)
        removed.append(final)
    return removed


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, final: Path) -> None:
    """Make ``tmp`` visible as ``final`` in one rename, durably."""
    for child in tmp.rglob("*"):
        if child.is_file():
            _fsync(child)
    _fsync(tmp)
    os.replace(tmp, final)
    _fsync(final.parent)
