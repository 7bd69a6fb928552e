"""From run rows to the benchmark's tables: seeds averaged, forget quality, model utility.

* **Forget quality** is FIUBench's: the p-value of a two-sided KS test between a model's
  forget-set truth ratios and the Retrain model's on the same split (`cagul.metrics`); rows of
  a split Retrain was not run on have none.
* **Model utility** follows open-unlearning's construction (a harmonic mean, so one collapsed
  ability cannot hide behind the others) over what this benchmark measures on the kept side:
  retain ROUGE-L, retain truth ratio, non-private ROUGE-L (the forget people's other facts),
  POPE and MME accuracy. open-unlearning's TOFU utility averages answer probability, ROUGE and
  truth ratio over retain, real-author and world-fact sets; here non-private pairs stand in for
  real authors and the POPE / MME probes for world facts, and answer probability is not in the
  report.
* A row run over several seeds gives each metric's mean and `<metric>_std` (population
  standard deviation) and `seeds`.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

from cagul import metrics
from cagul.benchmark.plan import Run
from cagul.benchmark.worker import REPORT_FIELDS

UTILITY_PARTS = (
    "retain_rouge_l",
    "retain_truth_ratio",
    "nonprivate_rouge_l",
    "pope_acc",
    "mme_acc",
)
METRICS = tuple(k for k, _, _ in REPORT_FIELDS) + (
    "forget_quality",
    "model_utility",
    "train_seconds",
    "peak_memory_mb",
)


def model_utility(row: dict) -> float | None:
    parts = [row.get(k) for k in UTILITY_PARTS]
    if any(p is None for p in parts):
        return None
    return 0.0 if min(parts) <= 0 else len(parts) / sum(1 / p for p in parts)


def _forget_quality(row: dict, retrain: dict | None) -> float | None:
    if retrain is None or row["run"]["split"] != retrain["run"]["split"]:
        return None
    x, ref = row.get("forget_truth_ratio_x"), retrain.get("forget_truth_ratio_x")
    return metrics.forget_quality(x, ref) if x and ref else None


def _mean_row(label: str, rows: list[dict]) -> dict:
    out = {"method": label, "seeds": len(rows), "run": rows[0]["run"]}
    for key in ("forget_people", "forget_pairs", "train_source"):
        out[key] = rows[0].get(key)
    for key in METRICS:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = statistics.fmean(values) if values else None
        if len(values) > 1:
            out[f"{key}_std"] = statistics.pstdev(values)
    return out


def build(tables: dict[str, list[Run]], rows: dict[str, dict]) -> dict[str, list[dict]]:
    """Per table, one row per label (its seeds averaged), in plan order."""
    retrain = next((rows[r.key] for r in tables["main"] if r.method == "retrain"), None)
    out = {}
    for name, runs in tables.items():
        by_label: dict[str, list[dict]] = {}
        for run in runs:
            row = dict(rows[run.key])
            row["forget_quality"] = _forget_quality(row, retrain)
            row["model_utility"] = model_utility(row)
            by_label.setdefault(run.label, []).append(row)
        out[name] = [_mean_row(label, group) for label, group in by_label.items()]
    for row in out["sweep_forget"]:
        row["method"] = f"{row['forget_people']} people ({row['method']})"
    return out


def efficiency(main: list[dict]) -> dict:
    """CAGUL's training cost against PO+GD's, from the same run (ratios of the means)."""
    by = {r["method"]: r for r in main}
    cagul, po = by.get("CAGUL"), by.get("PO+GD")
    out = {}
    if cagul and po:
        for key in ("train_seconds", "epoch_seconds", "trainable_params", "peak_memory_mb"):
            a, b = cagul.get(key), po.get(key)
            out[f"cagul_po_gd_{key}_ratio"] = a / b if a is not None and b else None
    return out


def write_csv(rows: list[dict], path: Path) -> None:
    keys = ["method", "seeds", *METRICS]
    keys += sorted({k for r in rows for k in r if k.endswith("_std")})
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def cell(row: dict, key: str, digits: int = 3) -> str:
    """`mean ± std` (or the value, or '–') as a table shows it."""
    v = row.get(key)
    if v is None:
        return "–"
    text = f"{v:,.0f}" if key == "trainable_params" else f"{v:.{digits}f}"
    std = row.get(f"{key}_std")
    return f"{text} ± {std:.{digits}f}" if std is not None and key != "trainable_params" else text


def markdown(rows: list[dict], columns: list[tuple[str, str]], first: str = "method") -> str:
    """A Markdown table of `rows` with (key, header) `columns`."""
    head = f"| {first} | " + " | ".join(h for _, h in columns) + " |"
    rule = "|---" * (len(columns) + 1) + "|"
    body = [
        f"| {r['method']} | "
        + " | ".join(cell(r, k, 1 if k.endswith(("seconds", "_mb")) else 3) for k, _ in columns)
        + " |"
        for r in rows
    ]
    return "\n".join([head, rule, *body])


MAIN_COLUMNS = [
    ("forget_rouge_l", "forget ROUGE-L ↓"),
    ("forget_em", "forget EM ↓"),
    ("forget_ape", "forget APE ↓"),
    ("forget_mink", "forget MinK"),
    ("nonprivate_rouge_l", "non-private ROUGE-L ↑"),
    ("nonprivate_em", "non-private EM ↑"),
    ("retain_rouge_l", "retain ROUGE-L ↑"),
    ("retain_em", "retain EM ↑"),
    ("retain_truth_ratio", "retain truth ratio ↑"),
    ("pope_acc", "POPE ↑"),
    ("mme_acc", "MME ↑"),
    ("forget_quality", "forget quality ↑"),
    ("model_utility", "model utility ↑"),
]
EFFICIENCY_COLUMNS = [
    ("trainable_params", "trainable params"),
    ("epoch_seconds", "s / epoch"),
    ("train_seconds", "training s"),
    ("peak_memory_mb", "peak memory MB"),
]
SWEEP_COLUMNS = [
    ("forget_em", "forget EM ↓"),
    ("forget_ape", "forget APE ↓"),
    ("nonprivate_em", "non-private EM ↑"),
    ("retain_em", "retain EM ↑"),
    ("leak", "leak ↓"),
    ("train_seconds", "training s"),
]
