"""Forget and retain losses shared by CAGUL's objectives and the fine-tuning baselines.

Every function takes logits `[B, T, V]` of a batch prepared with answers and its labels
`[B, T]` (-100 outside the answer and its end token) and returns one value per sample `[B]`,
so callers can weight samples (CAGUL weights hard samples) before averaging. Position t's
logits predict token t + 1, hence the shift by one everywhere.

* `nll`: mean next-token NLL of the labelled answer: GD on retain answers, and PO when the
  labels are a refusal (`po` is the same function, named for what it is used for).
* `ga`: gradient ascent, −NLL, optionally capped so it cannot run off to infinity.
* `kl_to_reference`: KL(reference ‖ current) over the answer positions (GA+KL's retain term:
  stay where the base model was).
* `npo`: negative preference optimisation (Zhang et al. 2024), (2/β)·log(1 + (π/π_ref)^β)
  with π the sequence likelihood of the answer; bounded below by 0 as π → 0, unlike GA.
* `weighted_kl_to_target`: Σ_t w_t KL(target_t ‖ current_t) / Σ_t w_t over the answer
  positions, ViKeR's key-token regularisation toward a target distribution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def answer_mask(labels: torch.Tensor) -> torch.Tensor:
    """`[B, T-1]` float: 1 where position t predicts a labelled token t + 1."""
    return (labels[:, 1:] != -100).float()


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """`[B, T-1]` per-token NLL of the labelled next tokens (0 elsewhere)."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    tok = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]),
        shift_labels.clamp(min=0).reshape(-1),
        reduction="none",
    ).view(shift_labels.shape)
    return tok * (shift_labels != -100)


def nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample mean NLL of the answer (samples with no labels give 0); `[B]`."""
    mask = answer_mask(labels)
    return token_nll(logits, labels).sum(1) / mask.sum(1).clamp(min=1)


po = nll  # preference optimisation: NLL of a refusal answer


def ga(logits: torch.Tensor, labels: torch.Tensor, cap: float | None = None) -> torch.Tensor:
    """Gradient ascent on the true answer: −NLL, with NLL clamped at `cap` when given (past the
    cap the sample gives no gradient)."""
    value = nll(logits, labels)
    return -(value if cap is None else value.clamp(max=cap))


def kl_to_reference(
    logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Per-sample mean over answer positions of KL(reference ‖ current); `[B]`."""
    cur_lp = torch.log_softmax(logits[:, :-1].float(), -1)
    ref_lp = torch.log_softmax(ref_logits[:, :-1].float(), -1)
    mask = answer_mask(labels)
    kl = (ref_lp.exp() * (ref_lp - cur_lp)).sum(-1)
    return (kl * mask).sum(1) / mask.sum(1).clamp(min=1)


def sequence_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample log-likelihood of the whole labelled answer (a sum over its tokens); `[B]`."""
    return -token_nll(logits, labels).sum(1)


def npo(
    logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor, beta: float = 0.1
) -> torch.Tensor:
    """NPO's forget term (2/β)·log(1 + (π/π_ref)^β) per sample; `[B]`. At π = π_ref it is
    (2/β)·log 2 with the gradient of GA scaled by 1; as π/π_ref → 0 the gradient vanishes."""
    log_ratio = sequence_logprob(logits, labels) - sequence_logprob(ref_logits, labels).detach()
    return 2.0 / beta * F.softplus(beta * log_ratio)


def weighted_kl_to_target(
    logits: torch.Tensor, target_logprobs: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Σ_t w_t KL(target_t ‖ current_t) / Σ_t w_t per sample; `[B]`.

    `logits` `[B, T, V]` and `target_logprobs`, `weights`, `mask` `[B, T]`-aligned on the same
    positions (the caller gathers the answer positions of both models into one layout).
    """
    cur_lp = torch.log_softmax(logits.float(), -1)
    kl = (target_logprobs.exp() * (target_logprobs - cur_lp)).sum(-1)
    w = weights * mask
    return (kl * w).sum(1) / w.sum(1).clamp(min=1e-6)


def entropy(logprobs: torch.Tensor) -> torch.Tensor:
    """Entropy of each distribution over the last dim (nats)."""
    return -(logprobs.exp() * logprobs).sum(-1)
