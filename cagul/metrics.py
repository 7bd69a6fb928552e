"""Evaluation metrics as pure functions (no model, no torch); docs/metrics.md has the details.

The evaluation code computes generations and token log-probabilities; this module turns them
into numbers. Inputs that are arrays accept anything :func:`numpy.asarray` understands (lists,
NumPy arrays, CPU torch tensors).

Definitions (FIUBench / TOFU), and where this module deviates from FIUBench's code (checked in
SaFoLab-WISC/FIUBench: ``evaluate_util.py``, ``data_module.py``; measured on the demo bundle by
``python -m benchmarks.mink_short_answers``, ``benchmarks/results/mink_short_answers.json``):

- **Generation cut**: :func:`cut_at_first_period` keeps the text up to and including the first
  "." and strips whitespace. *Deviation*: a generation with no "." is kept whole here;
  FIUBench's ``run_generation`` takes ``s[:s.find(".") + 1]``, which is the empty string when
  there is no ".", so such an answer scores EM 0 and ROUGE 0 there.
- **Capitalisation**: *deviation*: FIUBench's ``MMDatasetQA.__getitem__`` applies
  ``str.capitalize()`` (first letter upper, *every other letter lower*) to the question and to a
  string answer (the answer, the paraphrased answer; not the perturbed-answer lists) before
  prompting, scoring ROUGE against it and computing log-probs. We score the text as written. On
  the bundle's forget10 set it changes 3 of 21 answers ("Virginialand General Hospital." →
  "Virginialand general hospital.") and no question; the Finetune model's MinK on the
  capitalised text is 0.857 instead of 0.999.
- **ROUGE-L**: recall of ``rouge_score``'s ``rougeL`` with the Porter stemmer, against the
  ground-truth answer. :func:`rouge_l` also returns precision and F for comparison.
- **EM**: per pair ``min(1, Σ_k [k.lower() in pred.lower()] / |K|)``. An empty keyword list is
  an error (:class:`MetricError`), not a score.
- **APE**: EM of the answers to the paraphrased questions, against the original keywords,
  averaged over every (pair, paraphrase) sample — FIUBench flattens the paraphrases into
  samples; with 3 paraphrases per pair this equals the mean of per-pair means.
- **MinK** (FIUBench): ℓ = the answer tokens' log-probs; ``s_r = exp(mean of the ⌊r·n⌋ lowest
  ℓ)`` for r ∈ {.1,.2,.3,.4,.5}, weighted {.3,.3,.2,.1,.1}. *Deviation*: FIUBench's code takes
  the mean of an empty slice when ⌊r·n⌋ = 0 and silently drops that NaN term without
  renormalising, so an answer of n < 10 tokens keeps a total weight of 0.7 (n = 5-9), 0.4 (n =
  4), 0.2 (n = 3), 0.1 (n = 2) or 0 (n = 1). Here at least one token is always used, so the
  weights always sum to 1 and the score is in (0, 1]. Every forget10 answer of the bundle has
  3-9 tokens: the Finetune model's forget MinK is 0.999 here and 0.428 by FIUBench's rule
  (Retrain 0.018 against 0.011). open-unlearning's MinK is another convention again: one ratio k
  (0.4 in its TOFU and MUSE configs), ``−mean`` of the lowest ``max(1, int(k·n))`` log-probs (no
  exp, no weighted ratios), reported as a forget-vs-holdout AUC.
- **MinK++** (FIUBench's variant of Min-K%++): z = (ℓ − μ) / σ with μ = Σ_v p_v log p_v and σ² =
  Σ_v p_v (log p_v)² − μ² of the model's next-token distribution at each position
  (:func:`vocab_moments`), then the same exp/lowest-k/weights as MinK (with the same
  at-least-one-token deviation: Finetune 1.001 here, 0.429 by FIUBench's rule). Following
  FIUBench the exp is kept, so the value is positive but not bounded by 1 (z can exceed 0). The
  original Min-K%++ paper reports the plain mean of the lowest z instead: :func:`mink_pp_raw`.
- **Truth ratio**: ``x = exp(L_pert − L_para)``, L = per-token NLL (of the paraphrased answer;
  of each perturbed answer, then averaged over them). x > 1 means the true answer is more likely
  than the wrong ones. *Deviation*: the per-token mean here is over the answer tokens
  (``cagul.answering.answer_logprobs``, the end token excluded); FIUBench divides the answer
  tokens' NLL sum by the label count, which includes one prompt token (its label mask leaves the
  last prompt token unmasked), so over the same n answer tokens its L is n/(n+1) of ours. Forget
  truth ratio of the bundle's Finetune model: 0.563 here, 0.613 with FIUBench's denominator.
  Note FIUBench's code stores the reciprocal ``R = exp(L_para − L_pert) = 1/x``; the aggregators
  below are written for x: forget TR = mean(min(x, 1/x)) (1 = cannot tell true from false),
  retain TR = mean(max(0, 1 − 1/x)) (high = prefers the truth), both in [0, 1].
- **Forget quality**: p-value of the two-sample KS test between the forget set's x values and
  the Retrain model's (scipy ``ks_2samp``, two-sided). The KS statistic is invariant under the
  monotone map x ↦ 1/x, so it matches FIUBench's value computed on R.
- **POPE**: accuracy (plus precision, recall, F1, yes-ratio with "yes" as positive) of parsed
  yes/no answers; unparseable answers count as wrong.
- **MME**: acc = fraction of questions right; acc+ = fraction of images (groups) whose questions
  are all right (MME has two per image). Rates in [0, 1]; MME's published "score" is 100·(acc +
  acc+) per subtask, see :func:`mme_metrics`.
- **Yes/no parsing** (:func:`parse_yes_no`): POPE's rule — the first sentence is "no" if it
  contains the word "no" or "not", otherwise "yes" if it contains "yes"; anything else is
  unparseable (``None``), where POPE's script would count it as "yes".

Aggregators raise :class:`EmptyInputError` on empty input rather than return NaN; callers
report an empty set (e.g. D_np in the identity setting) as ``null``.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.stats import ks_2samp

MINK_RATIOS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
MINK_WEIGHTS: tuple[float, ...] = (0.3, 0.3, 0.2, 0.1, 0.1)


class MetricError(ValueError):
    """Invalid metric input (mismatched lengths, empty keyword list, NaN log-probs …)."""


class EmptyInputError(MetricError):
    """An aggregate was asked of an empty set."""


def _mean(values: Iterable[float], what: str) -> float:
    vals = list(values)
    if not vals:
        raise EmptyInputError(f"{what}: no samples")
    return float(np.mean(vals))


def _same_length(a: Sequence[Any], b: Sequence[Any], what: str) -> None:
    if len(a) != len(b):
        raise MetricError(f"{what}: {len(a)} predictions but {len(b)} references")


# ----------------------------------------------------------------------------- text


def cut_at_first_period(text: str) -> str:
    """Text up to and including the first "." (all of it if there is none), stripped."""
    i = text.find(".")
    return (text if i < 0 else text[: i + 1]).strip()


@dataclass(frozen=True)
class RougeL:
    """ROUGE-L precision, recall and F-measure."""

    precision: float
    recall: float
    fmeasure: float


@lru_cache(maxsize=1)
def _scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> RougeL:
    """ROUGE-L of ``prediction`` against ``reference`` (rouge-score, Porter stemmer)."""
    s = _scorer().score(reference, prediction)["rougeL"]  # score(target, prediction)
    return RougeL(float(s.precision), float(s.recall), float(s.fmeasure))


def rouge_l_recall(prediction: str, reference: str) -> float:
    """ROUGE-L recall (the FIUBench metric)."""
    return rouge_l(prediction, reference).recall


def mean_rouge_l_recall(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L recall over pairs."""
    _same_length(predictions, references, "rouge_l")
    return _mean(
        (rouge_l_recall(p, r) for p, r in zip(predictions, references, strict=True)), "rouge_l"
    )


def keyword_em(prediction: str, keywords: Sequence[str]) -> float:
    """FIUBench keyword EM of one prediction: ``min(1, Σ [k in pred] / |K|)``, case-insensitive."""
    if not keywords:
        raise MetricError("keyword_em: empty keyword list")
    pred = prediction.lower()
    return min(1.0, sum(k.lower() in pred for k in keywords) / len(keywords))


def mean_em(predictions: Sequence[str], keywords: Sequence[Sequence[str]]) -> float:
    """Mean keyword EM over pairs."""
    _same_length(predictions, keywords, "em")
    return _mean((keyword_em(p, k) for p, k in zip(predictions, keywords, strict=True)), "em")


def ape(
    paraphrase_predictions: Sequence[Sequence[str]], keywords: Sequence[Sequence[str]]
) -> float:
    """APE: EM of the answers to each pair's paraphrased questions, against the pair's
    keywords, averaged over all (pair, paraphrase) samples.
    """
    _same_length(paraphrase_predictions, keywords, "ape")
    return _mean(
        (
            keyword_em(pred, kw)
            for preds, kw in zip(paraphrase_predictions, keywords, strict=True)
            for pred in preds
        ),
        "ape",
    )


# ----------------------------------------------------------------------------- MinK


def _as_1d(x: Any, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise EmptyInputError(f"{what}: no tokens")
    if not np.all(np.isfinite(arr)):
        raise MetricError(f"{what}: non-finite values")
    return arr


def _lowest_k_scores(values: np.ndarray, ratios: Sequence[float]) -> list[float]:
    ordered = np.sort(values)
    return [float(np.mean(ordered[: max(1, math.floor(r * len(ordered)))])) for r in ratios]


def mink_scores(token_log_probs: Any) -> list[float]:
    """``s_r = exp(mean of the max(1, ⌊r·n⌋) lowest log-probs)`` for each r in MINK_RATIOS."""
    lp = _as_1d(token_log_probs, "mink")
    return [math.exp(m) for m in _lowest_k_scores(lp, MINK_RATIOS)]


def mink(token_log_probs: Any) -> float:
    """FIUBench MinK: Σ_r w_r · s_r (higher = more memorised), in (0, 1]."""
    return float(
        sum(w * s for w, s in zip(MINK_WEIGHTS, mink_scores(token_log_probs), strict=True))
    )


def vocab_moments(log_probs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per position, the mean μ and std σ of log p under p: inputs ``(n, V)`` log-softmax rows.

    μ = Σ_v p_v log p_v, σ = sqrt(Σ_v p_v (log p_v)² − μ²).
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 2:
        raise MetricError(f"vocab_moments: expected (n, V) log-probs, got shape {lp.shape}")
    p = np.exp(lp)
    # Masked-out vocabulary entries (log p = −inf) contribute 0, not NaN from 0·(−inf).
    safe = np.where(p > 0, lp, 0.0)
    mu = (p * safe).sum(-1)
    second = (p * safe * safe).sum(-1)
    sigma = np.sqrt(np.maximum(second - mu * mu, 0.0))
    return mu, sigma


def mink_pp_z(token_log_probs: Any, mu: Any, sigma: Any, eps: float = 1e-8) -> np.ndarray:
    """Min-K%++ z-scores ``(ℓ − μ) / σ`` per token (σ floored at ``eps``)."""
    lp = _as_1d(token_log_probs, "mink_pp")
    m, s = _as_1d(mu, "mink_pp mu"), _as_1d(sigma, "mink_pp sigma")
    if not lp.shape == m.shape == s.shape:
        raise MetricError("mink_pp: token_log_probs, mu and sigma must have the same length")
    return (lp - m) / np.maximum(s, eps)


def mink_pp(token_log_probs: Any, mu: Any, sigma: Any) -> float:
    """FIUBench MinK++: Σ_r w_r · exp(mean of the lowest max(1, ⌊r·n⌋) z-scores)."""
    z = mink_pp_z(token_log_probs, mu, sigma)
    return float(
        sum(
            w * math.exp(m)
            for w, m in zip(MINK_WEIGHTS, _lowest_k_scores(z, MINK_RATIOS), strict=True)
        )
    )


def mink_pp_raw(token_log_probs: Any, mu: Any, sigma: Any, ratio: float = 0.2) -> float:
    """Original Min-K%++ (Zhang et al. 2024): mean of the lowest ⌊ratio·n⌋ (≥ 1) z-scores."""
    z = mink_pp_z(token_log_probs, mu, sigma)
    return _lowest_k_scores(z, (ratio,))[0]


# ----------------------------------------------------------------------------- truth ratio


def truth_ratio_values(
    paraphrased_nll: Sequence[float] | Any, perturbed_nll: Sequence[Sequence[float]] | Any
) -> np.ndarray:
    """``x_i = exp(mean_j L_pert[i, j] − L_para[i])`` from per-token NLLs.

    ``perturbed_nll`` is one row per pair (rows may differ in length).
    """
    para = np.asarray(paraphrased_nll, dtype=np.float64).reshape(-1)
    rows = list(perturbed_nll)
    if len(rows) != len(para):
        raise MetricError(f"truth_ratio: {len(para)} paraphrased but {len(rows)} perturbed rows")
    if any(len(r) == 0 for r in rows):
        raise MetricError("truth_ratio: a pair has no perturbed answers")
    pert = np.array([float(np.mean(np.asarray(r, dtype=np.float64))) for r in rows])
    return np.exp(pert - para)


def forget_truth_ratio(x: Any) -> float:
    """Forget aggregate: mean(min(x, 1/x)); 1 when true and false answers are equally likely."""
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise EmptyInputError("forget_truth_ratio: no samples")
    return float(np.mean(np.minimum(arr, 1.0 / arr)))


def retain_truth_ratio(x: Any) -> float:
    """Retain aggregate: mean(max(0, 1 − 1/x)); near 1 when the truth is strongly preferred."""
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise EmptyInputError("retain_truth_ratio: no samples")
    return float(np.mean(np.maximum(0.0, 1.0 - 1.0 / arr)))


def forget_quality(forget_x: Any, retrain_x: Any) -> float:
    """KS-test p-value of the forget set's truth-ratio values against the Retrain model's."""
    a = np.asarray(forget_x, dtype=np.float64).reshape(-1)
    b = np.asarray(retrain_x, dtype=np.float64).reshape(-1)
    if a.size == 0 or b.size == 0:
        raise EmptyInputError("forget_quality: both samples must be non-empty")
    return float(ks_2samp(a, b).pvalue)


# ----------------------------------------------------------------------------- yes/no probes

_WORD = re.compile(r"[a-z']+")


def parse_yes_no(text: str) -> str | None:
    """ "yes", "no" or None for an answer, by POPE's first-sentence rule (module docstring)."""
    words = set(_WORD.findall(cut_at_first_period(text).lower()))
    if words & {"no", "not", "isn't", "aren't", "don't", "doesn't"}:
        return "no"
    if "yes" in words:
        return "yes"
    return None


def pope_metrics(predictions: Sequence[str], answers: Sequence[str]) -> dict[str, float]:
    """POPE accuracy, precision, recall, F1 and yes-ratio ("yes" is the positive class)."""
    _same_length(predictions, answers, "pope")
    if not answers:
        raise EmptyInputError("pope: no samples")
    parsed = [parse_yes_no(p) for p in predictions]
    gold = [a.strip().lower() for a in answers]
    tp = sum(p == "yes" and g == "yes" for p, g in zip(parsed, gold, strict=True))
    fp = sum(p == "yes" and g == "no" for p, g in zip(parsed, gold, strict=True))
    fn = sum(p != "yes" and g == "yes" for p, g in zip(parsed, gold, strict=True))
    correct = sum(p == g for p, g in zip(parsed, gold, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": correct / len(gold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": sum(p == "yes" for p in parsed) / len(gold),
    }


def pope_accuracy(predictions: Sequence[str], answers: Sequence[str]) -> float:
    """POPE accuracy alone."""
    return pope_metrics(predictions, answers)["accuracy"]


def mme_metrics(
    predictions: Sequence[str],
    answers: Sequence[str],
    groups: Sequence[str],
    subsets: Sequence[str] | None = None,
) -> dict[str, Any]:
    """MME acc and acc+ overall and per subset.

    ``groups`` names each question's image (questions sharing a group must all be right for
    acc+). Returns ``{"acc", "acc_plus", "score", "by_subset": {s: {"acc", "acc_plus",
    "score"}}}`` where ``score`` is MME's 100·(acc + acc+) (summed over subsets overall).
    """
    _same_length(predictions, answers, "mme")
    _same_length(predictions, groups, "mme groups")
    if subsets is not None:
        _same_length(predictions, subsets, "mme subsets")
    if not answers:
        raise EmptyInputError("mme: no samples")
    right = [
        parse_yes_no(p) == a.strip().lower() for p, a in zip(predictions, answers, strict=True)
    ]
    subs = list(subsets) if subsets is not None else ["all"] * len(right)

    def acc_pair(idx: list[int]) -> tuple[float, float]:
        by_group: dict[str, bool] = defaultdict(lambda: True)
        for i in idx:
            by_group[groups[i]] &= right[i]
        return sum(right[i] for i in idx) / len(idx), sum(by_group.values()) / len(by_group)

    acc, acc_plus = acc_pair(list(range(len(right))))
    by_subset = {}
    for s in sorted(set(subs)):
        a, ap = acc_pair([i for i, x in enumerate(subs) if x == s])
        by_subset[s] = {"acc": a, "acc_plus": ap, "score": 100.0 * (a + ap)}
    return {
        "acc": acc,
        "acc_plus": acc_plus,
        "score": sum(v["score"] for v in by_subset.values()),
        "by_subset": by_subset,
    }
