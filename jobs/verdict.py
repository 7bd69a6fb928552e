"""The one verdict of a forget request: every forget bound and every keep bound, with its value,
its threshold and whether it held.

`verified` only when every bound holds; otherwise `needs_review`, with the failing lines named
("non-private EM 0.094 < 0.95"). The queue (`jobs.runner`), the compliance record and the Reports
tab (`webui.reports`), the Audit tab (`webui.audit`) and the REST API all call :func:`verdict`,
so they cannot disagree. Plain Python (no torch): storage, jobs and the app import it freely.

Forget bounds (upper limits): forget-set keyword EM, the same EM on paraphrased questions
(FIUBench APE) and on perturbed copies of the photo. Keep bounds (lower limits): the forget
people's non-private answers, the retain set's answers and general visual accuracy (POPE- and
MME-style probes). A keep bound is relative to the base model when the report holds the base
model's value (`report["base"]`, e.g. `nonprivate_em`): the unlearned model must keep at least
`KEEP_RATIO` of it. Otherwise the fixed floor applies; the floors are set from the shipped demo
bundle's fine-tuned model (non-private and retain EM 1.000, POPE 0.944, MME 0.783) with room for
seed noise, so a model that refuses a person's ordinary answers (PO+GD: non-private EM 0.094)
fails while CAGUL and Retrain pass.

A metric that a bound needs and the report lacks is a failing line too ("retain EM missing from
the report"): nothing is verified on absent evidence. The perturbed-image leak is the one
optional bound (older reports and methods without a photo probe do not have it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

VERIFIED = "verified"
NEEDS_REVIEW = "needs_review"

# Forget bounds: the largest value that still counts as forgotten.
MAX_FORGET_EM = 0.05
MAX_PARAPHRASE_LEAK = 0.10
MAX_IMAGE_LEAK = 0.10
# Keep bounds: the share of the base model's value the unlearned model must keep, and the
# floors used when the report has no base value (see the module docstring).
KEEP_RATIO = 0.95
MIN_NONPRIVATE_EM = 0.95
MIN_RETAIN_EM = 0.90
MIN_POPE_ACC = 0.85
MIN_MME_ACC = 0.70


@dataclass(frozen=True)
class Bound:
    """One line of the verdict: where its value lies in a report and its limit."""

    key: str  # stable name, used in JSON
    label: str  # what people read
    group: Literal["forget", "keep"]
    path: tuple[str, ...]  # where the value lies in an evaluation report
    limit: float  # forget: at most; keep: at least (the floor without a base value)
    base_path: tuple[str, ...] | None = None  # keep: the base model's value, if reported
    required: bool = True


BOUNDS: tuple[Bound, ...] = (
    Bound("forget_em", "forget EM", "forget", ("forget", "em"), MAX_FORGET_EM),
    Bound("paraphrase_leak", "paraphrase leak", "forget", ("forget", "ape"), MAX_PARAPHRASE_LEAK),
    Bound(
        "image_leak",
        "perturbed-image leak",
        "forget",
        ("leak", "perturbed_image"),
        MAX_IMAGE_LEAK,
        required=False,
    ),
    Bound(
        "nonprivate_em",
        "non-private EM",
        "keep",
        ("nonprivate", "em"),
        MIN_NONPRIVATE_EM,
        ("base", "nonprivate_em"),
    ),
    Bound("retain_em", "retain EM", "keep", ("retain", "em"), MIN_RETAIN_EM, ("base", "retain_em")),
    Bound(
        "pope_acc",
        "general accuracy (POPE)",
        "keep",
        ("general", "pope_acc"),
        MIN_POPE_ACC,
        ("base", "pope_acc"),
    ),
    Bound(
        "mme_acc",
        "general accuracy (MME)",
        "keep",
        ("general", "mme_acc"),
        MIN_MME_ACC,
        ("base", "mme_acc"),
    ),
)


def number_at(report: Mapping[str, Any] | None, path: Sequence[str] | None) -> float | None:
    """The finite number at ``path`` in ``report``, else None (bools are not numbers)."""
    node: Any = report
    for key in path or ():
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    if path is None or isinstance(node, bool) or not isinstance(node, int | float):
        return None
    value = float(node)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Line:
    """One bound applied to one report."""

    key: str
    label: str
    group: str
    value: float | None
    threshold: float
    op: str  # "≤" (forget) or "≥" (keep)
    passed: bool | None  # None: an optional bound the report does not have
    basis: str  # "fixed" or "95% of base 1.000"
    source: str = "evaluation"  # which measurement gave the value (the audit adds its own)

    @property
    def text(self) -> str:
        """The line as people read it: "non-private EM 0.094 < 0.95"."""
        if self.value is None:
            return f"{self.label} {'missing from the report' if self.passed is False else 'not measured'}"
        ok = self.passed
        op = self.op if ok else (">" if self.op == "≤" else "<")
        extra = "" if self.basis == "fixed" else f" ({self.basis})"
        return f"{self.label} {self.value:.3f} {op} {self.threshold:.2f}{extra}"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "group": self.group,
            "value": self.value,
            "threshold": self.threshold,
            "op": self.op,
            "passed": self.passed,
            "basis": self.basis,
            "source": self.source,
            "text": self.text,
        }


@dataclass(frozen=True)
class Verdict:
    """`status` and every line; `failing` names the lines that did not hold."""

    status: str
    lines: tuple[Line, ...]

    @property
    def failing(self) -> list[str]:
        return [line.text for line in self.lines if line.passed is False]

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "failing": self.failing,
            "lines": [line.to_json() for line in self.lines],
        }


def _line(bound: Bound, report: Mapping[str, Any], sources: Mapping[str, str]) -> Line:
    value = number_at(report, bound.path)
    threshold, basis = bound.limit, "fixed"
    if bound.group == "keep":
        base = number_at(report, bound.base_path)
        if base is not None:
            threshold, basis = KEEP_RATIO * base, f"{KEEP_RATIO:.0%} of base {base:.3f}"
    if value is None:
        passed = False if bound.required else None
    else:
        # Rounded to the precision people read, so a line never says "0.950 < 0.95".
        v, t = round(value, 6), round(threshold, 6)
        passed = v <= t if bound.group == "forget" else v >= t
    return Line(
        bound.key,
        bound.label,
        bound.group,
        value,
        threshold,
        "≤" if bound.group == "forget" else "≥",
        passed,
        basis,
        sources.get(bound.key, "evaluation"),
    )


def verdict(
    report: Mapping[str, Any] | None,
    bounds: Sequence[Bound] = BOUNDS,
    *,
    sources: Mapping[str, str] | None = None,
) -> Verdict:
    """Apply every bound to an evaluation report (the §8 JSON); `sources` names, per bound
    key, the measurement a value came from when it is not the stored evaluation."""
    lines = tuple(_line(b, report or {}, sources or {}) for b in bounds)
    status = NEEDS_REVIEW if any(line.passed is False for line in lines) else VERIFIED
    return Verdict(status, lines)


def bounds_with(**limits: float) -> tuple[Bound, ...]:
    """BOUNDS with some limits replaced by key (``bounds_with(forget_em=0.1)``); an unknown key
    is a ValueError, so a typo cannot silently keep the default."""
    from dataclasses import replace

    unknown = set(limits) - {b.key for b in BOUNDS}
    if unknown:
        raise ValueError(f"no verdict bound named {', '.join(sorted(unknown))}")
    return tuple(replace(b, limit=limits.get(b.key, b.limit)) for b in BOUNDS)


def stored_verdict(report: Mapping[str, Any] | None) -> dict[str, Any]:
    """The verdict kept with a stored report (the lines as the runner judged them, under the
    bounds it ran with), else :func:`verdict` of the report (reports stored before verdicts
    were kept with them)."""
    kept = (report or {}).get("verdict")
    if isinstance(kept, Mapping) and isinstance(kept.get("lines"), list):
        return dict(kept)
    return verdict(report).to_json()
