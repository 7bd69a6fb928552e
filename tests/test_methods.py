"""Every registered unlearning method on a tiny Qwen2.5-VL: the forget loss moves the intended
way, retain answers stay, save → load gives the same outputs, a foreign base or an altered
file is refused; plus the registry, the shared losses and ViKeR's parts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from cagul import losses
from cagul.artifacts import ArtifactMismatchError, ArtifactTamperedError
from cagul.data import REFUSALS, generate_dataset, load_dataset, make_split
from cagul.methods import METHODS, UnknownMethodError, get_method, load_unlearned
from cagul.methods.cagul.config import CagulMethodConfig, CagulTrainingArguments
from cagul.methods.lora import LoraArguments, copy_vlm, probe_nll
from cagul.methods.retrain import RetrainArguments
from cagul.methods.viker import VikerArguments, key_token_weights, unseen_faces
from tests.workerproc import REPO

LORA = dict(epochs=2, batch_size=4, lr=1e-2, probe_size=4, check_every=1, early_stop=False)


def fast_config(method: str, model_dir: str):
    """The smallest settings each method trains with in the tests."""
    if method == "cagul":
        return CagulMethodConfig(
            k=2,
            training=CagulTrainingArguments(
                disc_epochs=1,
                epochs=2,
                views=1,
                batch_size=8,
                disc_batch_size=8,
                encoder_views=0,
                max_negatives=4,
            ),
        )
    if method == "retrain":
        return RetrainArguments(
            pretrain_dir=model_dir, use_shipped=False, epochs=2, batch_size=16, lr=1e-2, replay=0
        )
    if method == "viker":
        return VikerArguments(**LORA, n_images=2)
    return LoraArguments(**LORA)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("methods_data")
    generate_dataset(out, n_individuals=6, seed=1, n_train_scenes=4, n_test_scenes=4)
    return out


@pytest.fixture(scope="module")
def split(data_dir):
    return make_split(load_dataset(data_dir), ["00000001"], "private")


@pytest.fixture(scope="module")
def vlm(tiny_vlms):
    return tiny_vlms["qwen2_5_vl"]


@pytest.fixture(scope="module")
def trained(vlm, split, tiny_dirs, data_dir, tmp_path_factory):
    """Each method trained once, lazily: {name: (artifact, directory)}."""
    root = tmp_path_factory.mktemp("methods_out")
    cache = {}

    def get(name: str):
        if name not in cache:
            cfg = fast_config(name, tiny_dirs["qwen2_5_vl"])
            art = get_method(name).train(vlm, split, cfg, out_dir=root / name, data_dir=data_dir)
            cache[name] = art
        return cache[name]

    return get


def _refusal_nll(model_vlm, samples, rep_for=None) -> float:
    vals = []
    for refusal in REFUSALS[:3]:
        batch = model_vlm.prepare(
            [s.image_path for s in samples], [s.question for s in samples], [refusal] * len(samples)
        )
        rep = rep_for(batch) if rep_for else None
        with torch.no_grad():
            vals += losses.nll(model_vlm.forward(batch, rep), batch.labels).tolist()
    return sum(vals) / len(vals)


# ---- the registry --------------------------------------------------------------------------------
def test_registry_names_every_method_of_the_cli_contract():
    assert METHODS == ("cagul", "ga", "ga_gd", "ga_kl", "po_gd", "npo", "retrain", "viker")
    for name in METHODS:
        assert get_method(name).name == name
    with pytest.raises(UnknownMethodError):
        get_method("gradient_magic")


def test_registry_and_storage_import_no_torch():
    code = (
        "import sys, cagul, cagul.methods, cagul.methods.registry, storage; "
        "import storage.forget_requests as fr; assert 'npo' in fr.METHODS; "
        "bad = {'torch', 'transformers', 'peft'} & set(sys.modules); "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout


def test_storage_and_cli_read_the_registry():
    from cagul.cli import build_parser
    from storage.forget_requests import METHODS as STORED

    assert tuple(STORED) == METHODS
    for name in METHODS:
        args = build_parser().parse_args(["unlearn", "--method", name, "--out", "x"])
        assert args.method == name


# ---- the shared losses ---------------------------------------------------------------------------
def test_losses_agree_with_their_definitions():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[-100, -100, 3, 4, 1], [-100, 2, 2, 5, 0]])
    assert torch.allclose(losses.ga(logits, labels), -losses.nll(logits, labels))
    assert torch.allclose(losses.ga(logits, labels, cap=0.1), torch.full((2,), -0.1))
    assert torch.allclose(losses.kl_to_reference(logits, logits, labels), torch.zeros(2), atol=1e-6)
    # NPO at π = π_ref is (2/β)·log 2, and it falls as the answer becomes less likely.
    at_ref = losses.npo(logits, logits, labels, beta=0.1)
    assert torch.allclose(at_ref, torch.full((2,), 20 * torch.log(torch.tensor(2.0))))
    worse = logits.clone()
    worse[:, :, [1, 2, 3, 4, 5, 0]] -= 3.0
    assert (losses.npo(worse, logits, labels, beta=0.1) < at_ref).all()


def test_key_tokens_weigh_by_target_entropy():
    sure = torch.log_softmax(torch.tensor([10.0, 0, 0, 0]), -1)
    unsure = torch.log_softmax(torch.zeros(4), -1)
    w = key_token_weights(torch.stack([sure, unsure, sure]), power=1.0)
    assert w.mean().item() == pytest.approx(1.0, abs=1e-5)
    assert w[1] > 1 > w[0]


def test_unseen_faces_are_none_of_the_dataset_images(split):
    from PIL import Image

    known = sorted({s.image_path for s in split.forget_set + split.retain_set})
    size = Image.open(known[0]).size
    faces = unseen_faces(3, size, known, seed=7)
    assert len(faces) == 3 and all(f.size == size for f in faces)
    assert faces[0].tobytes() != faces[1].tobytes()


# ---- per method: the forget loss moves the intended way, retain answers stay -------------------
@pytest.mark.parametrize("name", ["ga", "ga_gd", "ga_kl", "npo"])
def test_ascent_methods_make_the_true_forget_answers_unlikely(name, vlm, split, trained):
    model = get_method(name).load(vlm, trained(name).directory)
    before, after = probe_nll(vlm, split.forget_set), probe_nll(model.vlm, split.forget_set)
    assert after > before + 0.05


@pytest.mark.parametrize("name", ["ga_gd", "ga_kl", "po_gd", "npo", "viker"])
def test_methods_with_a_retain_term_keep_retain_answers(name, vlm, split, trained):
    model = get_method(name).load(vlm, trained(name).directory)
    retain = split.retain_set[:16]
    assert probe_nll(model.vlm, retain) < probe_nll(vlm, retain) + 0.5


def test_po_gd_makes_refusals_likelier(vlm, split, trained):
    model = get_method("po_gd").load(vlm, trained("po_gd").directory)
    assert _refusal_nll(model.vlm, split.forget_set) < _refusal_nll(vlm, split.forget_set) - 0.05


def test_viker_moves_the_forget_answers_toward_the_unseen_face_target(vlm, split, tmp_path):
    method = get_method("viker")
    # A small lr: the KL starts near 0 and Adam's sign-like steps overshoot it at 1e-2.
    args = VikerArguments(**{**LORA, "retain_weight": 0.0, "lr": 1e-3, "epochs": 4}, n_images=2)
    targets = method.prepare(vlm, split, args)

    def kl(model_vlm) -> float:
        from cagul.methods.viker import answer_rows, pad_rows

        f = split.forget_set
        batch = model_vlm.prepare(
            [s.image_path for s in f], [s.question for s in f], [s.answer for s in f]
        )
        with torch.no_grad():
            cur, mask = pad_rows(answer_rows(model_vlm.forward(batch), batch.labels))
        tl, tw = zip(*(targets[(s.image_path, s.question)] for s in f), strict=True)
        return (
            losses.weighted_kl_to_target(cur, pad_rows(list(tl))[0], pad_rows(list(tw))[0], mask)
            .mean()
            .item()
        )

    art = method.train(vlm, split, args, out_dir=tmp_path / "viker")
    assert kl(method.load(vlm, art.directory).vlm) < kl(vlm)


def test_ga_stops_early_by_its_rule(vlm, split, tmp_path):
    start = probe_nll(vlm, split.forget_set)
    args = LoraArguments(**{**LORA, "early_stop": None, "epochs": 5}, stop_forget_nll=start + 0.01)
    art = get_method("ga").train(vlm, split, args, out_dir=tmp_path / "ga")
    assert art.stats["stopped_early"] and "forget NLL" in art.stats["stop_reason"]
    assert art.stats["steps"] < art.stats["planned_steps"]
    # NPO is not GA-based: no early stopping unless asked.
    assert get_method("npo").ga_based is False


def test_retrain_fits_the_retain_set_from_pretrain(vlm, split, trained):
    model = get_method("retrain").load(vlm, trained("retrain").directory)
    retain = split.retain_set[:16]
    assert probe_nll(model.vlm, retain) < probe_nll(vlm, retain) - 0.05
    cfg = json.loads((trained("retrain").directory / "adapter_config.json").read_text())
    assert cfg["source"] == "trained" and cfg["forget_ids"] == ["00000001"]


def test_retrain_uses_the_shipped_model_only_for_the_bundle_split(split, tmp_path):
    from cagul.methods.retrain import shipped_applies
    from cagul.paths import DEMO_DIR

    shipped = DEMO_DIR / "models" / "retrain"
    if not (shipped / "config.json").is_file():
        pytest.skip("no demo bundle")
    ds = load_dataset(DEMO_DIR / "data")
    default = make_split(ds, "forget10", "private")
    assert shipped_applies(default, shipped, DEMO_DIR / "data")
    other = make_split(ds, ds.splits["forget10"][:1], "private")
    assert not shipped_applies(other, shipped, DEMO_DIR / "data")
    assert not shipped_applies(make_split(ds, "forget10", "identity"), shipped, DEMO_DIR / "data")


def test_cagul_refuses_a_k_above_the_token_count_before_training(vlm, split, tmp_path):
    from dataclasses import replace

    from cagul.methods.cagul.adapter import AdapterError

    n = vlm.prepare([split.forget_set[0].image_path], ["?"]).layouts[0].n_tokens
    cfg = replace(fast_config("cagul", ""), k=n + 1)
    with pytest.raises(AdapterError, match=f"choose k between 1 and {n}"):
        get_method("cagul").train(vlm, split, cfg, out_dir=tmp_path / "a")
    assert not (tmp_path / "a").exists()  # nothing written


def test_cagul_through_the_interface_explains_itself(vlm, split, trained):
    art = trained("cagul")
    model = get_method("cagul").load(vlm, art.directory)
    s = split.forget_set[0]
    why = model.explain(s.image_path, s.question)
    assert {"forget_probability", "selected_tokens", "scores", "grid"} <= set(why)
    lora = get_method("po_gd").load(vlm, trained("po_gd").directory)
    assert lora.explain(s.image_path, s.question) is None


# ---- per method: files, save → load, refusals ----------------------------------------------------
@pytest.mark.parametrize("name", METHODS)
def test_artifact_dir_round_trips_with_the_same_outputs(name, vlm, split, trained):
    art = trained(name)
    files = sorted(p.name for p in art.directory.iterdir())
    assert files == ["adapter_config.json", "adapter_model.safetensors"]
    cfg = json.loads((art.directory / "adapter_config.json").read_text())
    assert cfg["method"] == name and cfg["forget_ids"] == ["00000001"]
    assert {"base_fingerprint", "weights_sha256", "setting", "categories"} <= set(cfg)
    first = load_unlearned(vlm, art.directory)
    second = load_unlearned(vlm, art.directory)
    samples = split.forget_set[:2] + split.retain_set[:2]
    imgs, qs = [s.image_path for s in samples], [s.question for s in samples]
    assert first.generate(imgs, qs, max_new_tokens=8) == second.generate(imgs, qs, max_new_tokens=8)
    a = first.answer_logprobs(imgs, qs, [s.answer for s in samples])
    b = second.answer_logprobs(imgs, qs, [s.answer for s in samples])
    for x, y in zip(a, b, strict=True):
        assert torch.allclose(torch.tensor(x["logprobs"]), torch.tensor(y["logprobs"]), atol=1e-5)
    if art.model is not None:  # what training left in memory answers as the reload does
        assert art.model.generate(imgs, qs, max_new_tokens=8) == first.generate(
            imgs, qs, max_new_tokens=8
        )


@pytest.mark.parametrize("name", METHODS)
def test_foreign_base_and_altered_files_are_refused(name, vlm, trained, tmp_path):
    import shutil

    art = trained(name)
    other = copy_vlm(vlm)
    with torch.no_grad():
        next(other.model.parameters()).add_(0.5)
    with pytest.raises(ArtifactMismatchError):
        load_unlearned(other, art.directory)
    bad = tmp_path / "bad"
    shutil.copytree(art.directory, bad)
    weights = bad / "adapter_model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ArtifactTamperedError):
        load_unlearned(vlm, bad)
