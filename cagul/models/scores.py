"""Cross-modal scores from hooks: only the question-rows x image-columns attention block.

`output_attentions` under eager attention materialises every layer's full `[B, H, S, S]` map
(gigabytes for a 7B model with ~1400 image tokens), and SDPA, which the model otherwise runs,
returns no weights at all. Instead, a forward pre-hook on each cross-modal attention module
recomputes, from the module's own q/k projections and the position embeddings the decoder hands
it, just the rows the scores need: `[H, |Q|, S]` logits per sample and layer, softmaxed over
every key the row may see (causal, not padding, inside a sliding window if the layer has one),
then cut down to the image columns. The forward itself is untouched and keeps SDPA.

Cross-attention (Mllama) has no rotary: the keys are the k-projected (and k-normed) vision
states, the additive mask is the one the model prepared for that layer.

Every hook must fire once per forward; a layer that did not report raises
`AttentionUnavailableError` instead of yielding a made-up map.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import torch
from torch import nn

from cagul.errors import AttentionUnavailableError

LayerScorer = Callable[[nn.Module, tuple, dict], list[torch.Tensor]]


def _kwarg(args: tuple, kwargs: dict, name: str, position: int):
    """A forward argument whether it came by keyword (transformers 5.x decoders) or position."""
    if name in kwargs:
        return kwargs[name]
    return args[position] if len(args) > position else None


def _rope_function(module: nn.Module) -> Callable:
    """The `apply_rotary_pos_emb` of the module's own modeling file: the exact rotary (and, for
    Qwen2.5-VL, mrope: its cos/sin arrive already recomposed) that the forward applied."""
    fn = getattr(sys.modules[type(module).__module__], "apply_rotary_pos_emb", None)
    if fn is None:
        raise AttentionUnavailableError(
            f"{type(module).__module__} has no apply_rotary_pos_emb; cannot rebuild its keys"
        )
    return fn


def _grouped_logits(q: torch.Tensor, k: torch.Tensor, scaling: float) -> torch.Tensor:
    """`q` [H, Q, D] against `k` [KV, S, D] -> [H, Q, S], each k head shared by H/KV q heads
    in `repeat_kv` order, without materialising the repeated keys."""
    heads, rows, dim = q.shape
    kv = k.shape[0]
    if heads % kv:
        raise AttentionUnavailableError(f"{heads} query heads do not group over {kv} key heads")
    grouped = q.reshape(kv, heads // kv, rows, dim)
    logits = torch.matmul(grouped, k.transpose(-1, -2).unsqueeze(1))
    return logits.reshape(heads, rows, -1) * scaling


def _heads(x: torch.Tensor, head_dim: int) -> torch.Tensor:
    """[N, heads * head_dim] -> [heads, N, head_dim] in float32 (scores are softmax-sensitive)."""
    return x.view(x.shape[0], -1, head_dim).transpose(0, 1).float()


def allowed_keys(
    rows: torch.Tensor, key_mask: torch.Tensor, sliding_window: int | None = None
) -> torch.Tensor:
    """[Q, S] bool: key j is visible to row i when j <= i, j is not padding and, with a sliding
    window, i - j < window (the rule of transformers' causal and sliding masks)."""
    keys = torch.arange(key_mask.shape[0], device=rows.device)
    allowed = (keys[None, :] <= rows[:, None]) & key_mask.bool()[None, :]
    if sliding_window is not None:
        allowed &= keys[None, :] > rows[:, None] - sliding_window
    return allowed


def block_scores(logits: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Softmax over all keys of each row, then the mean over heads and rows of the image
    columns `cols` -> [len(cols)]. A row's weights over the image sum to at most 1."""
    weights = torch.softmax(logits.float(), dim=-1)
    return weights[..., cols].mean(dim=(0, 1))


def joint_layer_scorer(
    rows: list[torch.Tensor], cols: list[torch.Tensor], key_mask: torch.Tensor
) -> LayerScorer:
    """A pre-hook body for a self-attention module over text and image tokens (Qwen2.5-VL,
    LLaVA's Llama): per sample b, the scores of image positions `cols[b]` seen from question
    rows `rows[b]`; `key_mask` [B, S] is the attention mask (0 at left padding)."""

    def score(module: nn.Module, args: tuple, kwargs: dict) -> list[torch.Tensor]:
        hidden = _kwarg(args, kwargs, "hidden_states", 0)
        pos = kwargs.get("position_embeddings")
        if hidden is None or pos is None:
            raise AttentionUnavailableError(
                f"{type(module).__name__} got no hidden_states or position_embeddings"
            )
        rope = _rope_function(module)
        window = getattr(module, "sliding_window", None)
        cos, sin = pos
        out = []
        for b in range(hidden.shape[0]):
            r = rows[b].to(hidden.device)
            q = _heads(module.q_proj(hidden[b, r]), module.head_dim)
            k = _heads(module.k_proj(hidden[b]), module.head_dim)
            # One cos/sin row for the whole batch where positions are shared (Llama's arange).
            cb, sb = (c[b if c.shape[0] > 1 else 0][None].float() for c in (cos, sin))
            q, _ = rope(q[None], q[None], cb[:, r], sb[:, r])
            _, k = rope(k[None], k[None], cb, sb)
            logits = _grouped_logits(q[0], k[0], module.scaling)
            allowed = allowed_keys(r, key_mask[b].to(hidden.device), window)
            logits = logits.masked_fill(~allowed, float("-inf"))
            out.append(block_scores(logits, cols[b].to(hidden.device)))
        return out

    return score


def cross_layer_scorer(rows: list[torch.Tensor], n_tokens: list[int]) -> LayerScorer:
    """A pre-hook body for a cross-attention module (Mllama): question rows `rows[b]` against
    the first `n_tokens[b]` vision states, under the layer's own additive mask."""

    def score(module: nn.Module, args: tuple, kwargs: dict) -> list[torch.Tensor]:
        hidden = _kwarg(args, kwargs, "hidden_states", 0)
        states = kwargs.get("cross_attention_states")
        if hidden is None or states is None:
            raise AttentionUnavailableError(
                f"{type(module).__name__} got no hidden_states or cross_attention_states"
            )
        mask = kwargs.get("attention_mask")
        bsz = hidden.shape[0]
        states = states.reshape(bsz, -1, states.shape[-1])
        q_norm = getattr(module, "q_norm", None) or nn.Identity()
        k_norm = getattr(module, "k_norm", None) or nn.Identity()
        out = []
        for b in range(bsz):
            r = rows[b].to(hidden.device)
            q = q_norm(_heads(module.q_proj(hidden[b, r]), module.head_dim))
            k = k_norm(_heads(module.k_proj(states[b]), module.head_dim))
            logits = _grouped_logits(q.float(), k.float(), module.scaling)
            if mask is not None:
                logits = logits + mask[b, :, r, : logits.shape[-1]].float()
            cols = torch.arange(n_tokens[b], device=hidden.device)
            out.append(block_scores(logits, cols))
        return out

    return score


@contextlib.contextmanager
def recording(modules: list[nn.Module], scorer: LayerScorer) -> Iterator[list[list]]:
    """Register `scorer` as a pre-hook on every module; yield the per-module lists of what each
    call returned. Hooks are removed on exit, whatever happened."""
    store: list[list] = [[] for _ in modules]
    handles = []
    for i, module in enumerate(modules):

        def hook(m, args, kwargs, i=i):
            store[i].append(scorer(m, args, kwargs))

        handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def per_sample(store: list[list], layers: list[int], batch_size: int) -> list[torch.Tensor]:
    """Turn what the hooks recorded into one [L, n_b] tensor per sample; a layer whose hook did
    not fire exactly once is an error, never a blank row."""
    for layer, calls in zip(layers, store, strict=True):
        if len(calls) != 1:
            raise AttentionUnavailableError(
                f"the score hook of layer {layer} fired {len(calls)} times in one forward "
                "(expected once): the model did not run that attention module as hooked"
            )
    return [torch.stack([calls[0][b] for calls in store]) for b in range(batch_size)]


def joint_scorer(batch, image_mask: torch.Tensor) -> LayerScorer:
    """`joint_layer_scorer` for a prepared batch: question rows from `batch.question_mask`,
    image columns from `image_mask` [B, T] (token order), padding from the attention mask."""
    rows, cols = [], []
    for b in range(len(batch)):
        rows.append(batch.question_mask[b].nonzero().squeeze(-1))
        cols.append(image_mask[b].nonzero().squeeze(-1))
        if rows[-1].numel() == 0 or cols[-1].numel() == 0:
            raise AttentionUnavailableError(f"sample {b} has no question rows or no image tokens")
    return joint_layer_scorer(rows, cols, batch.inputs["attention_mask"])


def cross_scorer(batch) -> LayerScorer:
    """`cross_layer_scorer` for a prepared batch: each image's tokens are the first
    `layout.n_tokens` cross-attention states of its sample."""
    rows = [batch.question_mask[b].nonzero().squeeze(-1) for b in range(len(batch))]
    if any(r.numel() == 0 for r in rows):
        raise AttentionUnavailableError("a sample has no question rows")
    return cross_layer_scorer(rows, [lay.n_tokens for lay in batch.layouts])
