"""Metric reports: store a evaluation report and lift its headline numbers into columns.

The full report is kept as JSON (nothing is lost); the columns exist so the app can sort and
filter adapters by forget EM, paraphrase leak, retain ROUGE-L and so on without parsing JSON.
Missing or non-numeric values become NULL; NaN / infinity are stored as null in the JSON too
(:mod:`storage.jsonsafe`).
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy.orm import Session

from storage.jsonsafe import json_safe
from storage.models import MetricReport

# column -> path in the report
HEADLINE_PATHS: dict[str, tuple[str, ...]] = {
    "forget_em": ("forget", "em"),
    "forget_ape": ("forget", "ape"),
    "forget_rouge_l": ("forget", "rouge_l"),
    "forget_truth_ratio": ("forget", "truth_ratio"),
    "forget_quality": ("forget", "forget_quality"),
    "image_leak": ("leak", "perturbed_image"),
    "nonprivate_rouge_l": ("nonprivate", "rouge_l"),
    "nonprivate_em": ("nonprivate", "em"),
    "retain_rouge_l": ("retain", "rouge_l"),
    "retain_em": ("retain", "em"),
    "pope_acc": ("general", "pope_acc"),
    "mme_acc": ("general", "mme_acc"),
}


def report_value(report: dict[str, Any], path: tuple[str, ...]) -> float | None:
    """The finite number at ``path`` in ``report``, else None."""
    node: Any = report
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    value = float(node)
    return value if math.isfinite(value) else None


def headline_metrics(report: dict[str, Any]) -> dict[str, float | None]:
    return {column: report_value(report, path) for column, path in HEADLINE_PATHS.items()}


def add_metric_report(
    session: Session,
    report: dict[str, Any],
    *,
    adapter_id: int | None = None,
    request_id: int | None = None,
    job_id: int | None = None,
    method: str | None = None,
    passed: bool | None = None,
) -> MetricReport:
    """Add a MetricReport row for ``report`` (flushed, not committed)."""
    row = MetricReport(
        adapter_id=adapter_id,
        request_id=request_id,
        job_id=job_id,
        method=method,
        report=json_safe(report),
        passed=passed,
        **headline_metrics(report),
    )
    session.add(row)
    session.flush()
    return row
