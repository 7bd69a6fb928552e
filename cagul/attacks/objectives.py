"""The differentiable pieces the attacks minimise, for any unlearned model.

* `visual_tokens(vlm, batch)`: the visual tokens with their graph to `pixel_values` (the
  VLM's own `visual_tokens` runs under no_grad and detaches).
* `gate_margin(adapters, tokens, layouts)`: CAGUL's discriminator logit minus the logit of
  its threshold, the largest over stacked adapters: > 0 means "flagged", so driving it below
  0 evades the gate.
* `answer_nll(model, vlm, batch)`: the unlearned model's NLL of the batch's answers. For
  CAGUL the gate and the rewrite are in the graph: the rewrite strength g is the hard gate in
  the forward pass (exactly what CAGUL does at inference) with the sigmoid's gradient in the
  backward pass (straight-through), so the attack learns both to slip past the gate and to
  undo the rewrite; the token set is the adapter's own least-attended selection on the
  current image (recomputed without gradient each step). LoRA-style methods answer with
  their own weights, so the gradient runs through them; the base model when `model` is None.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from cagul.models import VLM, TokenReplacement
from cagul.models.base import Batch


def with_pixels(batch: Batch, pixel_values: list[torch.Tensor]) -> Batch:
    """`batch` with sample b's `pixel_values` replaced by `pixel_values[b]` (every family's
    image inputs concatenate along dim 0, as `VLM.prepare` builds them)."""
    dtype = batch.inputs["pixel_values"].dtype
    inputs = {**batch.inputs, "pixel_values": torch.cat(pixel_values).to(dtype)}
    return dataclasses.replace(batch, inputs=inputs)


class _Capture(nn.Module):
    """An identity 'rewrite' that keeps what passes through it (tokens with their graph)."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x)
        return x


def visual_tokens(vlm: VLM, batch: Batch) -> list[torch.Tensor]:
    """Per image, its `[n, d]` visual tokens, differentiable w.r.t. `pixel_values`."""
    if vlm.family == "mllama":  # its rewrite hooks sit on the language model, so call the tower
        vision = vlm.model.model.vision_model(
            pixel_values=batch.inputs["pixel_values"],
            aspect_ratio_ids=batch.inputs["aspect_ratio_ids"],
            aspect_ratio_mask=batch.inputs["aspect_ratio_mask"],
        )
        states = vlm.model.model.multi_modal_projector(vision.last_hidden_state)
        return list(states.reshape(len(batch), -1, states.shape[-1]).unbind(0))
    capture = _Capture()
    every = [torch.arange(lay.n_tokens, device=vlm.device) for lay in batch.layouts]
    rep = TokenReplacement(module=capture, indices=every)
    with vlm._replacing(rep, batch):  # the family's own hook on the module that emits tokens
        vlm._vision_only(batch)
    if len(capture.seen) != len(batch):
        raise RuntimeError(f"captured {len(capture.seen)} token sets for {len(batch)} images")
    return capture.seen


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def gate_logits(adapters, tokens, layouts) -> torch.Tensor:
    """`[A, B]`: each discriminating adapter's logit minus its threshold's (> 0: flagged)."""
    rows = [
        a.discriminator(tokens, layouts) - _logit(a.config.threshold)
        for a in adapters
        if a.config.use_discriminator
    ]
    if not rows:
        raise ValueError("no adapter has a discriminator: there is no gate to evade")
    return torch.stack(rows)


def gate_margin(adapters, tokens, layouts) -> torch.Tensor:
    """`[B]`: the largest margin over stacked adapters (the sample is flagged when > 0)."""
    return gate_logits(adapters, tokens, layouts).max(0).values


class _GatedRewrite(nn.Module):
    """x + g (E(x) - x): E's rewrite when g = 1, the token itself when g = 0."""

    def __init__(self, encoder: nn.Module, gate: torch.Tensor):
        super().__init__()
        self.encoder, self.gate = encoder, gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gate * (self.encoder(x).to(x.dtype) - x)


def _cagul_nll(model, batch: Batch) -> torch.Tensor:
    vlm, adapters = model.vlm, model.adapters
    tokens = visual_tokens(vlm, batch)
    margins = torch.stack(
        [
            a.discriminator(tokens, batch.layouts) - _logit(a.config.threshold)
            if a.config.use_discriminator
            else torch.full((len(batch),), 30.0)
            for a in adapters
        ]
    )
    choice = margins.detach().argmax(0)
    needs_scores = any(a.config.selection == "least_attended" for a in adapters)
    with torch.no_grad():
        plain = dataclasses.replace(batch, inputs={k: v.detach() for k, v in batch.inputs.items()})
        scores = vlm.cross_modal_scores(plain) if needs_scores else None
    gen = torch.Generator().manual_seed(0)  # as `cagul.methods.cagul.adapter.plan`
    modules, indices = [], []
    for b in range(len(batch)):
        a = adapters[int(choice[b])]
        m = margins[int(choice[b]), b]
        p = torch.sigmoid(m)
        gate = (m.detach() > 0).float() + (p - p.detach())  # hard forward, sigmoid backward
        s = scores[b] if scores else torch.zeros(len(vlm.cross_modal_layers), len(tokens[b]))
        indices.append(a.select(s, gen))
        modules.append(_GatedRewrite(a.token_encoder, gate))
    rep = TokenReplacement(module=None, indices=indices, visual_tokens=tokens, modules=modules)
    return vlm.loss(batch, rep)


def answer_nll(model, vlm: VLM, batch: Batch) -> torch.Tensor:
    """Per sample, the mean NLL of the batch's answers under `model` (None: the base `vlm`)."""
    if model is None:
        return vlm.loss(batch)
    if getattr(model, "adapters", None):
        return _cagul_nll(model, batch)
    return model.vlm.loss(batch, None)
