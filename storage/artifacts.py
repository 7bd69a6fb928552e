"""Adapter files on disk: hashing and the integrity check that must pass before loading.

An adapter directory holds ``adapter_config.json`` and ``adapter_model.safetensors``; the Adapter
row stores the sha256 and size of the safetensors file and the fingerprint of the base model it
was trained on. A mismatch means the file was changed, truncated or belongs to another base
model, and loading is refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from storage.errors import AdapterIntegrityError
from storage.models import Adapter

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_adapter(adapter: Adapter, *, base_fingerprint: str | None = None) -> Path:
    """The adapter's directory, after checking its files, size, sha256 and (when given) that it
    was trained on the base model with ``base_fingerprint``. Raises AdapterIntegrityError."""
    directory = Path(adapter.path)
    weights = directory / ADAPTER_WEIGHTS
    for required in (directory / ADAPTER_CONFIG, weights):
        if not required.is_file():
            raise AdapterIntegrityError(f"adapter {adapter.id}: {required} is missing")
    size = weights.stat().st_size
    if size != adapter.size_bytes:
        raise AdapterIntegrityError(
            f"adapter {adapter.id}: {weights} has {size} bytes, {adapter.size_bytes} recorded"
        )
    digest = sha256_file(weights)
    if digest != adapter.sha256:
        raise AdapterIntegrityError(f"adapter {adapter.id}: sha256 {digest} != {adapter.sha256}")
    if base_fingerprint is not None and base_fingerprint != adapter.base_fingerprint:
        raise AdapterIntegrityError(
            f"adapter {adapter.id} was trained on base {adapter.base_fingerprint}, "
            f"not {base_fingerprint}"
        )
    return directory
