"""Membership inference on the forget set: can MinK++ still tell the forgotten people's
private answers from those of people the model never saw?

Score: FIUBench MinK++ of each (photo, question, answer) (`cagul.metrics.mink_pp`, higher =
more memorised) under a model. AUC: the probability that a forget pair scores above a
held-out pair (Mann-Whitney, ties count half). Before unlearning the base model memorised the
forget people, so the AUC is high; after, an ideal unlearning is indistinguishable from never
having trained on them: AUC about 0.5 (Retrain is the reference).

Held-out people: the dataset generator's people drawn with another seed (`holdout_people`),
written to a folder of the caller's choosing; only their pairs in the forget set's categories
are used, so both sides ask the same kinds of questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cagul import metrics


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(score of a positive > score of a negative), ties counting 1/2 (ROC AUC)."""
    if not positive or not negative:
        raise ValueError("auc needs at least one positive and one negative score")
    pos = np.asarray(positive, dtype=float)[:, None]
    neg = np.asarray(negative, dtype=float)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def mink_pp_scores(model, vlm, samples: Sequence) -> list[float]:
    """MinK++ of each sample's answer under `model` (None: the base `vlm`)."""
    images = [s.image_path for s in samples]
    questions = [s.question for s in samples]
    answers = [s.answer for s in samples]
    if model is None:
        from cagul.answering import answer_logprobs

        rows = answer_logprobs(vlm, images, questions, answers)
    else:
        rows = model.answer_logprobs(images, questions, answers)
    return [metrics.mink_pp(r["logprobs"], r["mu"], r["sigma"]) for r in rows]


def holdout_people(
    out_dir: str | Path, n: int, seed: int, categories: Sequence[str], image_size: int = 112
) -> list:
    """Samples (`cagul.data.splits.Sample`) of `n` generated people never trained on, only
    their pairs in `categories`; their faces are written under `out_dir`."""
    from cagul.data.splits import sample_of
    from cagul.data.synthetic import make_individuals, write_faces

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    people = make_individuals(n, seed)
    write_faces(people, out, image_size)  # sets each person's image_file
    return [
        sample_of(ind, j)
        for ind in people
        for j, qa in enumerate(ind.qa_list)
        if qa.category in set(categories)
    ]


def membership_auc(model, vlm, forget: Sequence, holdout: Sequence) -> dict:
    """MinK++ AUC of forget pairs against held-out pairs under `model` (None: base)."""
    f, h = mink_pp_scores(model, vlm, forget), mink_pp_scores(model, vlm, holdout)
    return {
        "auc": auc(f, h),
        "forget_mink_pp": float(np.mean(f)),
        "holdout_mink_pp": float(np.mean(h)),
        "n_forget": len(f),
        "n_holdout": len(h),
    }
