"""What the app shows of server-side values: no absolute paths, no object reprs.

Pages, REST answers and the compliance record name files by their place in the repository
("assets/demo/adapters/forget10") or, outside it, by their last component; ids and hashes say
the rest. `scrub` rewrites any such text inside nested JSON-like values.
"""

from __future__ import annotations

import re
from pathlib import Path

from cagul.paths import REPO

# An absolute POSIX path inside text: "/" then at least one more component.
_ABS = re.compile(r"(?<![\w.:/])/(?:[\w.@+~-]+/)*[\w.@+~-]+")
_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def public_path(path: str | Path) -> str:
    """`path` relative to the repository when inside it, else its last component."""
    p = Path(path)
    if not p.is_absolute():
        return str(p)
    try:
        return str(p.resolve().relative_to(REPO.resolve()))
    except (ValueError, OSError):
        return p.name


def scrub_text(text: str) -> str:
    return _REPR.sub("<object>", _ABS.sub(lambda m: public_path(m.group(0)), text))


def scrub(value):
    """`value` (str, list, dict, …) with every absolute path and object repr replaced."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value
