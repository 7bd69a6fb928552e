"""The shipped demo bundle: its recorded acceptance holds, its weights are what it claims, it
fits the size budget, and its data is reproducible from the recorded seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cagul.answering import answer_all
from cagul.data import generate_dataset, load_dataset, make_split
from cagul.demo.bundle import ACCEPTANCE, bundle_table
from cagul.metrics import mean_em
from cagul.models import load_vlm
from cagul.paths import DEMO_DIR


@pytest.fixture(scope="module")
def bundle() -> dict:
    return json.loads((DEMO_DIR / "bundle.json").read_text())


# Bounds the shipped bundle does not meet yet (see assets/demo/README.md):
# strict xfail, so the test fails the day a rebuild meets them and this list must shrink.
# Empty since the general-accuracy rebuild (scenes on the token grid, aligned tokens).
NOT_MET: dict[str, str] = {}


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=NOT_MET[k]))
        if k in NOT_MET
        else k
        for k in ACCEPTANCE
    ],
)
def test_acceptance_bound_recorded_at_build(bundle, key):
    assert bundle["acceptance"][key]["ok"], bundle["acceptance"][key]


def test_load_and_answer_is_quick(bundle):
    assert bundle["load_and_answer_seconds"] < 10


def test_bundle_fits_the_size_budget_and_ships_three_models():
    size = sum(p.stat().st_size for p in DEMO_DIR.rglob("*") if p.is_file())
    assert size <= 30 * 2**20, f"{size / 2**20:.1f} MiB"
    for name in ("pretrain", "finetune", "retrain"):
        assert (DEMO_DIR / "models" / name / "model.safetensors").is_file()


def test_shipped_weights_reproduce_the_recorded_numbers(bundle):
    """Spot check on 60 pairs (every 10th): Finetune knows them, in a paraphrase too;
    Pretrain does not."""
    ds = load_dataset(DEMO_DIR / "data")
    split = make_split(ds, bundle["split"]["name"])
    pairs = (split.forget_set + split.retain_set)[::10]
    kws = [list(s.keywords) for s in pairs]
    imgs, qs = [s.image_path for s in pairs], [s.question for s in pairs]
    finetune = load_vlm(DEMO_DIR / "models" / "finetune")
    assert mean_em(answer_all(finetune, imgs, qs, max_new_tokens=24), kws) >= 0.85
    # An auditor's paraphrase must reach the fact too, else a forgotten answer could not be
    # told from one that was never reachable in other words.
    reworded = [s.paraphrased_questions[0] for s in pairs]
    assert mean_em(answer_all(finetune, imgs, reworded, max_new_tokens=24), kws) >= 0.45
    pretrain = load_vlm(DEMO_DIR / "models" / "pretrain")
    assert mean_em(answer_all(pretrain, imgs, qs, max_new_tokens=24), kws) <= 0.15


def test_same_seed_gives_the_same_data(bundle, tmp_path):
    cfg = bundle["config"]
    generate_dataset(tmp_path, cfg["n_individuals"], cfg["seed"], image_size=cfg["image_size"])
    for name in ("full.json", "split.json", "probes/train.json", "probes/pope.json"):
        assert (tmp_path / name).read_text() == (DEMO_DIR / "data" / name).read_text(), name
    assert (tmp_path / "images" / "00000000.png").read_bytes() == (
        DEMO_DIR / "data" / "images" / "00000000.png"
    ).read_bytes()


def test_readme_shows_the_measured_table(bundle):
    readme = (DEMO_DIR / "README.md").read_text()
    assert bundle_table(bundle) in readme


def test_paraphrase_wordings_are_trained_only_on_the_other_population():
    """The bundle's own pairs are asked with training templates only (their paraphrases are
    the evaluation); the extra population's pairs are asked in every wording."""
    from cagul.data.splits import sample_of
    from cagul.data.synthetic import make_individuals
    from cagul.data.templates import FIELDS
    from cagul.demo.bundle import template_drawer

    own = [sample_of(ind, j) for ind in make_individuals(2, 0) for j in range(len(ind.qa_list))]
    extra = [sample_of(ind, j) for ind in make_individuals(2, 1) for j in range(len(ind.qa_list))]
    paraphrases = {q for f in FIELDS for q in f.paraphrase_questions}
    field_of = {q: f.name for f in FIELDS for q in f.train_questions + f.paraphrase_questions}
    vqa = [("scene.png", "Is there a star in the image?", "Yes.")] * 8
    draw = template_drawer(own, vqa, replay=4, seed=0, extra=extra)
    seen_own, seen_extra = set(), set()
    for epoch in range(30):
        batch = draw(epoch)
        assert len(batch) == len(own) + len(extra) + 4
        for s, (img, q, a) in zip(own + extra, batch, strict=False):
            assert (img, a) == (s.image_path, s.answer)
            assert field_of[q] == field_of[s.question]  # asked about the same fact
        seen_own |= {q for _, q, _ in batch[: len(own)]}
        seen_extra |= {q for _, q, _ in batch[len(own) : len(own) + len(extra)]}
    assert not seen_own & paraphrases
    assert len(seen_extra & paraphrases) > len(FIELDS)
    assert draw(3) == draw(3)  # seeded per epoch: a rebuild draws the same mix


def test_recorded_command_rebuilds_the_same_recipe(tmp_path):
    """bundle.json's command names every option that differs from the defaults and the CLI
    parses it back to the same config (it used to record only --out and --seed)."""
    import shlex
    from dataclasses import asdict

    from cagul.cli import build_parser, bundle_config
    from cagul.demo.bundle import BundleConfig, build_command

    cfg = BundleConfig(seed=3, n_individuals=10, extra_individuals=0, lr=1e-3, vision_lr=5e-4)
    argv = shlex.split(build_command(tmp_path, cfg))[3:]  # drop "python -m cagul"
    assert asdict(bundle_config(build_parser().parse_args(argv))) == asdict(cfg)
    assert build_command(tmp_path, BundleConfig()).endswith("--seed 0")


def test_shipped_bundle_records_a_command_that_rebuilds_its_config(bundle):
    import shlex
    from dataclasses import asdict

    from cagul.cli import build_parser, bundle_config
    from cagul.demo.bundle import BundleConfig

    args = build_parser().parse_args(shlex.split(bundle["command"])[3:])
    assert asdict(bundle_config(args)) == asdict(BundleConfig(**bundle["config"]))


@pytest.mark.slow
def test_build_runs_every_stage_with_an_extra_population(tmp_path, monkeypatch):
    """The whole build path on a miniature configuration: every stage runs, the other
    population's files are gone afterwards (never shipped), bundle.json records the config,
    the split and every acceptance check, and each shipped model's probes are asked once
    (they used to be asked twice: once for bundle.json's numbers, once for its report)."""
    from dataclasses import replace

    import cagul.evaluate
    from cagul.demo.bundle import BundleConfig, build_demo_bundle

    asked = []
    real = cagul.evaluate.general_metrics

    def counting(vlm, *args, **kwargs):
        asked.append(Path(vlm.path).name)
        return real(vlm, *args, **kwargs)

    monkeypatch.setattr(cagul.evaluate, "general_metrics", counting)
    cfg = BundleConfig(
        n_individuals=10,
        extra_individuals=3,
        hidden=32,
        layers=1,
        vision_width=32,
        vision_depth=1,
        vision_steps=2,
        vqa_epochs=1,
        vqa_per_epoch=16,
        extra_scenes=6,
        bio_epochs=1,
        replay=8,
        log_every=1,
    )
    bundle = build_demo_bundle(tmp_path, cfg)
    assert sorted(asked) == ["finetune", "pretrain", "retrain"]
    for name in ("pretrain", "finetune", "retrain"):
        assert bundle["results"][name]["pope_acc"] == bundle["table"][name]["pope_acc"]
    assert not (tmp_path / "_extra").exists()
    assert not (tmp_path / "_scenes").exists()  # the procedural scenes are not shipped
    assert "6 procedural training scenes" in (tmp_path / "README.md").read_text()
    assert bundle["config"]["extra_individuals"] == 3
    assert bundle["vision_identity"]["steps"] == 2
    assert set(bundle["acceptance"]) == set(ACCEPTANCE)
    for name in ("pretrain", "finetune", "retrain"):
        assert (tmp_path / "models" / name / "model.safetensors").is_file()
    readme = (tmp_path / "README.md").read_text()
    assert bundle_table(bundle) in readme
    assert "second population (3 people" in readme  # what the models learned beyond the data

    # Resuming with other biography settings keeps Pretrain byte for byte and reruns the rest.
    pretrain = (tmp_path / "models" / "pretrain" / "model.safetensors").read_bytes()
    finetune = (tmp_path / "models" / "finetune" / "model.safetensors").read_bytes()
    asked.clear()
    again = build_demo_bundle(tmp_path, replace(cfg, bio_epochs=2, lr=1e-3), resume=True)
    assert (tmp_path / "models" / "pretrain" / "model.safetensors").read_bytes() == pretrain
    assert (tmp_path / "models" / "finetune" / "model.safetensors").read_bytes() != finetune
    assert again["vision_identity"] == bundle["vision_identity"]
    assert again["stage_seconds"]["pretrain_vqa"] == bundle["stage_seconds"]["pretrain_vqa"]
    kept = bundle["stage_seconds"]["pretrain_vision"] + bundle["stage_seconds"]["pretrain_vqa"]
    assert again["total_seconds"] >= kept  # the recorded stages count in the build's time
    assert again["config"]["bio_epochs"] == 2 and "--bio-epochs 2" in again["command"]
    assert sorted(asked) == ["finetune", "pretrain", "retrain"]


def test_resume_refuses_a_pretrain_of_another_recipe(tmp_path):
    import json
    from dataclasses import asdict

    from cagul.demo.bundle import PRETRAIN_RECORD, BundleConfig, ResumeError, build_demo_bundle

    with pytest.raises(ResumeError, match="nothing to resume"):
        build_demo_bundle(tmp_path, BundleConfig(), resume=True)
    (tmp_path / "models" / "pretrain").mkdir(parents=True)
    (tmp_path / "models" / "pretrain" / "config.json").write_text("{}")
    record = {
        "config": asdict(BundleConfig(vqa_lr=3e-3)),
        "stage_seconds": {},
        "vision_identity": {},
        "vqa": {},
    }
    (tmp_path / PRETRAIN_RECORD).write_text(json.dumps(record))
    with pytest.raises(ResumeError, match="vqa_lr"):
        build_demo_bundle(tmp_path, BundleConfig(), resume=True)
    assert (tmp_path / "models" / "pretrain" / "config.json").read_text() == "{}"  # untouched


def test_procedural_scenes_identical_to_a_test_scene_are_left_out(tmp_path):
    """The bundle's extra training scenes are drawn at random, and one-object scenes recur:
    one identical to a held-out POPE/MME scene would put a test image into training."""
    import json

    from cagul.demo.bundle import BundleConfig, draw_extra_scenes, scene_attributes

    cfg = BundleConfig(seed=0, extra_scenes=12, image_size=28)
    first = tmp_path / "a"
    assert draw_extra_scenes(first, first, cfg) == set()  # no test scenes there: no clash
    drawn = json.loads((first / "scenes.json").read_text())
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    copy = {"scene_id": "test_0000", "objects": drawn[3]["objects"][::-1]}  # order is no cue
    (shipped / "scenes.json").write_text(json.dumps([copy]))
    extra = tmp_path / "b"
    clash = draw_extra_scenes(extra, shipped, cfg)
    assert clash == {str((extra / "images" / "scene_train_0003.png").resolve())}
    paths, attributes, tokens = scene_attributes(extra, exclude=clash)
    assert len(paths) == len(attributes) == len(tokens) == 11
    assert not clash & set(paths)


def test_vqa_epoch_sampler_draws_afresh_per_epoch_and_all_items_at_zero():
    from cagul.demo.bundle import epoch_sampler

    items = list(range(50))
    every = epoch_sampler(items, 0, seed=0)  # the shipped recipe: every item, every epoch
    assert sorted(every(0)) == sorted(every(1)) == items
    some = epoch_sampler(items, 20, seed=0)
    assert len(some(0)) == 20 and len(set(some(0))) == 20
    assert some(0) == some(0) and set(some(0)) != set(some(1))  # seeded, fresh per epoch
    assert sorted(epoch_sampler(items, 500, seed=0)(3)) == items


def test_word_targets_follow_the_token_class_numbering(tiny_dirs):
    """The vision stage pulls a token labelled by `token_classes` onto `word_targets[label]`:
    the two numberings must agree, or every scene token would be aligned to another object's
    words (nothing else would notice: training still converges)."""
    import torch

    from cagul.data.scenes import COLOURS, SHAPES, token_classes
    from cagul.demo.bundle import word_targets

    vlm = load_vlm(tiny_dirs["qwen2_5_vl"], device="cpu")
    targets = word_targets(vlm, scale=2.0)
    assert targets.shape == (1 + len(SHAPES) * len(COLOURS), vlm.hidden_size)
    emb = vlm.model.get_input_embeddings().weight.detach().float()

    def word(w: str) -> torch.Tensor:
        return emb[vlm.tokenizer.encode(" " + w, add_special_tokens=False)].mean(0)

    labels = token_classes([("star", "red", 0, 0), ("hexagon", "black", 3, 3)])
    assert labels[0] != labels[15] and labels[1] == 0
    torch.testing.assert_close(targets[labels[0]], 2.0 * (word("star") + word("red")))
    torch.testing.assert_close(targets[labels[15]], 2.0 * (word("hexagon") + word("black")))
    torch.testing.assert_close(targets[labels[1]], 2.0 * word("image"))
