"""Full fine-tuning (the demo bundle's base-model stages) really learns and re-freezes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cagul.demo.finetune import FinetuneConfig, finetune, pretrain_vision_identity
from cagul.models import load_vlm


def test_finetune_memorises_and_refreezes(tiny_dirs, tmp_path):
    vlm = load_vlm(tiny_dirs["qwen2_5_vl"], device="cpu")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        p = tmp_path / f"{i}.png"
        Image.fromarray((rng.random((112, 112, 3)) * 255).astype("uint8")).save(p)
        paths.append(str(p))
    samples = [
        (paths[0], "Where does this person live?", "Springfield."),
        (paths[1], "Where does this person live?", "Paris."),
    ]
    batch = vlm.prepare([s[0] for s in samples], [s[1] for s in samples], [s[2] for s in samples])
    before = vlm.loss(batch).mean().item()
    stats = finetune(vlm, samples, FinetuneConfig(epochs=30, lr=3e-3, batch_size=2))
    after = vlm.loss(batch).mean().item()
    assert stats["steps"] == 30
    assert after < 0.5 * before
    assert all(not p.requires_grad for p in vlm.model.parameters())


def test_vision_identity_pretraining_separates_two_faces(tiny_dirs, tmp_path):
    vlm = load_vlm(tiny_dirs["qwen2_5_vl"], device="cpu")
    paths = []
    for i, colour in enumerate([(200, 40, 40), (40, 40, 200)]):
        p = tmp_path / f"{i}.png"
        Image.new("RGB", (112, 112), colour).save(p)
        paths.append(str(p))
    stats = pretrain_vision_identity(
        vlm, paths, [0, 1], steps=40, batch_size=8, eval_every=10, min_steps=10
    )
    assert stats["accuracy"] == 1.0 and stats["augmented_accuracy"] == 1.0
    assert all(not p.requires_grad for p in vlm.model.parameters())


def test_vision_pretraining_checks_scenes_on_a_bounded_subset(tiny_dirs, tmp_path):
    """With more scenes than `eval_scenes`, the accuracy checks look at the first
    `eval_scenes` only (a large scene set must not make every check a full pass), and their
    labels stay aligned with those scenes."""
    import torch

    from cagul.demo.finetune import pretrain_vision

    vlm = load_vlm(tiny_dirs["qwen2_5_vl"], device="cpu")
    faces, scenes = [], []
    for i, colour in enumerate([(200, 40, 40), (40, 40, 200), (40, 200, 40)]):
        p = tmp_path / f"face{i}.png"
        Image.new("RGB", (112, 112), colour).save(p)
        (faces if i < 2 else scenes).append(str(p))
    for i in range(4):
        p = tmp_path / f"scene{i}.png"
        Image.new("RGB", (112, 112), (255 - 50 * i, 250, 240)).save(p)
        scenes.append(str(p))
    attributes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    n_tokens = vlm.visual_tokens(vlm.prepare(scenes[:1], ["What is shown?"]))[0].shape[0]
    token_labels = torch.arange(5)[:, None].expand(5, n_tokens) % 3
    calls = []
    original = vlm._process_images
    vlm._process_images = lambda imgs: (calls.append(len(imgs)), original(imgs))[1]
    stats = pretrain_vision(
        vlm,
        faces,
        [0, 1],
        scenes,
        attributes,
        token_labels,
        steps=2,
        batch_size=4,
        eval_every=1,
        min_steps=1,
        eval_scenes=3,
    )
    assert stats["steps"] == 2 and 0.0 <= stats["attribute_accuracy"] <= 1.0
    assert 3 in calls and 5 not in calls  # the checks passed 3 scenes, never all 5


@pytest.mark.parametrize("contrast", [0.0, 1.0])
def test_vision_pretraining_regresses_tokens_onto_given_targets(tiny_dirs, tmp_path, contrast):
    """With `token_targets`, each scene token is pulled onto its class's target vector (what
    the scene_reading benchmark's `aligned` arm uses): afterwards the nearest target is the
    right class and the tokens are far closer to their targets than at the start, with or
    without the contrastive term beside the regression."""
    import torch

    from cagul.demo.finetune import pretrain_vision

    vlm = load_vlm(tiny_dirs["qwen2_5_vl"], device="cpu")
    faces, scenes = [], []
    for i, colour in enumerate([(200, 40, 40), (40, 40, 200)]):
        p = tmp_path / f"face{i}.png"
        Image.new("RGB", (112, 112), colour).save(p)
        faces.append(str(p))
    for i, colour in enumerate([(250, 250, 240), (30, 30, 30), (40, 200, 40)]):
        p = tmp_path / f"scene{i}.png"
        Image.new("RGB", (112, 112), colour).save(p)
        scenes.append(str(p))
    n_tokens = vlm.visual_tokens(vlm.prepare(scenes[:1], ["What is shown?"]))[0].shape[0]
    labels = torch.arange(3)[:, None].expand(3, n_tokens)
    targets = 3.0 * torch.randn(3, vlm.hidden_size, generator=torch.Generator().manual_seed(0))

    def error() -> float:
        with torch.no_grad():
            toks = torch.stack(vlm.visual_tokens(vlm.prepare(scenes, ["Q?"] * 3)))
        return ((toks - targets[labels]).pow(2).mean() / targets.pow(2).mean()).item()

    with pytest.raises(ValueError, match="token_labels"):
        pretrain_vision(vlm, faces, [0, 1], scenes, torch.eye(3), None, token_targets=targets)
    before = error()
    stats = pretrain_vision(
        vlm,
        faces,
        [0, 1],
        scenes,
        torch.eye(3),
        labels,
        token_targets=targets,
        steps=150,
        batch_size=6,
        eval_every=10,
        min_steps=10,
        lr=5e-3,
        token_contrast=contrast,
    )
    assert stats["token_accuracy"] == 1.0
    assert error() < 0.5 * before


def test_precomputed_tokens_skip_the_qwen_tower_and_give_the_same_loss(tiny_dirs, images):
    """Handing the language model cached visual tokens (the fast path a frozen tower allows)
    gives the loss and the encoder gradient the tower-plus-hook path gives, without running
    the tower."""
    import torch

    from cagul.models import TokenReplacement

    vlm = load_vlm(tiny_dirs["qwen2_5_vl"], device="cpu")
    batch = vlm.prepare(images[:2], ["What is shown?", "Who is it?"], ["A face.", "Nobody."])
    tokens = vlm.visual_tokens(batch)
    runs = []
    handle = vlm.model.model.visual.register_forward_hook(lambda *_: runs.append(1))
    try:
        plain = vlm.loss(batch)
        assert len(runs) == 1
        cached = vlm.loss(batch, TokenReplacement(None, [None, None], tokens))
        assert len(runs) == 1  # the tower did not run
        torch.testing.assert_close(cached, plain)
        encoder = torch.nn.Linear(vlm.hidden_size, vlm.hidden_size)
        idx = [torch.tensor([0, 2]), None]
        grads = []
        for given in (None, tokens):  # hook on the tower's output vs tokens handed over
            encoder.zero_grad()
            loss = vlm.loss(batch, TokenReplacement(encoder, idx, given)).mean()
            loss.backward()
            grads.append((loss.detach(), encoder.weight.grad.clone()))
        assert len(runs) == 2
    finally:
        handle.remove()
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])
    assert grads[0][1].abs().sum() > 0


def test_finetune_with_a_frozen_tower_encodes_each_image_once(tiny_dirs, tmp_path):
    vlm = load_vlm(tiny_dirs["qwen2_5_vl"], device="cpu")
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.png"
        Image.new("RGB", (112, 112), (60 * i, 100, 200)).save(p)
        paths.append(str(p))
    samples = [(p, "What colour is it?", f"Colour {i}.") for i, p in enumerate(paths)]
    encoded = []

    def count(_module, args, kwargs, _out):  # images in this call of the tower
        encoded.append(int((args[1] if len(args) > 1 else kwargs["grid_thw"]).shape[0]))

    handle = vlm.model.model.visual.register_forward_hook(count, with_kwargs=True)
    try:
        stats = finetune(vlm, samples, FinetuneConfig(epochs=4, lr=1e-3, batch_size=2))
    finally:
        handle.remove()
    assert stats["steps"] == 8
    assert sum(encoded) == 3  # three images, each through the tower once over 8 steps
