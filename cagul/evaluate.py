"""FIUBench evaluation of a VLM (optionally with an unlearning adapter): the evaluation report.

Generation is greedy, left-padded, at most 50 new tokens, cut at the first "." (see
`cagul.answering`); every metric comes from `cagul.metrics`. The report's rates lie in [0, 1];
a set that is empty in the chosen setting (the non-private set in the identity setting) is
reported as null, never as a made-up number. The forget set's truth-ratio values x are kept in
the report (`values.forget_truth_ratio_x`) because forget quality (KS test) needs a Retrain
model's values to compare against.
"""

from __future__ import annotations

import csv
import resource
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cagul import metrics
from cagul.answering import answer_all, answer_logprobs
from cagul.data import ProbeSet, Split
from cagul.data.splits import Sample
from cagul.models import VLM, TokenReplacement
from cagul.progress import Bar

ReplacementFor = Callable[[object], TokenReplacement | None] | None


def _nll(entries: list[dict]) -> list[float]:
    return [-float(np.mean(e["logprobs"])) if e["logprobs"] else 0.0 for e in entries]


def _truth_x(vlm: VLM, samples: list[Sample], rep: ReplacementFor, bs: int) -> np.ndarray:
    imgs = [s.image_path for s in samples]
    qs = [s.question for s in samples]
    para = _nll(
        answer_logprobs(
            vlm,
            imgs,
            qs,
            [s.paraphrased_answer for s in samples],
            batch_size=bs,
            replacement_for=rep,
        )
    )
    n_pert = min(len(s.perturbed_answers) for s in samples)
    pert_rows = []
    for j in range(n_pert):
        pert_rows.append(
            _nll(
                answer_logprobs(
                    vlm,
                    imgs,
                    qs,
                    [s.perturbed_answers[j] for s in samples],
                    batch_size=bs,
                    replacement_for=rep,
                )
            )
        )
    return metrics.truth_ratio_values(para, np.array(pert_rows).T)


def _qa_block(vlm, samples, rep, bs, bar, *, paraphrase=False, mink=False, truth=None):
    if not samples:
        return None, None
    preds = answer_all(
        vlm,
        [s.image_path for s in samples],
        [s.question for s in samples],
        batch_size=bs,
        replacement_for=rep,
        progress=bar,
    )
    kws = [list(s.keywords) for s in samples]
    out = {
        "rouge_l": metrics.mean_rouge_l_recall(preds, [s.answer for s in samples]),
        "em": metrics.mean_em(preds, kws),
        "n": len(samples),
    }
    if paraphrase:
        imgs = [s.image_path for s in samples for _ in s.paraphrased_questions]
        qs = [q for s in samples for q in s.paraphrased_questions]
        flat = answer_all(vlm, imgs, qs, batch_size=bs, replacement_for=rep, progress=bar)
        grouped, i = [], 0
        for s in samples:
            grouped.append(flat[i : i + len(s.paraphrased_questions)])
            i += len(s.paraphrased_questions)
        out["ape"] = metrics.ape(grouped, kws)
    if mink:
        lp = answer_logprobs(
            vlm,
            [s.image_path for s in samples],
            [s.question for s in samples],
            [s.answer for s in samples],
            batch_size=bs,
            replacement_for=rep,
        )
        out["mink"] = float(np.mean([metrics.mink(e["logprobs"]) for e in lp]))
        out["mink_pp"] = float(
            np.mean([metrics.mink_pp(e["logprobs"], e["mu"], e["sigma"]) for e in lp])
        )
    x = None
    if truth is not None:
        x = _truth_x(vlm, samples, rep, bs)
        out["truth_ratio"] = truth(x)
    return out, (preds, x)


def general_metrics(vlm, probes: ProbeSet, rep=None, bs: int = 64, bar=None) -> dict:
    """POPE and MME accuracy on the general probes (with `rep`, under an adapter)."""

    def ask(items):
        return answer_all(
            vlm,
            [p.image_path for p in items],
            [p.question for p in items],
            batch_size=bs,
            replacement_for=rep,
            progress=bar,
        )

    out: dict = {}
    if probes.pope:
        out["pope_acc"] = metrics.pope_accuracy(ask(probes.pope), [p.answer for p in probes.pope])
    if probes.mme:
        m = metrics.mme_metrics(
            ask(probes.mme), [p.answer for p in probes.mme], [p.group for p in probes.mme]
        )
        out["mme_acc"], out["mme_acc_plus"] = m["acc"], m["acc_plus"]
    return out


def evaluate(
    vlm: VLM,
    split: Split,
    probes: ProbeSet | None,
    *,
    replacement_for: ReplacementFor = None,
    retrain_truth_x: list[float] | None = None,
    max_retain: int | None = None,
    batch_size: int = 64,
    progress: bool = True,
    meta: dict | None = None,
) -> dict:
    """The evaluation report for `vlm` on `split` (and the general `probes`).

    `max_retain` evaluates an evenly spaced subset of the retain set (recorded in meta) to keep
    runs short on large datasets; None evaluates all of it.
    """
    t0 = time.time()
    retain = split.retain_set
    if max_retain is not None and len(retain) > max_retain:
        step = len(retain) / max_retain
        retain = [retain[int(i * step)] for i in range(max_retain)]
    n_probe = len(probes.pope) + len(probes.mme) if probes else 0
    total = 4 * len(split.forget_set) + len(split.nonprivate_set) + len(retain) + n_probe
    shown = Bar("evaluate", total, enabled=progress)
    bar = shown.advance  # answering reports samples done
    rep, bs = replacement_for, batch_size
    forget, (_, forget_x) = _qa_block(
        vlm,
        split.forget_set,
        rep,
        bs,
        bar,
        paraphrase=True,
        mink=True,
        truth=metrics.forget_truth_ratio,
    )
    nonprivate, _ = _qa_block(vlm, split.nonprivate_set, rep, bs, bar)
    retain_out, _ = _qa_block(vlm, retain, rep, bs, bar, truth=metrics.retain_truth_ratio)
    general = general_metrics(vlm, probes, rep, bs, bar) if probes else {}
    shown.close()
    if forget is not None and retrain_truth_x is not None:
        forget["forget_quality"] = metrics.forget_quality(forget_x, retrain_truth_x)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        import torch

        if torch.cuda.is_available():
            peak = torch.cuda.max_memory_allocated() / 2**20
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    return {
        "forget": forget,
        "nonprivate": nonprivate,
        "retain": retain_out,
        "general": general,
        "efficiency": {"trainable_params": 0, "epoch_seconds": None, "peak_memory_mb": peak},
        "values": {"forget_truth_ratio_x": None if forget_x is None else forget_x.tolist()},
        "meta": {
            "model": str(vlm.path),
            "family": vlm.family,
            **split.summary(),
            "retain_evaluated": len(retain),
            "eval_seconds": round(time.time() - t0, 2),
            **(meta or {}),
        },
    }


CSV_COLUMNS = [
    "model",
    "adapter",
    "split",
    "setting",
    "forget_em",
    "forget_ape",
    "forget_rouge_l",
    "forget_truth_ratio",
    "forget_quality",
    "nonprivate_em",
    "retain_em",
    "retain_rouge_l",
    "pope_acc",
    "mme_acc",
    "eval_seconds",
]


def append_csv_row(report: dict, path: str | Path) -> None:
    """One row per evaluation, header written when the file is new."""
    f, np_, r, g, m = (
        report.get(k) or {} for k in ("forget", "nonprivate", "retain", "general", "meta")
    )
    row = {
        "model": m.get("model"),
        "adapter": m.get("adapter"),
        "split": m.get("name"),
        "setting": m.get("setting"),
        "forget_em": f.get("em"),
        "forget_ape": f.get("ape"),
        "forget_rouge_l": f.get("rouge_l"),
        "forget_truth_ratio": f.get("truth_ratio"),
        "forget_quality": f.get("forget_quality"),
        "nonprivate_em": np_.get("em"),
        "retain_em": r.get("em"),
        "retain_rouge_l": r.get("rouge_l"),
        "pope_acc": g.get("pope_acc"),
        "mme_acc": g.get("mme_acc"),
        "eval_seconds": m.get("eval_seconds"),
    }
    path = Path(path)
    new = not path.exists()
    with path.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        if new:
            w.writeheader()
        w.writerow(row)


def image_leak(vlm: VLM, split: Split, replacement_for: ReplacementFor, batch_size: int = 64):
    """`perturbed_image_leak` for any model: `vlm` answers, `replacement_for` rewrites (or
    None: the model answers as it is, e.g. a LoRA-unlearned copy)."""
    from PIL import Image

    from cagul.perturb import fixed_perturbations

    if not split.forget_set:
        return {"perturbed_image": None, "n": 0}
    copies = {
        p: fixed_perturbations(Image.open(p)) for p in {s.image_path for s in split.forget_set}
    }
    imgs, qs, kws, names = [], [], [], []
    for s in split.forget_set:
        for name, im in copies[s.image_path].items():
            imgs.append(im)
            qs.append(s.question)
            kws.append(list(s.keywords))
            names.append(name)
    preds = answer_all(vlm, imgs, qs, batch_size=batch_size, replacement_for=replacement_for)
    hits = [metrics.keyword_em(p, k) for p, k in zip(preds, kws, strict=True)]
    by_kind = {
        n: float(np.mean([h for h, m in zip(hits, names, strict=True) if m == n]))
        for n in dict.fromkeys(names)
    }
    return {"perturbed_image": float(np.mean(hits)), "by_perturbation": by_kind, "n": len(hits)}


def base_em(vlm: VLM, split: Split, bs: int = 64) -> dict:
    """The base model's forget / non-private EM, reported beside an unlearned model's."""
    out = {}
    for name, samples in (("forget", split.forget_set), ("nonprivate", split.nonprivate_set)):
        if samples:
            preds = answer_all(
                vlm, [s.image_path for s in samples], [s.question for s in samples], batch_size=bs
            )
            out[f"{name}_em"] = metrics.mean_em(preds, [list(s.keywords) for s in samples])
    return out


def _with_training(report: dict, trainable: int, training: dict | None) -> dict:
    report["efficiency"]["trainable_params"] = trainable
    if training:
        report["efficiency"]["epoch_seconds"] = training.get("epoch_seconds")
        report["efficiency"]["training_seconds"] = training.get("seconds")
        report["training"] = training
    return report


def evaluate_unlearned(
    vlm: VLM,
    unlearned,
    split: Split,
    probes: ProbeSet | None,
    *,
    base: bool = True,
    training: dict | None = None,
    **kwargs,
) -> dict:
    """The §8 report of any method's unlearned model (`cagul.methods.base.UnlearnedModel`),
    with the sections the method adds (`report_sections`: every method's perturbed-image leak,
    CAGUL's discriminator block) and (with `base`) the base `vlm`'s forget / non-private EM.
    The model answers as itself (`unlearned.vlm`, e.g. a LoRA-injected copy) with the rewrite
    it gives (`unlearned.replacement_for`: none but CAGUL's)."""
    bs = kwargs.get("batch_size", 64)
    rep = unlearned.replacement_for
    report = evaluate(unlearned.vlm, split, probes, replacement_for=rep, **kwargs)
    report.update(unlearned.report_sections(split, probes, bs))
    if base:
        report["base"] = base_em(vlm, split, bs)
    return _with_training(report, unlearned.n_trainable, training)
