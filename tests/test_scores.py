"""Hook-based cross-modal scores against the eager `output_attentions` reference, per family.

The hooks rebuild only the question-rows x image-columns block from each attention module's
own projections and position embeddings while the model runs SDPA; these tests pin them to the
eager maps (left padding, GQA, mrope/rotary, Mllama's cross-attention, a token replacement),
check that the default path never switches the model to eager, and that a hook that does not
fire is an error rather than a made-up map.
"""

from __future__ import annotations

import copy

import pytest
import torch

from cagul.models import AttentionUnavailableError, TokenReplacement
from cagul.models.scores import allowed_keys, per_sample
from tests.test_models import Scale

# Different lengths on purpose: the shorter question's row is left-padded.
QUESTIONS = [
    "Where does this person live?",
    "What is the health condition of this individual? Has this person been convicted of a crime?",
]
TOL = 1e-4


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    assert [x.shape for x in a] == [y.shape for y in b]
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def test_hook_scores_equal_eager_with_left_padding(tiny_vlms, family, images):
    vlm = tiny_vlms[family]
    batch = vlm.prepare(images, QUESTIONS)
    assert (batch.inputs["attention_mask"] == 0).any(), "the batch must exercise left padding"
    hooks = vlm.cross_modal_scores(batch)
    eager = vlm.cross_modal_scores(batch, method="eager")
    assert _max_diff(hooks, eager) < TOL
    for s, lay in zip(hooks, batch.layouts, strict=True):
        assert s.shape == (len(vlm.cross_modal_layers), lay.n_tokens)


def test_hook_scores_equal_eager_single_unpadded(tiny_vlms, family, images):
    vlm = tiny_vlms[family]
    batch = vlm.prepare(images[1:], QUESTIONS[:1])
    assert _max_diff(vlm.cross_modal_scores(batch), vlm.eager_cross_modal_scores(batch)) < TOL


def test_hook_scores_equal_eager_under_a_token_replacement(tiny_vlms, family, images):
    vlm = tiny_vlms[family]
    torch.manual_seed(0)
    batch = vlm.prepare(images, QUESTIONS)
    rep = TokenReplacement(Scale(vlm.hidden_size), [torch.arange(6), None])
    hooks = vlm.cross_modal_scores(batch, rep)
    assert _max_diff(hooks, vlm.cross_modal_scores(batch, rep, method="eager")) < TOL
    # The replacement really reached the scored layers: sample 0 moved, sample 1 did not.
    plain = vlm.cross_modal_scores(batch)
    assert (hooks[0] - plain[0]).abs().max() > 1e-4
    assert (hooks[1] - plain[1]).abs().max() < TOL


def test_default_path_keeps_the_attention_implementation(tiny_vlms, family, images, monkeypatch):
    vlm = tiny_vlms[family]
    before = vlm.model.config._attn_implementation
    assert before == "sdpa"

    def refuse(*_a, **_k):
        raise AssertionError("the default score path switched the attention implementation")

    monkeypatch.setattr(vlm.model, "set_attn_implementation", refuse)
    seen = []
    module = vlm._score_modules()[0]
    handle = module.register_forward_pre_hook(
        lambda m, _a: seen.append(m.config._attn_implementation)
    )
    try:
        vlm.cross_modal_scores(vlm.prepare(images, QUESTIONS))
    finally:
        handle.remove()
    assert seen == ["sdpa"]
    assert vlm.model.config._attn_implementation == before


def test_a_hook_that_does_not_fire_is_an_error(tiny_vlms, family, images, monkeypatch):
    vlm = tiny_vlms[family]
    modules = vlm._score_modules()
    # A copy of the last scored module is never called by the forward: its hook stays silent.
    stray = copy.deepcopy(modules[-1])
    monkeypatch.setattr(vlm, "_score_modules", lambda: [*modules[:-1], stray])
    with pytest.raises(AttentionUnavailableError, match="fired 0 times"):
        vlm.cross_modal_scores(vlm.prepare(images, QUESTIONS))
    # No hook is left behind on the real modules after the failure.
    assert all(not m._forward_pre_hooks for m in modules)


def test_a_hook_without_its_inputs_is_an_error(tiny_vlms, family, images):
    vlm = tiny_vlms[family]
    scorer = vlm._layer_scorer(vlm.prepare(images, QUESTIONS))
    module = vlm._score_modules()[0]
    with pytest.raises(AttentionUnavailableError):
        scorer(module, (torch.zeros(2, 3, vlm.hidden_size),), {})


def test_unknown_method_is_rejected(tiny_vlms, images):
    vlm = tiny_vlms["llava"]
    with pytest.raises(ValueError, match="hooks"):
        vlm.cross_modal_scores(vlm.prepare(images[:1], QUESTIONS[:1]), method="flash")


def test_per_sample_rejects_a_layer_that_fired_twice():
    row = [torch.ones(3)]
    with pytest.raises(AttentionUnavailableError, match="fired 2 times"):
        per_sample([[row], [row, row]], [0, 1], 1)


def test_allowed_keys_are_causal_unpadded_and_windowed():
    rows = torch.tensor([2, 4])
    key_mask = torch.tensor([0, 1, 1, 1, 1])  # position 0 is left padding
    allowed = allowed_keys(rows, key_mask)
    assert allowed.tolist() == [
        [False, True, True, False, False],
        [False, True, True, True, True],
    ]
    windowed = allowed_keys(rows, key_mask, sliding_window=2)
    assert windowed.tolist() == [
        [False, True, True, False, False],
        [False, False, False, True, True],
    ]
