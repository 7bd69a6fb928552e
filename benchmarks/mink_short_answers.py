"""How much do our MinK, MinK++ and truth ratio differ from FIUBench's conventions on the bundle?

`cagul.metrics` uses at least one token for every MinK ratio, so the five weights always sum to
1; FIUBench's evaluation takes the mean of an empty slice when ⌊r·n⌋ = 0 and drops that NaN term
without renormalising, so an answer of n < 10 tokens loses the 0.3 weight of r = 0.1 (n < 5
also loses r = 0.2, and so on). The truth ratio's per-token NLL here is the answer tokens' mean;
FIUBench divides the same sum by the label count, one more than the answer tokens. FIUBench
also capitalises the question and answer (``str.capitalize``: first letter upper, the rest
lower) before scoring. This script scores the demo bundle's forget set (forget10: 21 pairs) on
the Finetune, Retrain and Pretrain models each way, from the same log-probs
(`cagul.answering.answer_logprobs`). About a minute on 2 CPU cores::

    python -m benchmarks.mink_short_answers [--out benchmarks/results/mink_short_answers.json]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from cagul import metrics
from cagul.answering import answer_all, answer_logprobs
from cagul.data import load_dataset, make_split
from cagul.models import load_vlm
from cagul.paths import DEMO_DIR, REPO


def fiubench_weighted(values: list[float]) -> float:
    """FIUBench's rule: a ratio whose ⌊r·n⌋ is 0 contributes nothing (no renormalisation)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    total = 0.0
    for r, w in zip(metrics.MINK_RATIOS, metrics.MINK_WEIGHTS, strict=True):
        k = math.floor(r * len(ordered))
        if k > 0:
            total += w * math.exp(float(np.mean(ordered[:k])))
    return total


def _z(e: dict) -> list[float]:
    return metrics.mink_pp_z(e["logprobs"], e["mu"], e["sigma"]).tolist()


def _nll(entries: list[dict], extra: int) -> list[float]:
    """Per-token NLL: the answer tokens' NLL sum over (answer tokens + `extra`)."""
    return [-float(np.sum(e["logprobs"])) / (len(e["logprobs"]) + extra) for e in entries]


def score_model(name: str, samples: list) -> dict:
    vlm = load_vlm(DEMO_DIR / "models" / name, device="cpu")
    imgs = [s.image_path for s in samples]
    qs = [s.question for s in samples]
    lp = answer_logprobs(vlm, imgs, qs, [s.answer for s in samples])
    cap = answer_logprobs(
        vlm, imgs, [q.capitalize() for q in qs], [s.answer.capitalize() for s in samples]
    )
    para = answer_logprobs(vlm, imgs, qs, [s.paraphrased_answer for s in samples])
    n_pert = min(len(s.perturbed_answers) for s in samples)
    pert = [
        answer_logprobs(vlm, imgs, qs, [s.perturbed_answers[j] for s in samples])
        for j in range(n_pert)
    ]
    raw = vlm.generate(vlm.prepare(imgs, qs), None, 50)  # uncut, to see where "." is missing
    kws = [list(s.keywords) for s in samples]
    fiu = [t[: t.find(".") + 1] for t in raw]  # FIUBench's cut: "" when there is no "."
    generations = {
        "no_period": sum("." not in t for t in raw),
        "em_ours": metrics.mean_em(answer_all(vlm, imgs, qs), kws),
        "em_fiubench_cut": metrics.mean_em(fiu, kws),
    }
    lengths = [len(e["logprobs"]) for e in lp]
    short = [i for i, n in enumerate(lengths) if n < 10]
    ours = [metrics.mink(e["logprobs"]) for e in lp]
    theirs = [fiubench_weighted(e["logprobs"]) for e in lp]
    ours_pp = [metrics.mink_pp(e["logprobs"], e["mu"], e["sigma"]) for e in lp]
    theirs_pp = [fiubench_weighted(_z(e)) for e in lp]
    truth = {}
    for label, extra in (("ours", 0), ("fiubench_denominator", 1)):
        x = metrics.truth_ratio_values(
            _nll(para, extra), np.array([_nll(p, extra) for p in pert]).T
        )
        truth[label] = {"forget_truth_ratio": metrics.forget_truth_ratio(x), "x": x.tolist()}

    def mean(v: list[float], idx: list[int] | None = None) -> float | None:
        v = v if idx is None else [v[i] for i in idx]
        return float(np.mean(v)) if v else None

    return {
        "model": name,
        "answer_tokens": {
            "min": min(lengths),
            "max": max(lengths),
            "mean": mean(lengths),
            "under_10": len(short),
            "lengths": lengths,
        },
        "mink": {
            "ours": mean(ours),
            "fiubench": mean(theirs),
            "ours_short": mean(ours, short),
            "fiubench_short": mean(theirs, short),
            "fiubench_capitalised": mean([fiubench_weighted(e["logprobs"]) for e in cap]),
            "ours_capitalised": mean([metrics.mink(e["logprobs"]) for e in cap]),
        },
        "mink_pp": {
            "ours": mean(ours_pp),
            "fiubench": mean(theirs_pp),
            "ours_short": mean(ours_pp, short),
            "fiubench_short": mean(theirs_pp, short),
        },
        "truth_ratio": truth,
        "generations": generations,
        "per_pair": {"mink_ours": ours, "mink_fiubench": theirs},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/mink_short_answers.json")
    ap.add_argument("--models", default="finetune,retrain,pretrain")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    split = make_split(load_dataset(DEMO_DIR / "data"), "forget10")
    rows = [score_model(m, split.forget_set) for m in args.models.split(",")]

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    bundle = git("log", "-1", "--format=%h", "--", "assets/demo/models")
    out = {
        "command": "python -m benchmarks.mink_short_answers",
        "commit": commit,
        "bundle_commit": bundle,
        "split": "forget10",
        "forget_pairs": len(split.forget_set),
        "seconds": round(time.time() - t0, 1),
        "models": rows,
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    for r in rows:
        print(
            r["model"],
            json.dumps({k: r[k] for k in ("mink", "mink_pp", "generations")}),
            {k: v["forget_truth_ratio"] for k, v in r["truth_ratio"].items()},
            r["answer_tokens"]["under_10"],
        )


if __name__ == "__main__":
    main()
