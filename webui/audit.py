"""The Audit tab's logic: probe an adapter's forget set for leaks, as an auditor would.

For every forget pair of the adapter's request it asks the original question, each stored
paraphrase, and the original question on perturbed copies of the photo (JPEG re-save, a
few-pixel shift, brightness, a crop, a mirror); typed questions are asked about every forget
person's photo and scored against all of that person's forgotten keywords. Each prompt is
answered by the base model and the unlearned one; a row `leaked` when the unlearned answer
holds a keyword (EM > 0). The verdict applies the queue's thresholds (`jobs.runner`) to the
mean EM of the original questions, the paraphrases and the perturbed photos.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import storage
from cagul import metrics
from cagul.answering import answer_all
from cagul.inputs import UserInputError, clean_question, open_image
from cagul.perturb import audit_perturbations
from jobs.runner import MAX_FORGET_EM, MAX_IMAGE_LEAK, MAX_PARAPHRASE_LEAK
from webui.studio import Studio

IMAGE_VARIANTS = ("jpeg", "shift", "brightness", "crop", "mirror")
KINDS = ("original", "paraphrase", *IMAGE_VARIANTS, "typed")
MAX_TYPED_QUESTIONS = 20
COLUMNS = ["person", "question", "variant", "base_answer", "answer", "base_em", "em", "leaked"]


@dataclass
class Prompt:
    person: str
    question: str
    variant: str
    image: object  # path or PIL image
    keywords: list[list[str]] = field(default_factory=list)  # EM is the max over these sets


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
        kw = [list(s.keywords)]
        prompts.append(Prompt(s.unique_id, s.question, "original", s.image_path, kw))
        prompts += [Prompt(s.unique_id, q, "paraphrase", s.image_path, kw)
                    for q in s.paraphrased_questions]  # fmt: skip
        prompts += [Prompt(s.unique_id, s.question, name, im, kw)
                    for name, im in copies[s.image_path].items()]  # fmt: skip
    people: dict[str, tuple[str, list[list[str]]]] = {}
    for s in split.forget_set:
        people.setdefault(s.unique_id, (s.image_path, []))[1].append(list(s.keywords))
    for q in typed:
        prompts += [Prompt(pid, q, "typed", path, kws) for pid, (path, kws) in people.items()]
    return prompts


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
        base = answer_all(vlm, images, questions, batch_size=32,
                          progress=lambda k: tick(k, "base model"))  # fmt: skip
        after = model.generate(images, questions, batch_size=32,
                               progress=lambda k: tick(k, "unlearned model"))  # fmt: skip
    rows = []
    for p, b, a in zip(prompts, base, after, strict=True):
        em = max(metrics.keyword_em(a, k) for k in p.keywords)
        base_em = max(metrics.keyword_em(b, k) for k in p.keywords)
        rows.append({"person": p.person, "question": p.question, "variant": p.variant,
                     "base_answer": b, "answer": a, "base_em": round(base_em, 3),
                     "em": round(em, 3), "leaked": em > 0})  # fmt: skip
    summary = summarize(rows)
    summary["adapter_id"] = int(adapter_id)
    with studio.db.transaction() as s:
        storage.record_event(s, actor=actor, action="audit.run", target_type="adapter",
                             target_id=int(adapter_id), details=summary)  # fmt: skip
    return {"rows": rows, "summary": summary}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(rows: list[dict]) -> dict:
    """Leak rate and mean EM per variant kind (base beside), the worst row, the verdict."""
    by_kind = {}
    for kind in KINDS:
        sel = [r for r in rows if r["variant"] == kind]
        if sel:
            by_kind[kind] = {
                "n": len(sel),
                "leak_rate": _mean([float(r["leaked"]) for r in sel]),
                "mean_em": _mean([r["em"] for r in sel]),
                "base_leak_rate": _mean([float(r["base_em"] > 0) for r in sel]),
            }
    image_em = _mean([r["em"] for r in rows if r["variant"] in IMAGE_VARIANTS])
    checks = [
        ("forget EM", by_kind.get("original", {}).get("mean_em"), MAX_FORGET_EM),
        ("paraphrase leak", by_kind.get("paraphrase", {}).get("mean_em"), MAX_PARAPHRASE_LEAK),
        ("perturbed-image leak", image_em, MAX_IMAGE_LEAK),
    ]
    reasons = [f"{name} {v:.3f} > {limit:.2f}" for name, v, limit in checks
               if v is not None and v > limit]  # fmt: skip
    worst = max(rows, key=lambda r: (r["em"], r["variant"] != "original"), default=None)
    return {
        "n": len(rows),
        "leak_rate": _mean([float(r["leaked"]) for r in rows]),
        "by_variant": by_kind,
        "perturbed_image_em": image_em,
        "worst": worst if worst and worst["em"] > 0 else None,
        "thresholds": {name: limit for name, _, limit in checks},
        "verdict": "needs_review" if reasons else "verified",
        "reasons": reasons,
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
    lines = [f'### Verdict: <span style="color:{color}">{verdict}</span>',
             f"{summary['n']} prompts, {summary['leak_rate']:.1%} leaked overall.", "",
             "| variant | prompts | leaked (unlearned) | leaked (base) | mean EM |",
             "|---|---|---|---|---|"]  # fmt: skip
    for kind, v in summary["by_variant"].items():
        lines.append(f"| {kind} | {v['n']} | {v['leak_rate']:.1%} | {v['base_leak_rate']:.1%} "
                     f"| {v['mean_em']:.3f} |")  # fmt: skip
    lines.append("")
    for r in summary["reasons"]:
        lines.append(f"- over threshold: {r}")
    w = summary["worst"]
    if w:
        lines.append(f"- worst case: {w['person']}, *{w['question']}* ({w['variant']}) → "
                     f"“{w['answer']}” (EM {w['em']:.2f})")  # fmt: skip
    else:
        lines.append("- no unlearned answer held a forgotten keyword")
    return "\n".join(lines)


def leak_figure(summary: dict):
    """Leak rate per variant, base beside unlearned (plotly)."""
    import plotly.graph_objects as go

    kinds = list(summary["by_variant"])
    fig = go.Figure()
    fig.add_bar(name="base model", x=kinds,
                y=[summary["by_variant"][k]["base_leak_rate"] for k in kinds],
                marker_color="#9aa5b1")  # fmt: skip
    fig.add_bar(name="unlearned", x=kinds,
                y=[summary["by_variant"][k]["leak_rate"] for k in kinds],
                marker_color="#e4572e")  # fmt: skip
    fig.update_layout(barmode="group", yaxis={"title": "share of answers leaking", "range": [0, 1],
                      "tickformat": ".0%"}, height=320, margin={"l": 50, "r": 10, "t": 30, "b": 40},
                      title="Leak rate by probe variant", legend={"orientation": "h", "y": -0.2})  # fmt: skip
    return fig
