"""The Reports tab's logic and the compliance record.

A report is the evaluation JSON stored with an adapter (MetricReport). `metric_rows` puts the
unlearned model beside the base model metric by metric; `reports_figure` draws several adapters
side by side; `benchmark_tables` reads `benchmarks/results/main.json` when a benchmark run left
one. `record_html` is the printable compliance record of one forget request: who asked and when,
whom and what it covers, the method, the adapter's sha256 and the base fingerprint, the metrics
against their thresholds, the verdict, the audit runs and the whole event trail.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd
from sqlalchemy import select

import storage
from jobs.verdict import (
    KEEP_RATIO,
    MAX_FORGET_EM,
    MAX_IMAGE_LEAK,
    MAX_PARAPHRASE_LEAK,
    stored_verdict,
)
from storage.reports import report_value
from webui.auth import SignedIn, require
from webui.public import public_path
from webui.studio import Studio, StudioError

BENCHMARK_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "benchmark"

# (label, path in the report, path of the base model's value or None, goal)
METRICS = [
    ("forget EM ↓", ("forget", "em"), ("base", "forget_em"), f"≤ {MAX_FORGET_EM}"),
    ("forget APE (paraphrase leak) ↓", ("forget", "ape"), None, f"≤ {MAX_PARAPHRASE_LEAK}"),
    ("forget ROUGE-L ↓", ("forget", "rouge_l"), None, ""),
    ("perturbed-image leak ↓", ("leak", "perturbed_image"), None, f"≤ {MAX_IMAGE_LEAK}"),
    (
        "non-private EM ↑",
        ("nonprivate", "em"),
        ("base", "nonprivate_em"),
        f"≥ {KEEP_RATIO:.0%} of base",
    ),
    ("retain EM ↑", ("retain", "em"), None, "keep (see verdict)"),
    ("retain ROUGE-L ↑", ("retain", "rouge_l"), None, ""),
    ("POPE accuracy ↑", ("general", "pope_acc"), None, "keep (see verdict)"),
    ("MME accuracy ↑", ("general", "mme_acc"), None, "keep (see verdict)"),
    ("discriminator accuracy ↑", ("discriminator", "accuracy"), None, ""),
]


def adapter_report(studio: Studio, who: SignedIn | None, adapter_id) -> dict:
    """The newest stored report of an adapter."""
    require(who, "reports")
    row = studio.adapter_row(adapter_id)
    with studio.db.read() as s:
        rep = s.scalars(
            select(storage.MetricReport)
            .where(storage.MetricReport.adapter_id == row.id)
            .order_by(storage.MetricReport.id.desc())
        ).first()
    if rep is None:
        raise StudioError(f"adapter #{row.id} has no stored report")
    return rep.report


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def metric_rows(report: dict) -> list[list[str]]:
    """[metric, base model, unlearned, goal] rows."""
    rows = []
    for label, path, base_path, goal in METRICS:
        value = report_value(report, path)
        if value is None:
            continue
        base = report_value(report, base_path) if base_path else None
        rows.append([label, _fmt(base), _fmt(value), goal])
    eff = report.get("efficiency", {})
    if eff.get("trainable_params") is not None:
        rows.append(["trainable parameters", "–", f"{eff['trainable_params']:,}", ""])
    if eff.get("epoch_seconds") is not None:
        rows.append(["seconds per epoch", "–", f"{eff['epoch_seconds']:.2f}", ""])
    return rows


def compare_rows(studio: Studio, who: SignedIn | None, adapter_ids: list) -> tuple[list, list]:
    """(columns, rows): each metric with the base model and one column per chosen adapter
    (a metric shown when any adapter's report has it), then the goal."""
    if not adapter_ids:
        raise StudioError("choose at least one adapter")
    reps = [(studio.adapter_row(a), adapter_report(studio, who, a)) for a in adapter_ids]
    columns = ["metric", "base model", *(f"#{row.id} {row.method}" for row, _ in reps), "goal"]
    rows = []
    for label, path, base_path, goal in METRICS:
        values = [report_value(rep, path) for _, rep in reps]
        if all(v is None for v in values):
            continue
        base = next(
            (
                report_value(rep, base_path)
                for _, rep in reps
                if base_path and report_value(rep, base_path) is not None
            ),
            None,
        )
        rows.append([label, _fmt(base), *map(_fmt, values), goal])
    rows.append(["verdict", "–", *(stored_verdict(rep)["status"] for _, rep in reps), ""])
    return columns, rows


def reports_bundle(studio: Studio, who: SignedIn | None, adapter_ids: list) -> dict:
    """Every chosen adapter's report by id (what the download holds)."""
    return {str(studio.adapter_row(a).id): adapter_report(studio, who, a) for a in adapter_ids}


def training_figure(studio: Studio, who: SignedIn | None, adapter_ids: list):
    """The training history of each chosen adapter (losses per epoch and the stopping rule's
    checks: every number its report's `training.history` holds), one line per series; None
    when no chosen report has a history."""
    import plotly.graph_objects as go

    fig, drawn = go.Figure(), False
    for aid in adapter_ids:
        row = studio.adapter_row(aid)
        history = (adapter_report(studio, who, aid).get("training") or {}).get("history") or []
        keys = sorted(
            {
                k
                for h in history
                if isinstance(h, dict)
                for k, v in h.items()
                if k != "epoch" and isinstance(v, int | float) and not isinstance(v, bool)
            }
        )
        for key in keys:
            points = [
                (str(h.get("epoch", i)), h[key])
                for i, h in enumerate(history)
                if isinstance(h, dict) and isinstance(h.get(key), int | float)
            ]
            fig.add_scatter(
                x=[p[0] for p in points],
                y=[p[1] for p in points],
                mode="lines+markers",
                name=f"#{row.id} {row.method}: {key}",
                # Counts (LM passes per epoch) on their own axis: on the losses' axis they
                # flatten every loss curve to a line at 0.
                yaxis="y2" if key.endswith("passes") else "y",
            )
            drawn = True
    if not drawn:
        return None
    fig.update_layout(
        height=360,
        title="Training history (per epoch)",
        xaxis={"title": "epoch", "type": "category"},
        yaxis={"title": "loss"},
        yaxis2={"title": "LM passes", "overlaying": "y", "side": "right", "showgrid": False},
        margin={"l": 50, "r": 50, "t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def reports_figure(studio: Studio, who: SignedIn | None, adapter_ids: list):
    """Forget / non-private / retain / general metrics of several adapters, grouped bars."""
    import plotly.graph_objects as go

    keys = [
        ("forget EM", ("forget", "em")),
        ("forget APE", ("forget", "ape")),
        ("non-private EM", ("nonprivate", "em")),
        ("retain EM", ("retain", "em")),
        ("POPE", ("general", "pope_acc")),
        ("MME", ("general", "mme_acc")),
    ]
    fig = go.Figure()
    first = adapter_report(studio, who, adapter_ids[0]) if adapter_ids else None
    if first and report_value(first, ("base", "forget_em")) is not None:
        base = {"forget EM": ("base", "forget_em"), "non-private EM": ("base", "nonprivate_em")}
        fig.add_bar(
            name="base model",
            x=[k for k, _ in keys],
            marker_color="#9aa5b1",
            y=[report_value(first, base[k]) if k in base else None for k, _ in keys],
        )
    for aid in adapter_ids:
        rep = adapter_report(studio, who, aid)
        row = studio.adapter_row(aid)
        # Values written on the bars: a 0 shows as "0.00", not as a missing bar.
        fig.add_bar(
            name=f"#{row.id} {row.method}",
            x=[k for k, _ in keys],
            y=[report_value(rep, p) for _, p in keys],
            texttemplate="%{y:.2f}",
            textposition="outside",
            cliponaxis=False,
        )
    fig.update_layout(
        barmode="group",
        height=360,
        yaxis={"range": [0, 1.05]},
        margin={"l": 40, "r": 10, "t": 30, "b": 40},
        title="Unlearned models against the base model",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def benchmark_tables(folder: Path = BENCHMARK_DIR) -> dict | None:
    """The benchmark's tables as the page shows them (title -> rows of display strings) and
    its main figure, when a run left `main.json`, `ablation.json` and `sweeps.json` in
    `folder`; else None."""
    from cagul.benchmark import plots, tables

    try:
        main, ablation, sweeps = (
            json.loads((folder / f"{n}.json").read_text(encoding="utf-8"))
            for n in ("main", "ablation", "sweeps")
        )
        built = {
            "main": main["main"],
            "ablation": ablation["ablation"],
            "sweep_k": sweeps["k"],
            "sweep_forget": sweeps["forget"],
        }
    except (OSError, ValueError, KeyError):
        return None

    def frame(rows: list[dict], columns: list[tuple[str, str]]) -> pd.DataFrame:
        return pd.DataFrame(
            [[r["method"], *(tables.cell(r, k) for k, _ in columns)] for r in rows],
            columns=["method", *(h for _, h in columns)],
        )

    return {
        "tables": {
            "Main": frame(built["main"], tables.MAIN_COLUMNS),
            "Efficiency": frame(built["main"], tables.EFFICIENCY_COLUMNS),
            "Ablation": frame(built["ablation"], tables.SWEEP_COLUMNS),
            "k sweep": frame(built["sweep_k"], tables.SWEEP_COLUMNS),
            "Forget-size sweep": frame(built["sweep_forget"], tables.SWEEP_COLUMNS),
        },
        # The page's box sets the width; the fixed width is for the PNG.
        # Values on the bars: a 0 (Pretrain, CAGUL's forget EM) reads "0.00", not a gap.
        "figure": plots.figures(built)["main"]
        .update_layout(width=None)
        .update_traces(
            texttemplate="%{y:.2f}", textposition="outside", textfont_size=9, cliponaxis=False
        ),
        "sweeps": plots.figures(built)["sweeps"].update_layout(width=None),
        "efficiency": main.get("efficiency", {}),
        "meta": main.get("meta", {}),
    }


def verdict_rows(judged: dict) -> list[list[str]]:
    """[bound, value, threshold, result] rows of a verdict (`jobs.verdict`'s JSON)."""
    rows = []
    for line in judged["lines"]:
        basis = "" if line["basis"] == "fixed" else f" ({line['basis']})"
        result = {True: "pass", False: "FAIL", None: "not measured"}[line["passed"]]
        rows.append(
            [
                f"{line['group']}: {line['label']}",
                _fmt(line["value"]),
                f"{line['op']} {line['threshold']:.2f}{basis}",
                result,
            ]
        )
    return rows


def _t(t) -> str:
    """A stored time as the record shows it (UTC, to the second), or a dash."""
    return t.strftime("%Y-%m-%d %H:%M:%S") if t else "–"


# ---- the compliance record ---------------------------------------------------------------
def _e(x) -> str:
    return html.escape(str(x))


def record_html(studio: Studio, who: SignedIn | None, request_id) -> str:
    """A printable, self-contained HTML record of one forget request."""
    from webui.requests import details_text, history, visible_request

    who = require(who, "requests")
    req = visible_request(studio, who, request_id)
    with studio.db.read() as s:
        submitter = s.get(storage.User, req.submitted_by_id) if req.submitted_by_id else None
        adapter = s.scalars(
            select(storage.Adapter).where(storage.Adapter.request_id == req.id)
        ).first()
        report = s.scalars(
            select(storage.MetricReport)
            .where(storage.MetricReport.request_id == req.id)
            .order_by(storage.MetricReport.id.desc())
        ).first()
        audits = list(storage.events_for(s, "adapter", adapter.id)) if adapter else []
    people = [f"{i} · {studio.person(i).name}" for i in req.individual_ids]
    ended = {"cancelled": "Cancelled at (UTC)", "failed": "Failed at (UTC)"}.get(
        req.status, "Completed at (UTC)"
    )
    no_adapter = (
        "none (cancelled before an adapter was stored)"
        if req.status == "cancelled"
        else "none (training failed)"
        if req.status == "failed"
        else "none yet"
    )
    facts = [
        ("Request", f"#{req.id}"),
        ("Status / verdict", req.status),
        ("Requested by (data subject)", req.requester),
        ("Data-subject reference", req.subject_ref or "–"),
        ("Legal basis", req.legal_basis or "–"),
        ("Received (UTC)", _t(req.received_at)),
        ("Response due (one month, GDPR Art. 12(3))", _t(req.due_at)),
        ("Entered by", submitter.name if submitter else "–"),
        ("Submitted at (UTC)", _t(req.created_at)),
        (ended, _t(req.completed_at)),
        (
            "Signed off by",
            f"{req.approved_by} at {_t(req.approved_at)}" if req.approved_by else "not yet",
        ),
        ("People", "; ".join(people)),
        ("Covers", ", ".join(req.categories) if req.categories else "every pair of these people"),
        ("Method", req.method),
        ("Reason", req.note or "–"),
        ("Adapter", f"#{adapter.id} at {public_path(adapter.path)}" if adapter else no_adapter),
        ("Adapter sha256", adapter.sha256 if adapter else "–"),
        ("Base model fingerprint", adapter.base_fingerprint if adapter else studio.fingerprint),
    ]
    parts = [_RECORD_HEAD.format(id=req.id), "<table class='facts'>"]
    parts += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts]
    parts.append("</table><h2>Metrics and thresholds</h2>")
    if report:
        parts.append("<table><tr><th>metric</th><th>base</th><th>unlearned</th><th>goal</th></tr>")
        parts += [
            "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>"
            for r in metric_rows(report.report)
        ]
        judged = stored_verdict(report.report)
        parts.append(
            "</table><h2>Verdict</h2><table><tr><th>bound</th><th>value</th>"
            "<th>threshold</th><th>result</th></tr>"
        )
        parts += [
            "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in verdict_rows(judged)
        ]
        said = (
            "every forget and keep bound held"
            if judged["status"] == "verified"
            else "failing: " + "; ".join(judged["failing"])
        )
        parts.append(
            f"</table><p>Verdict <b>{_e(judged['status'])}</b> ({_e(said)}); "
            f"request <b>{_e(req.status)}</b>.</p>"
        )
    else:
        parts.append("<p>No evaluation yet.</p>")
    parts.append("<h2>Audit runs</h2>")
    runs = [e for e in audits if e.action == "audit.run"]
    if runs:
        parts.append(
            "<table><tr><th>at</th><th>by</th><th>prompts</th><th>leak rate</th>"
            "<th>verdict</th></tr>"
        )
        for e in runs:
            d = e.details or {}
            rate = d.get("leak_rate")
            parts.append(
                f"<tr><td>{_e(e.at)}</td><td>{_e(e.actor)}</td><td>{_e(d.get('n'))}</td>"
                f"<td>{_e('–' if rate is None else f'{rate:.1%}')}</td>"
                f"<td>{_e(d.get('verdict'))}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p>No audit run yet.</p>")
    parts.append(
        "<h2>Event trail</h2><table><tr><th>at (UTC)</th><th>actor</th>"
        "<th>action</th><th>details</th></tr>"
    )
    for ev in history(studio, who, req.id):
        details = details_text(ev["details"])  # whole: a record is not cut
        parts.append(
            f"<tr><td>{_e(ev['at'])}</td><td>{_e(ev['actor'])}</td>"
            f"<td>{_e(ev['action'])}</td><td><code>{_e(details)}</code></td></tr>"
        )
    parts.append("</table></body></html>")
    return "".join(parts)


_RECORD_HEAD = """<!doctype html><html><head><meta charset="utf-8">
<title>Forget request #{id}: compliance record</title><style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 900px; color: #111; }}
table {{ border-collapse: collapse; width: 100%; margin: .5em 0 1.5em; font-size: 14px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }}
.facts th {{ width: 30%; background: #f5f5f5; }} code {{ font-size: 12px; word-break: break-all; }}
@media print {{ body {{ margin: 0; }} }}
</style></head><body><h1>Forget request #{id}: compliance record</h1>
<p>Produced by cagul-studio from its stored records; nothing here is editable after the fact
(events are append-only).</p>"""
