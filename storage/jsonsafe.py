"""Make values storable as JSON on both databases.

PostgreSQL's JSON types reject NaN and Infinity, which metrics do produce (a truth ratio over
an empty set, say); SQLite would store them as non-standard JSON that other tools cannot read.
We store them as null, and turn tuples, paths and other objects into JSON-native values.
PostgreSQL's JSONB also refuses the NUL character in strings, which SQLite keeps: strings (and
keys) are made storable the same way on both (:func:`storage.limits.storable_text`).
"""

from __future__ import annotations

import math
from typing import Any

from storage.limits import storable_text


def json_safe(value: Any) -> Any:
    """A copy of ``value`` with non-finite floats as None, tuples/sets as lists, keys as str,
    and any other non-JSON object as its ``str()``."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {storable_text(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_safe(value.item())
    return storable_text(str(value))
