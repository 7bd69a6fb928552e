"""The VLM family layer on tiny models of all three families (Foundation acceptance)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

from cagul.models import (
    InputError,
    TokenReplacement,
    UnsupportedModelError,
    detect_family,
    load_vlm,
)

QUESTIONS = ["Where does this person live?", "What is the health condition of this person?"]
ANSWERS = ["In Springfield.", "Asthma."]


class Scale(torch.nn.Module):
    """A replacement far from identity, so its effect is not lost in a random tiny model."""

    def __init__(self, d: int):
        super().__init__()
        self.lin = torch.nn.Linear(d, d)
        torch.nn.init.normal_(self.lin.weight, std=3.0)

    def forward(self, x):
        return self.lin(x)


def _all_tokens(vlm, batch):
    return [torch.arange(lay.n_tokens) for lay in batch.layouts]


def test_visual_tokens_match_layout_and_prompt(tiny_vlms, family, images):
    vlm = tiny_vlms[family]
    batch = vlm.prepare(images, QUESTIONS)
    tokens = vlm.visual_tokens(batch)
    info = vlm.info()
    for v, lay in zip(tokens, batch.layouts, strict=True):
        assert v.shape == (lay.n_tokens, vlm.hidden_size)
        rows, cols = lay.grid
        assert lay.grid_index.shape == (rows * cols,)
        assert lay.grid_index.unique().numel() == rows * cols
        assert int(lay.grid_index.max()) < lay.n_tokens
    # The grid comes from the processor: Qwen2.5-VL keeps the aspect ratio (dynamic
    # resolution), the others resize to a fixed square. A square image of the default size
    # gets exactly the grid `info` reports.
    square = vlm.prepare([Image.new("RGB", tuple(info["image_size"]))], QUESTIONS[:1])
    assert list(square.layouts[0].grid) == info["grid"]
    assert square.layouts[0].n_tokens == info["visual_tokens"]
    if family == "qwen2_5_vl":
        assert [lay.grid for lay in batch.layouts] == [(4, 3), (3, 5)]
    if vlm.attention == "joint":
        # Every visual token has exactly one placeholder position in the prompt.
        n_placeholders = (batch.inputs["input_ids"] == vlm.config.image_token_id).sum(1)
        assert n_placeholders.tolist() == [lay.n_tokens for lay in batch.layouts]


def test_question_rows_are_the_question_only(tiny_vlms, family, images):
    vlm = tiny_vlms[family]
    batch = vlm.prepare(images, QUESTIONS, ANSWERS)
    for b, q in enumerate(QUESTIONS):
        ids = batch.inputs["input_ids"][b][batch.question_mask[b]]
        assert vlm.tokenizer.decode(ids) == q
        answer_ids = batch.labels[b][batch.labels[b] != -100]
        assert vlm.tokenizer.decode(answer_ids, skip_special_tokens=True) == ANSWERS[b]


def test_scores_are_attention_distributions(tiny_vlms, family, images):
    vlm = tiny_vlms[family]
    batch = vlm.prepare(images, QUESTIONS)
    scores = vlm.cross_modal_scores(batch)
    for s, lay in zip(scores, batch.layouts, strict=True):
        assert s.shape == (len(vlm.cross_modal_layers), lay.n_tokens)
        assert torch.isfinite(s).all() and (s >= 0).all()
        # A mean of (head, row) distributions over the image tokens: its sum is at most 1.
        assert (s.sum(-1) <= 1 + 1e-5).all()
        assert (s.sum(-1) > 0).all()
    # SDPA is restored after the eager pass that scores need.
    assert vlm.model.config._attn_implementation == "sdpa"


def test_scores_depend_on_the_question(tiny_vlms, family, images):
    vlm = tiny_vlms[family]
    a = vlm.cross_modal_scores(vlm.prepare(images[:1], ["Where does this person live?"]))[0]
    b = vlm.cross_modal_scores(vlm.prepare(images[:1], ["How much does this person earn?"]))[0]
    assert not torch.allclose(a, b)


def test_identity_replacement_reproduces_base_logits(tiny_vlms, family, images):
    vlm = tiny_vlms[family]
    batch = vlm.prepare(images, QUESTIONS, ANSWERS)
    base = vlm.forward(batch)
    same = vlm.forward(batch, TokenReplacement(torch.nn.Identity(), _all_tokens(vlm, batch)))
    assert (same - base).abs().max() < 1e-5


def test_trainable_replacement_changes_logits_and_only_it_gets_gradients(tiny_vlms, family, images):
    vlm = tiny_vlms[family]
    batch = vlm.prepare(images, QUESTIONS, ANSWERS)
    base = vlm.forward(batch).detach()
    module = Scale(vlm.hidden_size)
    idx = [torch.arange(8), None]  # second sample untouched
    logits = vlm.forward(batch, TokenReplacement(module, idx))
    assert (logits[0] - base[0]).abs().max() > 1e-3
    assert (logits[1] - base[1]).abs().max() < 1e-5
    loss = vlm.loss(batch, TokenReplacement(module, idx)).sum()
    loss.backward()
    assert module.lin.weight.grad is not None and module.lin.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in vlm.model.parameters())


def test_generate_with_replacement_differs(tiny_vlms, family, images):
    vlm = tiny_vlms[family]
    batch = vlm.prepare(images, QUESTIONS)
    texts, base = vlm.generate(batch, max_new_tokens=3, return_logits=True)
    assert len(texts) == 2
    torch.manual_seed(0)
    rep = TokenReplacement(Scale(vlm.hidden_size), _all_tokens(vlm, batch))
    _, changed = vlm.generate(batch, rep, max_new_tokens=3, return_logits=True)
    assert (changed[:, 0] - base[:, 0]).abs().max() > 1e-3
    # The hooks are gone afterwards: the base model answers as before.
    _, again = vlm.generate(batch, max_new_tokens=3, return_logits=True)
    assert torch.allclose(again, base)


def test_loss_is_per_sample_answer_nll(tiny_vlms, family, images):
    vlm = tiny_vlms[family]
    batch = vlm.prepare(images, QUESTIONS, ANSWERS)
    loss = vlm.loss(batch)
    assert loss.shape == (2,) and torch.isfinite(loss).all()
    single = vlm.loss(vlm.prepare(images[:1], QUESTIONS[:1], ANSWERS[:1]))
    # Left padding must not change a sample's loss.
    assert torch.allclose(loss[0], single[0], atol=1e-4)


def test_save_load_round_trip_gives_identical_logits(tiny_vlms, family, images, tmp_path):
    vlm = tiny_vlms[family]
    vlm.model.save_pretrained(tmp_path)
    vlm.tokenizer.save_pretrained(tmp_path)
    vlm.image_processor.save_pretrained(tmp_path)
    again = load_vlm(tmp_path, device="cpu")
    batch = vlm.prepare(images, QUESTIONS, ANSWERS)
    batch2 = again.prepare(images, QUESTIONS, ANSWERS)
    assert torch.equal(batch.inputs["input_ids"], batch2.inputs["input_ids"])
    assert torch.equal(vlm.forward(batch), again.forward(batch2))


def test_mllama_takes_one_token_set_per_cross_attention_layer(tiny_vlms, images):
    vlm = tiny_vlms["mllama"]
    assert len(vlm.cross_modal_layers) == 2
    batch = vlm.prepare(images[:1], QUESTIONS[:1])
    torch.manual_seed(0)
    module = Scale(vlm.hidden_size)
    same = vlm.forward(batch, TokenReplacement(module, [torch.tensor([[1, 2, 3], [1, 2, 3]])]))
    flat = vlm.forward(batch, TokenReplacement(module, [torch.tensor([1, 2, 3])]))
    per_layer = vlm.forward(batch, TokenReplacement(module, [torch.tensor([[1, 2, 3], [7, 8, 9]])]))
    assert torch.allclose(same, flat, atol=1e-6)
    assert (per_layer - same).abs().max() > 1e-4


def test_cached_visual_tokens_substitute_the_vision_tower(tiny_vlms, family, images):
    vlm = tiny_vlms[family]
    images = [images[0], images[0].transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    batch = vlm.prepare(images, QUESTIONS, ANSWERS)
    cached = vlm.visual_tokens(batch)
    base = vlm.forward(batch)
    same = vlm.forward(batch, TokenReplacement(None, [None, None], visual_tokens=cached))
    assert (same - base).abs().max() < 1e-5
    swapped = vlm.forward(batch, TokenReplacement(None, [None, None], visual_tokens=cached[::-1]))
    assert (swapped - base).abs().max() > 1e-4


@pytest.mark.parametrize("question", ["", "   ", "x" * 5000])
def test_bad_questions_are_refused(tiny_vlms, images, question):
    with pytest.raises(InputError):
        tiny_vlms["qwen2_5_vl"].prepare(images[:1], [question])


def test_bad_images_are_refused(tiny_vlms, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(InputError, match="cannot read image"):
        tiny_vlms["llava"].prepare([corrupt], ["What is this?"])
    with pytest.raises(InputError, match="too large"):
        tiny_vlms["llava"].prepare([Image.new("RGB", (8000, 6000))], ["What is this?"])
    with pytest.raises(InputError):
        tiny_vlms["llava"].prepare(["/no/such/file.png"], ["What is this?"])


def test_unsupported_directories_name_the_supported_families(tmp_path):
    with pytest.raises(UnsupportedModelError, match="not a directory"):
        detect_family(tmp_path / "missing")
    with pytest.raises(UnsupportedModelError, match="no config.json"):
        load_vlm(tmp_path)
    from transformers import LlamaConfig, LlamaForCausalLM

    text_only = tmp_path / "llama"
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=32,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    ).save_pretrained(text_only)
    with pytest.raises(UnsupportedModelError, match="Qwen2.5-VL.*mllama.*llava"):
        load_vlm(text_only)


def test_info_cli_prints_the_contract(tiny_dirs, family):
    out = subprocess.run(
        [sys.executable, "-m", "cagul", "info", "--model", tiny_dirs[family]],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(out.stdout)
    expected = {
        "qwen2_5_vl": ("joint", 16, [4, 4]),
        "llava": ("joint", 64, [8, 8]),
        "mllama": ("cross", 65, [8, 8]),
    }[family]
    assert (info["attention"], info["visual_tokens"], info["grid"]) == expected
    assert info["family"] == family and info["hidden_size"] == 128
    assert set(info) >= {
        "family",
        "attention",
        "hidden_size",
        "visual_tokens",
        "grid",
        "cross_modal_layers",
    }


def test_info_cli_fails_clearly_on_a_non_model(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "cagul", "info", "--model", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "no config.json" in out.stderr
