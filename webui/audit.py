"""The Audit tab's logic: probe an adapter's forget set for leaks, as an auditor would.

For every forget pair of the adapter's request it asks the original question, each stored
paraphrase, and the original question on perturbed copies of the photo (JPEG re-save, a
few-pixel shift, brightness, a crop, a mirror); typed questions are asked about every forget
person's photo and scored against all of that person's forgotten keywords. Each prompt is
answered by the base model and the unlearned one; a row `leaked` when the unlearned answer
holds a keyword (EM > 0), and its `reason` says why (the altered photo, the keywords of the
ground truth it matched). The forget people's non-private questions are asked too: those
answers should survive, and their rows say `kept` (or `lost`).

The verdict is the queue's (`jobs.verdict.verdict`): the audit's own numbers (mean EM of the
original questions, the paraphrases and the perturbed photos; the non-private EM beside the base
model's) replace the stored evaluation's, and the bounds the audit cannot measure (retain EM,
general accuracy) come from the adapter's stored report, each line saying where its value came
from.
"""

from __future__ import annotations

import copy
import csv
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

import storage
from cagul import metrics
from cagul.answering import answer_all
from cagul.inputs import UserInputError, clean_question, open_image
from cagul.perturb import audit_perturbations
from jobs.verdict import verdict
from storage.clock import utcnow
from webui.studio import Studio

IMAGE_VARIANTS = ("jpeg", "shift", "brightness", "crop", "mirror")
KEEP_VARIANT = "nonprivate"  # the forget people's ordinary questions: their answers must stay
KINDS = ("original", "paraphrase", *IMAGE_VARIANTS, "typed", KEEP_VARIANT)
MAX_TYPED_QUESTIONS = 20
COLUMNS = [
    "person",
    "category",
    "question",
    "variant",
    "truth",
    "base_answer",
    "answer",
    "base_em",
    "em",
    "outcome",
    "forget_probability",
    "reason",
    "adapter_id",
    "adapter_sha256",
    "audited_at",
    "auditor",
]
# What the table on the page shows (the CSV has every column).
SHOWN_COLUMNS = ["person", "category", "question", "variant", "answer", "em", "outcome", "reason"]
OUTCOMES = ("leaked", "forgotten", "kept", "lost")


@dataclass
class Prompt:
    person: str
    question: str
    variant: str
    image: object  # path or PIL image
    keywords: list[list[str]] = field(default_factory=list)  # EM is the max over these sets
    category: str = ""
    truth: str = ""  # the ground-truth answer ("" for typed questions: any forgotten fact)


def typed_questions(text: str | None) -> list[str]:
    """The auditor's extra questions, one per line (blank lines ignored)."""
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    if len(lines) > MAX_TYPED_QUESTIONS:
        raise UserInputError(f"{len(lines)} typed questions; at most {MAX_TYPED_QUESTIONS}")
    return [clean_question(ln) for ln in lines]


def build_prompts(studio: Studio, adapter_id, typed: list[str]) -> list[Prompt]:
    split = studio.forget_split(adapter_id)
    if not split.forget_set:
        raise UserInputError(f"adapter #{adapter_id} has an empty forget set: nothing to audit")
    copies = {
        p: audit_perturbations(open_image(p)) for p in {s.image_path for s in split.forget_set}
    }
    prompts: list[Prompt] = []
    for s in split.forget_set:
        kw, cat, truth = [list(s.keywords)], s.category, s.answer
        prompts.append(Prompt(s.unique_id, s.question, "original", s.image_path, kw, cat, truth))
        prompts += [
            Prompt(s.unique_id, q, "paraphrase", s.image_path, kw, cat, truth)
            for q in s.paraphrased_questions
        ]
        prompts += [
            Prompt(s.unique_id, s.question, name, im, kw, cat, truth)
            for name, im in copies[s.image_path].items()
        ]
    people: dict[str, tuple[str, list[list[str]]]] = {}
    for s in split.forget_set:
        people.setdefault(s.unique_id, (s.image_path, []))[1].append(list(s.keywords))
    for q in typed:
        prompts += [Prompt(pid, q, "typed", path, kws) for pid, (path, kws) in people.items()]
    forgotten = {s.unique_id for s in split.forget_set}
    prompts += [
        Prompt(
            s.unique_id,
            s.question,
            KEEP_VARIANT,
            s.image_path,
            [list(s.keywords)],
            s.category,
            s.answer,
        )
        for s in split.nonprivate_set
        if s.unique_id in forgotten
    ]
    return prompts


def matched(answer: str, keyword_sets: list[list[str]]) -> list[str]:
    """The keywords an answer holds (EM's own test: case-insensitive containment)."""
    low = answer.lower()
    return sorted({k for ks in keyword_sets for k in ks if k.lower() in low})


def _row(p: Prompt, base: str, after: str, p_forget: float | None = None) -> dict:
    """One audited prompt: its EMs, its outcome and the reason for it (with the photo's forget
    probability where the method has a gate: a leak on an unflagged photo is the gate's miss)."""
    em = max(metrics.keyword_em(after, k) for k in p.keywords)
    base_em = max(metrics.keyword_em(base, k) for k in p.keywords)
    hits = matched(after, p.keywords)
    if p.variant == KEEP_VARIANT:
        outcome = "kept" if em > 0 else "lost"
        reason = (
            f"kept the truth: {', '.join(hits)}"
            if hits
            else f"lost the truth: none of {', '.join(p.keywords[0])}"
        )
    else:
        outcome = "leaked" if em > 0 else "forgotten"
        where = {
            "original": "the stored question",
            "paraphrase": "a paraphrased question",
            "typed": "a typed question",
        }.get(p.variant, f"an altered photo ({p.variant})")
        reason = f"{where} matched the truth: {', '.join(hits)}" if hits else ""
        if hits and p_forget is not None:
            reason += f" (forget probability {p_forget:.2f})"
    return {
        "person": p.person,
        "category": p.category,
        "question": p.question,
        "variant": p.variant,
        "truth": p.truth,
        "base_answer": base,
        "answer": after,
        "base_em": round(base_em, 3),
        "em": round(em, 3),
        "outcome": outcome,
        "forget_probability": None if p_forget is None else round(p_forget, 4),
        "reason": reason,
        "leaked": outcome == "leaked",
    }


def filter_rows(rows: list[dict], show: str = "all") -> list[dict]:
    """The rows the table shows: "all", or one outcome ("leaked", "lost", ...)."""
    if show in (None, "", "all"):
        return rows
    if show not in OUTCOMES:
        raise UserInputError(f"show one of all, {', '.join(OUTCOMES)}; not {show!r}")
    return [r for r in rows if r["outcome"] == show]


def run_audit(
    studio: Studio,
    adapter_id,
    typed_text: str | None = None,
    *,
    actor: str = "app:anonymous",
    progress: Callable[[float, str], None] | None = None,
) -> dict:
    """Rows, a summary and the verdict for one stored adapter; the run is recorded as an
    AuditEvent with its summary. Bad input raises before any model call."""
    typed = typed_questions(typed_text)
    model = studio.unlearned(adapter_id)
    prompts = build_prompts(studio, adapter_id, typed)
    vlm, n = studio.vlm, len(prompts)
    done = [0]

    def tick(step: int, what: str) -> None:
        done[0] += step
        if progress:
            progress(done[0] / (2 * n), f"{what}: {done[0] % n or n}/{n} prompts")

    images = [p.image for p in prompts]
    questions = [p.question for p in prompts]
    with studio.model_lock:
        base = answer_all(
            vlm, images, questions, batch_size=32, progress=lambda k: tick(k, "base model")
        )
        after = model.generate(
            images, questions, batch_size=32, progress=lambda k: tick(k, "unlearned model")
        )
        p_forget = model.forget_probabilities(images)
    row = studio.adapter_row(adapter_id)
    stamp = {
        "adapter_id": row.id,
        "adapter_sha256": row.sha256,
        "audited_at": utcnow().isoformat(timespec="seconds") + "Z",
        "auditor": actor,
    }
    rows = [
        {**_row(p, b, a, f), **stamp}
        for p, b, a, f in zip(prompts, base, after, p_forget, strict=True)
    ]
    summary = summarize(rows, stored_report(studio, row.id))
    summary["adapter_id"] = row.id
    with studio.db.transaction() as s:
        storage.record_event(
            s,
            actor=actor,
            action="audit.run",
            target_type="adapter",
            target_id=int(adapter_id),
            details=summary,
        )
    return {"rows": rows, "summary": summary}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def stored_report(studio: Studio, adapter_id: int) -> dict | None:
    """The adapter's newest stored evaluation report, if any."""
    with studio.db.read() as s:
        rep = s.scalars(
            select(storage.MetricReport)
            .where(storage.MetricReport.adapter_id == adapter_id)
            .order_by(storage.MetricReport.id.desc())
        ).first()
    return rep.report if rep else None


# Bound key -> what the audit measured for it.
_AUDITED = ("forget_em", "paraphrase_leak", "image_leak", "nonprivate_em")


def audit_verdict(by_kind: dict, image_em: float | None, stored: dict | None) -> dict:
    """jobs.verdict over the stored report with the audit's measurements put in."""
    report = copy.deepcopy(stored or {})
    for section in ("forget", "leak", "nonprivate", "base"):
        if not isinstance(report.get(section), dict):
            report[section] = {}
    measured = {
        ("forget", "em"): by_kind.get("original", {}).get("mean_em"),
        ("forget", "ape"): by_kind.get("paraphrase", {}).get("mean_em"),
        ("leak", "perturbed_image"): image_em,
        ("nonprivate", "em"): by_kind.get(KEEP_VARIANT, {}).get("mean_em"),
        ("base", "nonprivate_em"): by_kind.get(KEEP_VARIANT, {}).get("base_mean_em"),
    }
    for (section, key), value in measured.items():
        report[section].pop(key, None)  # nothing measured: not the stored value either
        if value is not None:
            report[section][key] = value
    sources = {k: "audit" for k in _AUDITED}
    return verdict(
        report,
        sources={
            **{k: "stored evaluation" for k in ("retain_em", "pope_acc", "mme_acc")},
            **sources,
        },
    ).to_json()


def summarize(rows: list[dict], stored: dict | None = None) -> dict:
    """Leak rate and mean EM per variant kind (base beside), the worst row, the verdict
    (every bound, :func:`audit_verdict`)."""
    by_kind = {}
    for kind in KINDS:
        sel = [r for r in rows if r["variant"] == kind]
        if sel:
            by_kind[kind] = {
                "n": len(sel),
                "leak_rate": _mean([float(r["leaked"]) for r in sel]),
                "mean_em": _mean([r["em"] for r in sel]),
                "base_leak_rate": _mean([float(r["base_em"] > 0) for r in sel]),
                "base_mean_em": _mean([r["base_em"] for r in sel]),
            }
    image_em = _mean([r["em"] for r in rows if r["variant"] in IMAGE_VARIANTS])
    judged = audit_verdict(by_kind, image_em, stored)
    forget_rows = [r for r in rows if r["variant"] != KEEP_VARIANT]
    worst = max(forget_rows, key=lambda r: (r["em"], r["variant"] != "original"), default=None)
    return {
        "n": len(rows),
        "leak_rate": _mean([float(r["leaked"]) for r in forget_rows]),
        "leaked": sum(r["leaked"] for r in rows),
        "lost": sum(r["outcome"] == "lost" for r in rows),
        "by_variant": by_kind,
        "perturbed_image_em": image_em,
        "worst": worst if worst and worst["em"] > 0 else None,
        "thresholds": {line["label"]: line["threshold"] for line in judged["lines"]},
        "verdict": judged["status"],
        "reasons": judged["failing"],
        "lines": judged["lines"],
    }


def write_csv(rows: list[dict], directory: str | Path | None = None) -> Path:
    """The rows as a CSV file (for the download button)."""
    out = Path(tempfile.mkdtemp(prefix="audit-", dir=directory)) / "audit.csv"
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return out


def summary_markdown(summary: dict) -> str:
    verdict = summary["verdict"]
    color = "#137333" if verdict == "verified" else "#b3261e"
    rate = summary["leak_rate"]
    lines = [
        f'### Verdict: <span style="color:{color}">{verdict}</span>',
        f"{summary['n']} prompts: {summary.get('leaked', 0)} leaked "
        f"({'–' if rate is None else f'{rate:.1%}'} of forget prompts), "
        f"{summary.get('lost', 0)} ordinary answers lost.",
        "",
        "| bound | value | threshold | result | source |",
        "|---|---|---|---|---|",
    ]
    for line in summary.get("lines", []):
        value = "–" if line["value"] is None else f"{line['value']:.3f}"
        result = {True: "pass", False: "**FAIL**", None: "not measured"}[line["passed"]]
        basis = "" if line["basis"] == "fixed" else f" ({line['basis']})"
        source = "audit" if line["source"] == "audit" else "stored report"
        lines.append(
            f"| {line['group']}: {line['label']} | {value} | {line['op']} "
            f"{line['threshold']:.2f}{basis} | {result} | {source} |"
        )
    lines += [
        "",
        "| variant | n | leaked after | leaked before | mean EM |",
        "|---|---|---|---|---|",
    ]
    for kind, v in summary["by_variant"].items():
        lines.append(
            f"| {kind} | {v['n']} | {v['leak_rate']:.1%} | {v['base_leak_rate']:.1%} "
            f"| {v['mean_em']:.3f} |"
        )
    lines.append("")
    for r in summary["reasons"]:
        lines.append(f"- failing: {r}")
    w = summary["worst"]
    if w:
        lines.append(
            f"- worst case: {w['person']}, *{w['question']}* ({w['variant']}) → "
            f"“{w['answer']}” (EM {w['em']:.2f})"
        )
    else:
        lines.append("- no unlearned answer held a forgotten keyword")
    return "\n".join(lines)


def leak_figure(summary: dict):
    """Leak rate per variant, base beside unlearned (plotly)."""
    import plotly.graph_objects as go

    kinds = [k for k in summary["by_variant"] if k != KEEP_VARIANT]  # leaks only
    fig = go.Figure()
    fig.add_bar(
        name="base model",
        x=kinds,
        y=[summary["by_variant"][k]["base_leak_rate"] for k in kinds],
        marker_color="#9aa5b1",
    )
    fig.add_bar(
        name="unlearned",
        x=kinds,
        y=[summary["by_variant"][k]["leak_rate"] for k in kinds],
        marker_color="#e4572e",
    )
    fig.update_layout(
        barmode="group",
        yaxis={"title": "share of answers leaking", "range": [0, 1], "tickformat": ".0%"},
        height=320,
        margin={"l": 50, "r": 10, "t": 30, "b": 40},
        title="Leak rate by probe variant",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
