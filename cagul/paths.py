"""Where the shipped demo bundle lives, so every tool works with no arguments."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = Path(os.environ.get("CAGUL_DEMO_DIR", REPO / "assets" / "demo"))


def default_model_dir() -> Path:
    """The demo bundle's base (Finetune) model; a clear error if the bundle is not built."""
    path = DEMO_DIR / "models" / "finetune"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"no model given and no demo bundle at {path}; pass --model DIR or build it with "
            "`python -m cagul demo-bundle`"
        )
    return path


def default_data_dir() -> Path:
    """The demo bundle's FIUBench-format dataset."""
    path = DEMO_DIR / "data"
    if not (path / "full.json").is_file():
        raise FileNotFoundError(
            f"no data given and no demo bundle at {path}; pass --data DIR or build it with "
            "`python -m cagul demo-bundle`"
        )
    return path
