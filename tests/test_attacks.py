"""The worst-case audit (issue 33) on a tiny Qwen2.5-VL: outcomes of answers, the
differentiable processor, and the PGD attacks (each lowers its objective, respects its eps
exactly in 8-bit pixel space, and repeats by seed), plus `audit --attack pgd` on the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cagul.attacks.outcome import classify, outcome_rates
from cagul.attacks.pgd import Budget, EpsError, parse_eps, pgd, quantise
from cagul.attacks.pixels import native_image, to_tensor
from cagul.attacks.worst_case import AttackSettings, answer_recovery, gate_evasion
from cagul.cli import main
from cagul.data import generate_dataset, load_dataset, make_split
from cagul.methods import get_method
from cagul.methods.cagul.config import CagulMethodConfig, CagulTrainingArguments
from cagul.methods.lora import LoraArguments

PERSON = "00000001"


# ---- outcomes -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Lupus.", "truth"),
        ("I cannot say, but it is lupus.", "truth"),  # the keyword wins over refusal wording
        ("I cannot answer this question.", "refusal"),
        ("I\u2019m afraid I can\u2019t answer that", "refusal"),  # apostrophes, no period
        ("I cannot answer that information.", "refusal"),  # a tiny model's near-copy
        ("Heart failure.", "other"),  # fabrication
        ("This person has a heart condition.", "other"),
        ("", "other"),
    ],
)
def test_each_answer_is_truth_refusal_or_other(answer, expected):
    assert classify(answer, ["lupus"]) == expected


def test_outcome_rates_cover_every_outcome_and_refuse_unknown_ones():
    assert outcome_rates(["truth", "other", "other", "refusal"]) == {
        "truth": 0.25,
        "refusal": 0.25,
        "other": 0.5,
    }
    assert outcome_rates([]) == {"truth": 0.0, "refusal": 0.0, "other": 0.0}
    with pytest.raises(ValueError, match="unknown outcomes"):
        outcome_rates(["leak"])


# ---- budgets and rounding -------------------------------------------------------------------
def test_eps_parses_fractions_and_refuses_what_cannot_be_a_budget():
    got = parse_eps("4/255, 8/255,0.01")
    assert [b.label for b in got] == ["4/255", "8/255", "0.01"]
    assert [b.levels for b in got] == [4, 8, 2]
    for bad, says in [
        ("", "give budgets"),
        ("4/255,", "give budgets"),
        ("x", "not a budget"),
        ("4/0", "not a budget"),
        ("-1/255", "not a budget"),
        ("0", "positive"),
        ("0.5/255", "below one pixel level"),
        ("4", "exceeds"),
        ("4/255,4/255", "twice"),
        ("nan", "positive"),
    ]:
        with pytest.raises(EpsError, match=says):
            parse_eps(bad)


def test_quantise_keeps_every_pixel_within_eps_levels_and_in_range():
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 256, (2, 3, 8, 8), generator=gen).float() / 255
    far = x0 + (torch.rand(x0.shape, generator=gen) - 0.5)  # far outside the ball and [0, 1]
    q = quantise(x0, far, Budget("3/255", 3 / 255))
    levels = q * 255
    assert torch.equal(levels, torch.round(levels))
    assert (levels - x0 * 255).abs().max() <= 3 and q.min() >= 0 and q.max() <= 1


def test_pgd_lowers_a_simple_objective_within_the_budget_and_repeats_by_seed():
    x0 = torch.full((1, 3, 4, 4), 0.5)
    target = torch.zeros_like(x0)

    def objective(x):
        return ((x - target) ** 2).flatten(1).sum(1)

    budget = Budget("8/255", 8 / 255)
    a = pgd(x0, objective, budget, steps=5, seed=1)
    b = pgd(x0, objective, budget, steps=5, seed=1)
    assert a.final[0] < a.initial[0]
    assert torch.equal(a.x, b.x)
    assert (a.x * 255 - x0 * 255).abs().max() <= 8 + 1e-4


# ---- the differentiable processor -----------------------------------------------------------
def test_pixel_map_reproduces_every_familys_processor(tiny_vlms, family):
    vlm = tiny_vlms[family]
    rng = np.random.default_rng(0)
    odd = Image.fromarray((rng.random((130, 100, 3)) * 255).astype("uint8"))
    img, pixel_map = native_image(vlm, odd)  # resized to a size the processor keeps
    expected = vlm._process_images([img])[0]["pixel_values"]
    x = to_tensor(img).requires_grad_(True)
    got = pixel_map(x)
    assert torch.allclose(got, expected.float(), atol=1e-4)
    got.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# ---- the attacks on trained artifacts -------------------------------------------------------
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("attack_data")
    generate_dataset(out, n_individuals=4, seed=1, n_train_scenes=2, n_test_scenes=2)
    return out


@pytest.fixture(scope="module")
def unlearned(tiny_vlms, data_dir, tmp_path_factory):
    """A CAGUL and a PO+GD (LoRA) model that forget person 00000001, tiny settings."""
    vlm = tiny_vlms["qwen2_5_vl"]
    split = make_split(load_dataset(data_dir), [PERSON], "private")
    root = tmp_path_factory.mktemp("attack_out")
    po = LoraArguments(
        epochs=2, batch_size=4, lr=5e-2, probe_size=4, check_every=1, early_stop=False
    )
    cagul = CagulMethodConfig(
        k=2,
        training=CagulTrainingArguments(
            disc_epochs=2,
            epochs=1,
            views=1,
            batch_size=8,
            disc_batch_size=8,
            encoder_views=0,
            max_negatives=2,
        ),
    )
    out = {}
    for name, cfg in (("po_gd", po), ("cagul", cagul)):
        method = get_method(name)
        method.train(vlm, split, cfg, out_dir=root / name, data_dir=data_dir)
        out[name] = (method.load(vlm, root / name), str(root / name))  # as an auditor loads it
    return out, split


def _items(split, n=2):
    return [
        {
            "image": s.image_path,
            "question": s.question,
            "keywords": list(s.keywords),
            "target": s.answer,
        }
        for s in split.forget_set[:n]
    ]


def _within(images, items, levels):
    for adv, it in zip(images, items, strict=True):
        orig = np.asarray(Image.open(it["image"]).convert("RGB"), dtype=np.int16)
        diff = np.abs(np.asarray(adv, dtype=np.int16) - orig).max()
        assert diff <= levels
    return True


def test_gate_evasion_lowers_the_discriminator_margin_within_eps_and_repeats(tiny_vlms, unlearned):
    models, split = unlearned
    model, vlm = models["cagul"][0], tiny_vlms["qwen2_5_vl"]
    items, budget = _items(split), Budget("8/255", 8 / 255)
    settings = AttackSettings(steps=3, seed=0)
    a = gate_evasion(model, vlm, items, budget, settings)
    photo = a["per_photo"][0]
    assert photo["margin_after"] < photo["margin_before"]
    assert _within(a["images"], items, 8)
    b = gate_evasion(model, vlm, items, budget, settings)
    assert [np.asarray(i).tobytes() for i in a["images"]] == [
        np.asarray(i).tobytes() for i in b["images"]
    ]
    assert a["per_photo"] == b["per_photo"]
    assert 0 <= a["evaded"] <= 1 and a["n"] == len(items)
    c = gate_evasion(model, vlm, items, budget, AttackSettings(steps=3, seed=1))
    assert np.asarray(c["images"][0]).tobytes() != np.asarray(a["images"][0]).tobytes()


@pytest.mark.parametrize("method", ["cagul", "po_gd"])
def test_answer_recovery_raises_the_true_answers_likelihood_within_eps(
    tiny_vlms, unlearned, method
):
    models, split = unlearned
    model, vlm = models[method][0], tiny_vlms["qwen2_5_vl"]
    assert model.method == method
    items = _items(split)
    out = answer_recovery(model, vlm, items, Budget("4/255", 4 / 255), AttackSettings(steps=3))
    assert out["nll_after"] < out["nll_before"]
    for row in out["rows"]:
        assert row["nll_after"] <= row["nll_before"]
        assert row["outcome"] in ("truth", "refusal", "other")
        assert row["leaked"] == (row["em"] > 0) == (row["outcome"] == "truth")
    assert _within(out["images"], items, 4)
    if method == "cagul":
        return  # repeatability is the same PGD code: checked on the gate and on PO+GD (cost)
    again = answer_recovery(model, vlm, items, Budget("4/255", 4 / 255), AttackSettings(steps=3))
    assert [r["nll_after"] for r in again["rows"]] == [r["nll_after"] for r in out["rows"]]


# ---- the CLI --------------------------------------------------------------------------------
def test_audit_attack_adds_the_worst_case_per_budget(
    tiny_dirs, unlearned, data_dir, tmp_path, capsys
):
    models, split = unlearned
    s = split.forget_set[0]
    prompts = tmp_path / "p.jsonl"
    lines = [
        {"image": PERSON, "question": s.question, "keywords": list(s.keywords), "target": s.answer},
        {"image": PERSON, "question": "Who is this?", "keywords": ["x"]},
    ]
    prompts.write_text("".join(json.dumps(p) + "\n" for p in lines))
    argv = [
        "audit",
        "--model",
        tiny_dirs["qwen2_5_vl"],
        "--data",
        str(data_dir),
        "--prompts",
        str(prompts),
        "--adapter",
        models["cagul"][1],
    ]
    assert main([*argv, "--attack", "pgd", "--eps", "2/255,8/255", "--steps", "2"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert "worst case" in captured.err  # the progress bar
    assert {r["outcome"] for r in out["rows"]} <= {"truth", "refusal", "other"}
    assert set(out["outcomes"]) == {"truth", "refusal", "other"}
    wc = out["worst_case"]
    assert (wc["attack"], wc["steps"]) == ("pgd", 2)
    assert [b["eps"] for b in wc["budgets"]] == ["2/255", "8/255"]
    for b in wc["budgets"]:
        assert b["gate_evasion"]["photos"] == 1  # both prompts show the same photo
        rec = b["answer_recovery"]
        assert [r["target_source"] for r in rec["rows"]] == ["prompt", "base"]
        assert rec["rows"][1]["target"] == out["rows"][1]["base_answer"]
    for bad in ("0", "4/0", "1/1000", "abc"):
        assert main([*argv, "--attack", "pgd", "--eps", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and "--eps" in err and "Traceback" not in err
    assert main([*argv, "--eps", "4/255"]) == 2
    assert "needs --attack" in capsys.readouterr().err


# ---- membership inference -------------------------------------------------------------------
def test_auc_is_the_share_of_pairs_ranked_right_with_ties_half():
    from cagul.attacks.membership import auc

    assert auc([3, 4], [1, 2]) == 1.0
    assert auc([1, 2], [3, 4]) == 0.0
    assert auc([1, 3], [2, 2]) == 0.5  # one pair right, one wrong, per negative
    assert auc([2], [2]) == 0.5
    with pytest.raises(ValueError, match="at least one"):
        auc([], [1])


def test_membership_auc_scores_held_out_people_of_the_forget_categories(
    tiny_vlms, unlearned, tmp_path
):
    from cagul.attacks.membership import holdout_people, membership_auc

    models, split = unlearned
    holdout = holdout_people(tmp_path, 2, seed=5, categories=["health"])
    assert holdout and {s.category for s in holdout} == {"health"}
    assert all(Path(s.image_path).is_file() for s in holdout)
    assert not {s.unique_id + s.name for s in holdout} & {
        s.unique_id + s.name for s in split.forget_set
    }
    vlm = tiny_vlms["qwen2_5_vl"]
    before = membership_auc(None, vlm, split.forget_set[:3], holdout[:3])
    after = membership_auc(models["po_gd"][0], vlm, split.forget_set[:3], holdout[:3])
    for m in (before, after):
        assert 0 <= m["auc"] <= 1 and (m["n_forget"], m["n_holdout"]) == (3, 3)
    # The LoRA weights change the forget answers' scores (the "after" is a different model).
    assert after["forget_mink_pp"] != before["forget_mink_pp"]
