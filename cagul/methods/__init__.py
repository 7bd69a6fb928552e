"""Unlearning methods behind one interface (`cagul.methods.base.Method`), registered by name.

The registry (`registry.NAMES`) is torch-free; this package's `__init__` imports only it, so
`import cagul.methods` is cheap. `get_method(name)` imports the method's module on demand;
`load_unlearned(vlm, directory)` reads the method from an artifact's `adapter_config.json` and
loads it with that method (refusing a foreign base model or altered files).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from cagul.methods.registry import INFOS, NAMES, MethodInfo, UnknownMethodError, check_method

METHODS = NAMES

__all__ = [
    "ArtifactError",
    "INFOS",
    "METHODS",
    "NAMES",
    "MethodInfo",
    "UnknownMethodError",
    "artifact_method",
    "check_method",
    "get_method",
    "load_unlearned",
]


def get_method(name: str):
    """The `Method` object registered as `name` (its module is imported now)."""
    return importlib.import_module(INFOS[check_method(name)].module).METHOD


def __getattr__(name: str):
    if name == "ArtifactError":  # lives with the torch-side interface
        from cagul.artifacts import ArtifactError

        return ArtifactError
    raise AttributeError(name)


def artifact_method(directory: str | Path) -> str:
    """The method name an artifact directory's `adapter_config.json` records."""
    from cagul.artifacts import ArtifactError

    cfg = Path(directory) / "adapter_config.json"
    try:
        raw = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{directory} is not an artifact directory: {e}") from e
    name = raw.get("method") if isinstance(raw, dict) else None
    if not isinstance(name, str):
        raise ArtifactError(f"{cfg} records no method")
    return check_method(name)


def load_unlearned(vlm, directory: str | Path):
    """The unlearned model an artifact directory of any registered method holds, over `vlm`."""
    return get_method(artifact_method(directory)).load(vlm, directory)
