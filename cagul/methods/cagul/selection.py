"""Which visual tokens CAGUL rewrites: the k the question attends to least (docs/architecture.md).

`cross_modal_scores` gives, per sample, an `[L, n]` score matrix (one row per cross-modal
layer). Cross-attention models (Mllama) feed each layer its own copy of the visual tokens, so
each layer gets its own bottom-k set (`[L, k]` indices). Joint self-attention models (Qwen2.5-VL,
LLaVA) receive the tokens once, so one set is chosen from the mean score over a configurable
set of layers (default: all). Random selection is the ablation.

During training (`fix_token_sets`) each sample's set is chosen once and kept: the VLM is
frozen, so the scores of an (image, question) never change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    from cagul.models import VLM


class Selector(Protocol):
    """What `fix_token_sets` needs of an adapter (`adapter.CagulAdapter`, which imports this
    module): its config's `selection` and its `select`."""

    config: object

    def select(self, scores: torch.Tensor, generator: torch.Generator | None = None): ...


class SelectionError(ValueError):
    """k or the layer choice does not fit the model's visual tokens."""


def _bottom_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    # Ties (equal scores) break by index so the choice is deterministic.
    return torch.sort(torch.topk(scores, k, dim=-1, largest=False).indices, dim=-1).values


def select_tokens(
    scores: torch.Tensor,
    k: int,
    *,
    per_layer: bool,
    layers: list[int] | None = None,
    random_selection: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Indices of the visual tokens to rewrite for one sample.

    `scores` is `[L, n]`. Returns `[L, k]` when `per_layer` (one set per cross-modal layer),
    else `[k]` from the mean over `layers` (positions into the L rows; None = all).
    """
    if scores.dim() != 2:
        raise SelectionError(f"expected [layers, tokens] scores, got shape {tuple(scores.shape)}")
    n_layers, n = scores.shape
    if not 1 <= k <= n:
        raise SelectionError(f"k={k} must be between 1 and the {n} visual tokens")
    if layers is not None:
        bad = [i for i in layers if not 0 <= i < n_layers]
        if bad or not layers:
            raise SelectionError(f"score layers {layers} not in 0..{n_layers - 1}")
    if random_selection:
        rows = n_layers if per_layer else 1
        idx = torch.stack([torch.randperm(n, generator=generator)[:k] for _ in range(rows)])
        idx = torch.sort(idx, dim=-1).values
        return idx if per_layer else idx[0]
    if per_layer:
        return _bottom_k(scores, k)
    chosen = scores if layers is None else scores[layers]
    return _bottom_k(chosen.mean(0), k)


def fix_token_sets(vlm: VLM, adapter: Selector, samples: list, batch_size: int, seed: int):
    """Give each training sample (anything with `image`, `question` and a settable `indices`)
    its token set, once: the VLM is frozen, so a sample's scores never change. Least-attended
    selection reads the cross-modal scores; random selection draws from a generator seeded
    with `seed`, in the samples' order."""
    gen = torch.Generator().manual_seed(seed)
    n_layers = len(vlm.cross_modal_layers)
    for i in range(0, len(samples), batch_size):
        chunk = samples[i : i + batch_size]
        batch = vlm.prepare([s.image for s in chunk], [s.question for s in chunk])
        if adapter.config.selection == "least_attended":
            scores = vlm.cross_modal_scores(batch)
        else:
            scores = [torch.zeros(n_layers, lay.n_tokens) for lay in batch.layouts]
        for s, sc in zip(chunk, scores, strict=True):
            s.indices = adapter.select(sc, gen)
