"""Full fine-tuning (the demo bundle's base-model stages) really learns and re-freezes."""

from __future__ import annotations

import numpy as np
from PIL import Image

from cagul.finetune import FinetuneConfig, finetune, pretrain_vision_identity
from cagul.models import load_vlm


def test_finetune_memorises_and_refreezes(tiny_dirs, tmp_path):
    vlm = load_vlm(tiny_dirs["qwen2_5_vl"], device="cpu")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        p = tmp_path / f"{i}.png"
        Image.fromarray((rng.random((112, 112, 3)) * 255).astype("uint8")).save(p)
        paths.append(str(p))
    samples = [(paths[0], "Where does this person live?", "Springfield."),
               (paths[1], "Where does this person live?", "Paris.")]  # fmt: skip
    batch = vlm.prepare([s[0] for s in samples], [s[1] for s in samples],
                        [s[2] for s in samples])  # fmt: skip
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
