"""CAGUL on tiny models of every family: selection, adapters (files, fingerprint, tampering),
training, gating and stacking. What it does to a model that knows facts is tested on the demo
bundle (tests/test_readme.py runs the README's tour on the shipped adapter)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from cagul.cli import main
from cagul.data import generate_dataset, load_dataset, make_split
from cagul.methods.cagul.adapter import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    AdapterError,
    ArtifactMismatchError,
    ArtifactTamperedError,
    CagulAdapter,
    base_fingerprint,
    plan,
)
from cagul.methods.cagul.config import CagulMethodConfig, CagulTrainingArguments
from cagul.methods.cagul.selection import SelectionError, select_tokens
from cagul.methods.cagul.train import train_cagul
from cagul.models import load_vlm

# Clean encoder samples only: the perturbed-view path has its own tests below.
FAST = CagulTrainingArguments(
    disc_epochs=3, epochs=3, views=3, batch_size=8, disc_batch_size=4, lr=3e-3, encoder_views=0
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cagul_data")
    generate_dataset(out, n_individuals=6, seed=1, n_train_scenes=4, n_test_scenes=4)
    return out


@pytest.fixture(scope="module")
def split(data_dir):
    return make_split(load_dataset(data_dir), ["00000001"], "private")


# ---- selection ---------------------------------------------------------------------------------
def test_bottom_k_picks_least_attended_per_layer_and_on_the_mean():
    scores = torch.tensor([[0.5, 0.1, 0.3, 0.2], [0.1, 0.5, 0.2, 0.4]])
    assert select_tokens(scores, 2, per_layer=True).tolist() == [[1, 3], [0, 2]]
    # mean over layers: [0.3, 0.3, 0.25, 0.3] -> token 2 first, then the tie breaks by index
    assert select_tokens(scores, 1, per_layer=False).tolist() == [2]
    assert select_tokens(scores, 2, per_layer=False, layers=[1]).tolist() == [0, 2]


def test_random_selection_ignores_scores_and_is_seeded():
    scores = torch.arange(16.0).repeat(2, 1)
    a = select_tokens(
        scores,
        4,
        per_layer=False,
        random_selection=True,
        generator=torch.Generator().manual_seed(3),
    )
    b = select_tokens(
        scores,
        4,
        per_layer=False,
        random_selection=True,
        generator=torch.Generator().manual_seed(3),
    )
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 4
    assert select_tokens(scores, 4, per_layer=True, random_selection=True).shape == (2, 4)


@pytest.mark.parametrize("k,layers", [(0, None), (17, None), (2, [5]), (2, [])])
def test_selection_rejects_k_or_layers_that_do_not_fit(k, layers):
    with pytest.raises(SelectionError):
        select_tokens(torch.rand(2, 16), k, per_layer=False, layers=layers)


# ---- training and gating on every family ---------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tiny_vlms, split, data_dir):
    out = {}
    for fam, vlm in tiny_vlms.items():
        adapter = CagulAdapter.for_model(vlm, k=3, forget_ids=list(split.forget_ids))
        stats = train_cagul(vlm, split, adapter, FAST)
        out[fam] = (adapter, stats)
    return out


def test_training_separates_forget_people_and_lowers_the_refusal_loss(trained, family):
    adapter, stats = trained[family]
    assert stats["discriminator_train_accuracy"] >= 0.95
    hist = [h for h in stats["history"] if "forget_nll" in h]
    assert hist[-1]["forget_nll"] < hist[0]["forget_nll"]  # PO: the refusal gets likelier
    assert stats["trainable_params"] == sum(p.numel() for p in adapter.parameters())


def test_training_cost_grows_with_forget_people_not_the_dataset(trained, split, family):
    _, stats = trained[family]
    # Only the forget person's samples get language-model passes (20 pairs), not the 120.
    assert stats["lm_passes_per_epoch"] == len(split.forget_set) + len(split.nonprivate_set) == 20


def test_gate_transforms_only_the_forget_person(tiny_vlms, trained, split, family):
    vlm, (adapter, _) = tiny_vlms[family], trained[family]
    forget_img = split.forget_set[0].image_path
    other = next(s for s in split.retain_set if s.unique_id not in split.forget_ids)
    batch = vlm.prepare([forget_img, other.image_path], ["Who is this?", "Who is this?"])
    decided = plan(vlm, [adapter], batch)
    assert decided.flagged == [True, False]
    idx = decided.indices[0]
    if vlm.attention == "cross":  # Mllama: one set per cross-attention layer
        assert idx.shape == (len(vlm.cross_modal_layers), 3)
    else:
        assert idx.shape == (3,)
    assert decided.indices[1] is None
    base = vlm.forward(batch)
    after = vlm.forward(batch, decided.replacement)
    assert not torch.allclose(base[0], after[0])
    assert torch.allclose(base[1], after[1], atol=1e-5)  # untouched sample, same logits


def test_stacked_adapters_each_flag_their_own_person(tiny_vlms, data_dir, trained, split):
    vlm = tiny_vlms["qwen2_5_vl"]
    first, _ = trained["qwen2_5_vl"]
    ds = load_dataset(data_dir)
    split2 = make_split(ds, ["00000003"], "private")
    second = CagulAdapter.for_model(vlm, k=3, forget_ids=["00000003"])
    train_cagul(vlm, split2, second, FAST)
    imgs = [
        split.forget_set[0].image_path,
        split2.forget_set[0].image_path,
        ds.individuals[5].image_file,
    ]
    decided = plan(vlm, [first, second], vlm.prepare(imgs, ["Who is this?"] * 3))
    assert decided.adapter_index == [0, 1, None]


def test_consolidation_gives_one_adapter_for_both_requests(tiny_dirs, data_dir, tmp_path):
    from cagul.methods.cagul.consolidate import consolidate
    from cagul.pipeline import run_unlearning

    model = tiny_dirs["qwen2_5_vl"]
    dirs = []
    for person in ("00000001", "00000003"):
        dirs.append(tmp_path / person)
        run_unlearning(
            model_dir=model,
            data_dir=data_dir,
            forget_ids=[person],
            categories=["health", "criminal"],
            method="cagul",
            out_dir=dirs[-1],
            config=CagulMethodConfig(k=2, training=FAST),
            max_retain=2,
        )
    out = consolidate(
        model_dir=model,
        data_dir=data_dir,
        adapter_dirs=dirs,
        out_dir=tmp_path / "merged",
        training=FAST,
    )
    vlm = load_vlm(model)
    merged = CagulAdapter.from_pretrained(vlm, tmp_path / "merged")
    assert merged.config.forget_ids == ["00000001", "00000003"] and merged.config.k == 2
    ds = load_dataset(data_dir)
    imgs = [ds.individuals[i].image_file for i in (1, 3, 5)]
    assert plan(vlm, [merged], vlm.prepare(imgs, ["Who?"] * 3)).flagged == [True, True, False]
    assert out["report"]["discriminator"]["clean_accuracy"] == 1.0


# ---- files -------------------------------------------------------------------------------------
def test_adapter_dir_holds_config_and_weights_only_and_round_trips(tiny_vlms, trained, tmp_path):
    vlm = tiny_vlms["mllama"]
    adapter, _ = trained["mllama"]
    adapter.save_pretrained(tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [ADAPTER_CONFIG, ADAPTER_WEIGHTS]
    loaded = CagulAdapter.from_pretrained(vlm, tmp_path / "a")
    assert loaded.config == adapter.config
    theirs = loaded.state_dict()
    assert set(theirs) == set(adapter.state_dict())
    for name, tensor in adapter.state_dict().items():
        assert torch.equal(tensor.cpu(), theirs[name].cpu()), name


def test_adapter_for_another_base_is_refused(tiny_vlms, trained, tmp_path, tiny_dirs):
    adapter, _ = trained["qwen2_5_vl"]
    adapter.save_pretrained(tmp_path / "a")
    with pytest.raises(ArtifactMismatchError, match="llava"):
        CagulAdapter.from_pretrained(tiny_vlms["llava"], tmp_path / "a")
    # Same family and config, one weight changed: another base model.
    other = load_vlm(tiny_dirs["qwen2_5_vl"])
    with torch.no_grad():
        next(other.model.parameters()).add_(0.01)
    assert base_fingerprint(other) != adapter.config.base_fingerprint
    with pytest.raises(ArtifactMismatchError, match="another base model"):
        CagulAdapter.from_pretrained(other, tmp_path / "a")


def test_fingerprint_ignores_the_load_dtype(tiny_dirs):
    a = load_vlm(tiny_dirs["llava"])
    b = load_vlm(tiny_dirs["llava"], dtype=torch.float16)
    assert base_fingerprint(a) == base_fingerprint(b)


def test_tampered_adapter_files_are_refused(tiny_vlms, trained, tmp_path):
    vlm = tiny_vlms["qwen2_5_vl"]
    adapter, _ = trained["qwen2_5_vl"]
    d = adapter.save_pretrained(tmp_path / "a")
    raw = bytearray((d / ADAPTER_WEIGHTS).read_bytes())
    raw[-5] ^= 0xFF
    (d / ADAPTER_WEIGHTS).write_bytes(bytes(raw))
    with pytest.raises(ArtifactTamperedError, match="sha256"):
        CagulAdapter.from_pretrained(vlm, d)

    d = adapter.save_pretrained(tmp_path / "b")
    cfg = json.loads((d / ADAPTER_CONFIG).read_text())
    cfg["surprise"] = 1
    (d / ADAPTER_CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(AdapterError, match="unknown keys"):
        CagulAdapter.from_pretrained(vlm, d)
    (d / ADAPTER_CONFIG).write_text("{not json")
    with pytest.raises(AdapterError, match="not valid JSON"):
        CagulAdapter.from_pretrained(vlm, d)
    with pytest.raises(AdapterError, match="missing"):
        CagulAdapter.from_pretrained(vlm, tmp_path / "nothing")


def test_ablation_switches(tiny_vlms, split):
    vlm = tiny_vlms["llava"]
    no_disc = CagulAdapter.for_model(vlm, k=2, use_discriminator=False)
    args = CagulTrainingArguments(
        disc_epochs=0, epochs=1, views=1, batch_size=8, max_retain=10, encoder_views=0
    )
    stats = train_cagul(vlm, split, no_disc, args)
    # Without a discriminator every sample is transformed, so retain samples train E too.
    assert stats["encoder_samples"] == 20 + 10
    other = next(s for s in split.retain_set if s.unique_id not in split.forget_ids)
    assert plan(vlm, [no_disc], vlm.prepare([other.image_path], ["Who?"])).flagged == [True]
    noise = CagulAdapter.for_model(vlm, k=2, use_encoder=False)
    stats = train_cagul(vlm, split, noise, args)
    assert stats["encoder_samples"] == 0  # nothing to train: noise has no parameters
    for objective in ("ga_gd", "ga_kl"):
        a = CagulAdapter.for_model(vlm, k=2, objective=objective, selection="random")
        hist = train_cagul(vlm, split, a, args)["history"]
        assert hist[-1]["forget_nll"] is not None


def test_cli_unlearn_answer_audit_and_bad_input(tiny_dirs, data_dir, tmp_path, capsys):
    model = tiny_dirs["qwen2_5_vl"]
    out = tmp_path / "adapter"
    rc = main(
        [
            "unlearn",
            "--model",
            model,
            "--data",
            str(data_dir),
            "--forget",
            "00000001",
            "--epochs",
            "1",
            "--disc-epochs",
            "1",
            "--k",
            "2",
            "--max-retain",
            "5",
            "--seed",
            "3",
            "--forget-weight",
            "2",
            "--encoder-views",
            "1",
            "--hard-weight",
            "0.5",
            "--out",
            str(out),
            "--report",
            str(tmp_path / "r.json"),
        ]
    )
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in out.iterdir()) == [ADAPTER_CONFIG, ADAPTER_WEIGHTS]
    rep = res["report"]
    # The report says how the adapter was trained, flags included.
    used = rep["training"]["arguments"]
    assert (used["seed"], used["forget_weight"], used["epochs"]) == (3, 2.0, 1)
    assert (used["encoder_views"], used["hard_weight"]) == (1, 0.5)
    for key in ("forget", "nonprivate", "retain", "discriminator", "leak", "efficiency"):
        assert key in rep
    assert rep["efficiency"]["trainable_params"] > 0
    img = str(data_dir / "images" / "00000001.png")
    assert (
        main(
            [
                "answer",
                "--model",
                model,
                "--adapter",
                str(out),
                "--image",
                img,
                "--question",
                "Who is this?",
            ]
        )
        == 0
    )
    ans = json.loads(capsys.readouterr().out)
    assert set(ans) >= {
        "answer",
        "base_answer",
        "forget_probability",
        "transformed",
        "selected_tokens",
        "scores",
        "grid",
    }
    assert ans["grid"] == [4, 4] and len(ans["scores"][0]) == 16
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"image": "00000001", "question": "Who is this?", "keywords": ["x"]}\n')
    assert (
        main(
            [
                "audit",
                "--model",
                model,
                "--data",
                str(data_dir),
                "--adapter",
                str(out),
                "--prompts",
                str(prompts),
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert set(rows[0]) >= {"answer", "base_answer", "em", "base_em", "leaked"}
    prompts.write_text('{"image": "nobody", "question": "Who?", "keywords": ["x"]}\n')
    assert (
        main(["audit", "--model", model, "--data", str(data_dir), "--prompts", str(prompts)]) == 2
    )
    assert "neither a file nor a known individual" in capsys.readouterr().err
    assert (
        main(
            [
                "answer",
                "--model",
                tiny_dirs["llava"],
                "--adapter",
                str(out),
                "--image",
                img,
                "--question",
                "Who?",
            ]
        )
        == 2
    )
    assert "qwen2_5_vl" in capsys.readouterr().err


def test_training_is_seeded_with_perturbed_encoder_views(tiny_vlms, split):
    vlm = tiny_vlms["qwen2_5_vl"]
    args = CagulTrainingArguments(disc_epochs=1, epochs=2, views=1, encoder_views=2, seed=5)

    def weights(seed: int) -> torch.Tensor:
        a = CagulAdapter.for_model(vlm, k=2)
        train_cagul(vlm, split, a, dataclasses.replace(args, seed=seed))
        return torch.cat([p.detach().flatten() for p in a.token_encoder.parameters()])

    first = weights(5)
    # Same seed, same perturbed copies and token sets: a request can be re-run and audited.
    assert torch.equal(first, weights(5))
    assert not torch.equal(first, weights(6))


def test_forget_only_views_add_samples_for_the_forget_set_only(tiny_vlms, split):
    vlm = tiny_vlms["qwen2_5_vl"]
    args = CagulTrainingArguments(
        disc_epochs=0, epochs=1, views=0, encoder_views=3, views_per_epoch=0
    )
    stats = train_cagul(vlm, split, CagulAdapter.for_model(vlm, k=2), args)
    # Each forget pair is shown clean and as 3 perturbed copies; non-private pairs only clean,
    # so the extra language-model passes scale with the forget set alone.
    n_forget, n_nonprivate = len(split.forget_set), len(split.nonprivate_set)
    assert stats["encoder_samples"] == 4 * n_forget + n_nonprivate
    assert stats["lm_passes_per_epoch"] == stats["encoder_samples"]


def test_hard_weights_favour_the_samples_still_unfitted_within_their_role():
    from cagul.methods.cagul.objective import hard_weights

    nan = float("nan")
    last = torch.tensor([1.0, 3.0, nan, 0.5, 1.5])
    is_forget = torch.tensor([True, True, True, False, False])
    w = hard_weights(last, is_forget, [0, 1, 2, 3, 4], exponent=1.0, cap=4.0)
    # Each role is measured against its own mean (forget 2.0, retain 1.0): a forget refusal
    # that is still hard does not starve the retain answers of weight, and vice versa.
    assert torch.allclose(w, torch.tensor([0.5, 1.5, 1.0, 0.5, 1.5]))
    assert hard_weights(last, is_forget, [1], exponent=2.0, cap=1.2).item() == pytest.approx(1.2)
    assert torch.equal(hard_weights(last, is_forget, [0, 1], 0.0, 4.0), torch.ones(2))


def test_hard_weighting_changes_training_only_when_switched_on(tiny_vlms, split):
    vlm = tiny_vlms["qwen2_5_vl"]
    args = CagulTrainingArguments(disc_epochs=0, epochs=3, views=0, encoder_views=0)

    def weights(hard: float) -> torch.Tensor:
        a = CagulAdapter.for_model(vlm, k=2)
        train_cagul(vlm, split, a, dataclasses.replace(args, hard_weight=hard))
        return torch.cat([p.detach().flatten() for p in a.token_encoder.parameters()])

    assert torch.equal(weights(0.0), weights(0.0))
    assert not torch.equal(weights(0.0), weights(1.0))


# ---- stopping when verified, and passes only where they still move something -------------------
def test_training_stops_at_the_first_verified_check_and_epochs_is_a_cap(tiny_vlms, split):
    vlm = tiny_vlms["qwen2_5_vl"]
    args = CagulTrainingArguments(
        disc_epochs=1,
        epochs=30,
        views=2,
        encoder_views=0,
        check_every=2,
        consolidate=1,
        disc_lr=1e-2,
    )
    stats = train_cagul(vlm, split, CagulAdapter.for_model(vlm, k=2), args)
    checks = stats["checks"]
    first = next(c for c in checks if c["passed"])
    # Stopped one consolidation epoch after the first passing check, long before the cap,
    # and the check that stopped it passed too.
    assert stats["verified_epoch"] == first["epoch"] and first["epoch"] % 2 == 0
    assert stats["stopped_epoch"] == first["epoch"] + 1 < 30 and checks[-1]["passed"]
    assert stats["verified"] and checks[-1]["discriminator_lowest_forget_probability"] > 0.9
    # An unreachable margin (every view at P > 0.999 and < 0.001) never verifies: the cap holds.
    strict = dataclasses.replace(args, epochs=4, disc_margin=0.499)
    capped = train_cagul(vlm, split, CagulAdapter.for_model(vlm, k=2), strict)
    assert capped["stopped_epoch"] == 4 and not capped["verified"]
    assert capped["verified_epoch"] is None and [c["epoch"] for c in capped["checks"]] == [2, 4]


def test_a_forget_answer_that_leaks_fails_the_check(tiny_vlms, split):
    from cagul.methods.cagul.train_encoder import EncoderSample, verify_samples

    vlm = tiny_vlms["qwen2_5_vl"]
    adapter = CagulAdapter.for_model(vlm, k=2)
    s = split.forget_set[0]
    # The tiny model answers something; a keyword that is in every answer ("" is in any
    # string) makes the forget sample leak and the non-private sample answered right.
    leak = EncoderSample(
        s.image_path, s.question, s.answer, "forget", torch.tensor([0, 1]), keywords=("",)
    )
    kept = EncoderSample(
        s.image_path, s.question, s.answer, "retain", torch.tensor([0, 1]), keywords=("",)
    )
    lost = dataclasses.replace(kept, keywords=("zzqx-not-said",))
    ok = verify_samples(vlm, adapter, [leak, kept, lost, lost], [False, True, True, False], 4)
    # lost: the base answered it right (it must stay right) / the base did not (nothing to keep)
    assert ok == [False, True, False, True]


def test_views_per_epoch_and_skipping_cut_language_model_passes(tiny_vlms, split):
    vlm = tiny_vlms["qwen2_5_vl"]
    n_f, n_np = len(split.forget_set), len(split.nonprivate_set)
    args = CagulTrainingArguments(
        disc_epochs=0,
        epochs=2,
        views=0,
        encoder_views=3,
        views_per_epoch=1,
        check_every=0,
        skip_nll=0.0,
    )
    stats = train_cagul(vlm, split, CagulAdapter.for_model(vlm, k=2), args)
    assert stats["encoder_samples"] == 4 * n_f + n_np
    # One of the 3 perturbed views of each forget pair per epoch, not all of them.
    assert [h["lm_passes"] for h in stats["history"]] == [2 * n_f + n_np] * 2
    assert stats["checks"] == [] and stats["verified_epoch"] is None
    # A check skips every sample that passed it with an NLL under skip_nll (here any) until
    # the next check. Every view is trained in epoch 1 (views_per_epoch 0), so each has a
    # loss; a sample never trained has none and is never skipped.
    skipping = dataclasses.replace(
        args,
        epochs=2,
        check_every=1,
        consolidate=5,
        skip_nll=1e9,
        disc_margin=0.0,
        views_per_epoch=0,
    )
    s2 = train_cagul(vlm, split, CagulAdapter.for_model(vlm, k=2), skipping)
    first = s2["checks"][0]
    failing = first["forget_failing"] + first["other_failing"]
    assert first["skipped_next"] == 4 * n_f + n_np - failing
    assert s2["history"][1]["lm_passes"] == failing < 4 * n_f + n_np


def test_discriminator_negatives_are_a_fixed_budget(tiny_vlms, split, data_dir):
    import random

    from cagul.methods.cagul.train import negatives_from
    from cagul.methods.cagul.train_discriminator import cache_views

    vlm = tiny_vlms["qwen2_5_vl"]
    scenes = negatives_from(data_dir)

    def views(budget: int):
        args = CagulTrainingArguments(views=3, negative_views=budget)
        return cache_views(vlm, split, scenes, args, random.Random(0))

    positives = 4  # the forget person's image, clean and 3 perturbed copies
    for budget in (3, 9, 14):
        v = views(budget)
        assert len(v) == positives + budget and int(v.labels.sum()) == positives
    # Fewer negatives exist than a large budget: all of them, each other person 1 + 3 times.
    others = {s.image_path for s in split.retain_set} - {s.image_path for s in split.forget_set}
    n_people = len(others)
    assert len(views(10_000)) == positives + len(scenes) + 4 * n_people


def test_batched_discriminator_equals_one_image_at_a_time(tiny_vlms, split):
    vlm = tiny_vlms["qwen2_5_vl"]
    adapter = CagulAdapter.for_model(vlm, k=2)
    images = [split.forget_set[0].image_path, split.retain_set[0].image_path]
    batch = vlm.prepare(images, ["What is shown in the image?"] * 2)
    tokens = vlm.visual_tokens(batch)
    together = adapter.discriminator(tokens, batch.layouts)
    alone = torch.cat(
        [adapter.discriminator([t], [lay]) for t, lay in zip(tokens, batch.layouts, strict=True)]
    )
    assert torch.allclose(together, alone, atol=1e-5)
    with pytest.raises(ValueError):
        adapter.discriminator(tokens, batch.layouts[:1])
