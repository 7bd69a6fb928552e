"""Projected gradient descent on a photo under an L-inf budget, in [0, 255]/255 pixel space.

`pgd(x0, objective, budget)` minimises a differentiable `objective(x)` of an image tensor `x`
([3, H, W], values in [0, 1], see `cagul.attacks.pixels`) over the ball
``|x - x0|_inf <= eps`` intersected with [0, 1]: a seeded uniform random start, then a fixed
number of signed-gradient steps of `step_size` (default 2.5 * eps / steps, Madry et al.),
each projected back. The iterate with the lowest objective (the clean image included, so the
attack never returns something worse than no attack) is rounded to valid pixel values
(`quantise`): the returned image is an 8-bit photo whose every value lies within
floor(eps * 255) levels of the original's, so the budget holds exactly after rounding.

Budgets are parsed from text (`parse_eps`): "4/255" or "0.0157". A bare "4" is refused (above
`MAX_EPS`: it would mean the whole range, not 4 levels), as is anything not positive, below one
8-bit level or repeated: `EpsError` (a ValueError, so the CLI exits 2) with a clear message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

MAX_EPS = 64 / 255  # beyond this the "photo" is another picture; no audit question survives it


class EpsError(ValueError):
    """An attack budget that cannot be used (not a number, <= 0, below one pixel level, too big)."""


@dataclass(frozen=True)
class Budget:
    """An L-inf budget: `label` as the user wrote it ("4/255") and its `value` in [0, 1]."""

    label: str
    value: float

    @property
    def levels(self) -> int:
        """How many 8-bit levels a pixel may move (floor(eps * 255))."""
        return math.floor(self.value * 255 + 1e-9)


def parse_eps(text: str) -> list[Budget]:
    """Comma-separated budgets ("4/255,8/255"), each a fraction n/255 or a number in (0, 1]."""
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or any(not p for p in parts):
        raise EpsError(f"--eps {text!r}: give budgets like 4/255 or 4/255,8/255")
    out = []
    for p in parts:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)", p)
        try:
            value = float(m[1]) / float(m[2]) if m else float(p)
        except (ValueError, ZeroDivisionError):
            raise EpsError(f"--eps {p!r} is not a budget (write it as n/255, e.g. 4/255)") from None
        if not math.isfinite(value) or value <= 0:
            raise EpsError(f"--eps {p!r} must be positive")
        if value > MAX_EPS:
            raise EpsError(f"--eps {p!r} = {value:.4f} exceeds {MAX_EPS * 255:.0f}/255")
        budget = Budget(p.replace(" ", ""), value)
        if budget.levels < 1:
            raise EpsError(f"--eps {p!r} is below one pixel level (1/255): it changes nothing")
        out.append(budget)
    if len({b.levels for b in out}) != len(out):
        raise EpsError(f"--eps {text!r} names the same budget twice")
    return out


@dataclass
class PGDResult:
    """The attack's outcome per image: the rounded images and the objective along the way."""

    x: torch.Tensor  # [N, 3, H, W], values k/255, each within the budget of its x0
    initial: list[float]  # objective of each clean image
    best: list[float]  # lowest objective met (before rounding)
    final: list[float]  # objective of each rounded image
    history: list[list[float]] = field(default_factory=list)  # per step, per image


def quantise(x0: torch.Tensor, x: torch.Tensor, budget: Budget) -> torch.Tensor:
    """`x` rounded to 8-bit values, each within `budget.levels` of `x0`'s and in [0, 255]."""
    base = torch.round(x0.detach() * 255)
    step = torch.round((x.detach() - x0.detach()) * 255).clamp(-budget.levels, budget.levels)
    return (base + step).clamp(0, 255) / 255


def pgd(
    x0: torch.Tensor,
    objective: Callable[[torch.Tensor], torch.Tensor],
    budget: Budget,
    *,
    steps: int = 10,
    step_size: float | None = None,
    seed: int = 0,
    random_start: bool = True,
    progress: Callable[[int], None] | None = None,
) -> PGDResult:
    """Minimise `objective` over the budget's ball around each image of `x0` (module
    docstring). `x0` is `[N, 3, H, W]`; `objective(x)` returns one value per image `[N]`
    (images are attacked independently: one batched pass serves all of them)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    eps = budget.value
    alpha = 2.5 * eps / steps if step_size is None else step_size
    x0 = x0.detach()
    lo, hi = (x0 - eps).clamp(min=0), (x0 + eps).clamp(max=1)
    with torch.no_grad():
        initial = objective(x0).detach()
    best, best_x = initial.clone(), x0.clone()
    x = x0.clone()
    if random_start:
        gen = torch.Generator().manual_seed(seed)
        noise = (torch.rand(x0.shape, generator=gen) * 2 - 1) * eps
        x = torch.max(torch.min(x0 + noise, hi), lo)
    history = []

    def keep(values: torch.Tensor, candidate: torch.Tensor) -> None:
        better = values < best
        best[better] = values[better]
        best_x[better] = candidate[better]

    for _ in range(steps):
        x.requires_grad_(True)
        values = objective(x)
        (grad,) = torch.autograd.grad(values.sum(), x)
        values = values.detach()
        history.append(values.tolist())
        keep(values, x.detach())
        x = torch.max(torch.min(x.detach() - alpha * grad.sign(), hi), lo)
        if progress:
            progress(len(x0))
    with torch.no_grad():
        keep(objective(x).detach(), x)
        rounded = quantise(x0, best_x, budget)
        final = objective(rounded).detach()
    return PGDResult(rounded, initial.tolist(), best.tolist(), final.tolist(), history)
