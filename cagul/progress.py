"""The progress bar every long command shows on stderr (stdout carries the JSON result).

Training reports `(fraction, message)` through a callback (`cagul.methods.base.Progress`);
evaluation counts samples. `Bar` takes both: call it with a fraction and a message, or
`advance` it by a number of items when it was made with a `total`.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


class Bar:
    """A tqdm bar on stderr; without `total` it runs 0..1 by fraction."""

    def __init__(
        self, desc: str, total: int | None = None, enabled: bool = True, leave: bool = True
    ):
        self.by_fraction = total is None
        fmt = "{l_bar}{bar}| {postfix}" if self.by_fraction else None
        self.bar = tqdm(
            total=1000 if self.by_fraction else total,
            desc=desc,
            file=sys.stderr,
            disable=not enabled,
            leave=leave,
            bar_format=fmt,
        )

    def __call__(self, frac: float, msg: str = "") -> None:
        self.bar.n = int(1000 * min(1.0, max(0.0, frac)))
        self.bar.set_postfix_str(msg, refresh=True)

    def advance(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()
