"""Pins every metric of cagul.metrics on hand-computed cases (docs/architecture.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cagul import metrics as M


def test_cut_at_first_period():
    assert M.cut_at_first_period("Paris. And then more.") == "Paris."
    assert M.cut_at_first_period("  no period at all ") == "no period at all"
    assert M.cut_at_first_period("") == ""


def test_em_several_keywords_partial_credit():
    # 2 of 3 keywords present -> 2/3
    assert M.keyword_em("Jane lives in Paris.", ["Jane", "Paris", "London"]) == pytest.approx(2 / 3)


def test_em_case_insensitive_both_sides():
    assert M.keyword_em("JANE DOE.", ["jane doe"]) == 1.0
    assert M.keyword_em("jane doe.", ["Jane Doe"]) == 1.0


def test_em_empty_prediction_and_capped_at_one():
    assert M.keyword_em("", ["Paris"]) == 0.0
    assert M.keyword_em("a", ["a", "a"]) == 1.0


def test_em_empty_keywords_is_an_error():
    with pytest.raises(M.MetricError):
        M.keyword_em("anything", [])


def test_mean_em_and_length_check():
    assert M.mean_em(["Paris.", "no"], [["paris"], ["yes"]]) == 0.5
    with pytest.raises(M.MetricError):
        M.mean_em(["a"], [["a"], ["b"]])
    with pytest.raises(M.EmptyInputError):
        M.mean_em([], [])


def test_ape_flattens_paraphrases():
    preds = [["Paris.", "No idea.", "paris!"], ["x", "y", "z"]]
    assert M.ape(preds, [["Paris"], ["q"]]) == pytest.approx(2 / 6)


def test_rouge_l_recall_differs_from_f():
    r = M.rouge_l("the cat sat on the mat today", "the cat sat")
    assert r.recall == 1.0
    assert r.precision == pytest.approx(3 / 7)
    assert r.fmeasure == pytest.approx(0.6)
    assert M.rouge_l_recall("the cat sat on the mat today", "the cat sat") == 1.0


def test_rouge_l_uses_stemmer():
    assert M.rouge_l_recall("Cats running.", "cat run") == 1.0
    assert M.mean_rouge_l_recall(["a b", "zzz"], ["a b", "q"]) == 0.5


def test_mink_weights_on_ten_tokens():
    lp = [-0.1 * i for i in range(1, 11)]  # sorted lowest: -1.0, -0.9, ...
    # k = 1, 2, 3, 4, 5 lowest: means -1.0, -0.95, -0.9, -0.85, -0.8
    expected = (
        0.3 * math.exp(-1.0)
        + 0.3 * math.exp(-0.95)
        + 0.2 * math.exp(-0.9)
        + 0.1 * math.exp(-0.85)
        + 0.1 * math.exp(-0.8)
    )
    assert M.mink(lp) == pytest.approx(expected)
    assert M.mink_scores(lp)[1] == pytest.approx(math.exp(-0.95))
    assert sum(M.MINK_WEIGHTS) == pytest.approx(1.0)


def test_mink_short_answer_uses_at_least_one_token():
    # n = 3: floor(r*3) is 0 for r < 1/3 and 1 for r = .4, .5 -> always the single lowest.
    assert M.mink([-0.2, -2.0, -0.5]) == pytest.approx(math.exp(-2.0))
    assert M.mink([-0.7] * 7) == pytest.approx(math.exp(-0.7))  # constant -> weights sum to 1


def test_mink_rejects_empty_and_nan():
    with pytest.raises(M.EmptyInputError):
        M.mink([])
    with pytest.raises(M.MetricError):
        M.mink([float("nan")])


def test_vocab_moments_bernoulli_closed_form():
    p, q = 0.8, 0.2
    row = [math.log(p), math.log(q), -math.inf]  # a masked vocabulary entry contributes 0
    mu, sigma = M.vocab_moments([row])
    assert mu[0] == pytest.approx(p * math.log(p) + q * math.log(q))
    assert sigma[0] == pytest.approx(math.sqrt(p * q) * abs(math.log(p) - math.log(q)))
    # For two outcomes z = sqrt(q/p) for the likely token and -sqrt(p/q) for the other.
    z = M.mink_pp_z([math.log(p), math.log(q)], [mu[0]] * 2, [sigma[0]] * 2)
    assert z == pytest.approx([0.5, -2.0])


def test_mink_pp_values():
    p, q = 0.8, 0.2
    mu, sigma = M.vocab_moments([[math.log(p), math.log(q)]] * 2)
    assert M.mink_pp([math.log(p)], mu[:1], sigma[:1]) == pytest.approx(math.exp(0.5))
    assert M.mink_pp([math.log(p), math.log(q)], mu, sigma) == pytest.approx(math.exp(-2.0))
    assert M.mink_pp_raw([math.log(p), math.log(q)], mu, sigma) == pytest.approx(-2.0)
    with pytest.raises(M.MetricError):
        M.mink_pp([0.0, 0.0], [0.0], [1.0])


def test_truth_ratio_values_and_aggregators():
    x = M.truth_ratio_values([1.0, 2.0], [[2.0, 4.0], [1.0]])
    assert x == pytest.approx([math.exp(2.0), math.exp(-1.0)])
    assert M.forget_truth_ratio(x) == pytest.approx((math.exp(-2.0) + math.exp(-1.0)) / 2)
    assert M.retain_truth_ratio(x) == pytest.approx((1 - math.exp(-2.0)) / 2)


def test_truth_ratio_directions():
    # Indifferent model: forget TR is 1 (ideal forgetting), retain TR is 0.
    assert M.forget_truth_ratio([1.0, 1.0]) == 1.0
    assert M.retain_truth_ratio([1.0]) == 0.0
    # Strongly prefers the truth: forget TR -> 0, retain TR -> 1.
    assert M.forget_truth_ratio([1e6]) == pytest.approx(1e-6)
    assert M.retain_truth_ratio([1e6]) == pytest.approx(1.0, abs=1e-5)
    # Strongly prefers a wrong answer: forget TR -> 0 (symmetric), retain TR clipped at 0.
    assert M.forget_truth_ratio([1e-6]) == pytest.approx(1e-6)
    assert M.retain_truth_ratio([1e-6]) == 0.0
    # x and 1/x are the same for the forget aggregate.
    assert M.forget_truth_ratio([4.0]) == M.forget_truth_ratio([0.25]) == 0.25


def test_truth_ratio_errors():
    with pytest.raises(M.MetricError):
        M.truth_ratio_values([1.0], [[1.0], [2.0]])
    with pytest.raises(M.MetricError):
        M.truth_ratio_values([1.0], [[]])
    with pytest.raises(M.EmptyInputError):
        M.forget_truth_ratio([])


def test_forget_quality_ks():
    assert M.forget_quality([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    # Disjoint samples of 10 and 10: exact two-sided p = 2 / C(20, 10).
    p = M.forget_quality(np.arange(10), np.arange(100, 110))
    assert p == pytest.approx(2 / math.comb(20, 10))
    # Invariant under x -> 1/x (FIUBench stores the reciprocal).
    a, b = np.array([0.5, 1.2, 3.0, 0.9]), np.array([2.0, 5.0, 0.7, 8.0, 1.1])
    assert M.forget_quality(a, b) == pytest.approx(M.forget_quality(1 / a, 1 / b))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes, there is.", "yes"),
        ("YES", "yes"),
        ("No.", "no"),
        ("There is not a cat in the image.", "no"),
        ("Yes. But no.", "yes"),
        ("Nope", None),
        ("", None),
    ],
)
def test_parse_yes_no(text, expected):
    assert M.parse_yes_no(text) == expected


def test_pope_metrics():
    preds = ["Yes.", "No, there is not.", "yes", "I think so", "There is no cat."]
    gold = ["yes", "no", "no", "yes", "no"]
    m = M.pope_metrics(preds, gold)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert m["yes_ratio"] == pytest.approx(2 / 5)
    assert M.pope_accuracy(preds, gold) == m["accuracy"]


def test_mme_acc_plus():
    preds = ["Yes", "No", "Yes", "Yes"]
    gold = ["yes", "no", "yes", "no"]
    groups = ["img1", "img1", "img2", "img2"]
    m = M.mme_metrics(preds, gold, groups, subsets=["color", "color", "count", "count"])
    assert m["acc"] == 0.75
    assert m["acc_plus"] == 0.5
    assert m["by_subset"]["color"] == {"acc": 1.0, "acc_plus": 1.0, "score": 200.0}
    assert m["by_subset"]["count"] == {"acc": 0.5, "acc_plus": 0.0, "score": 50.0}
    assert m["score"] == 250.0
    with pytest.raises(M.EmptyInputError):
        M.mme_metrics([], [], [])
