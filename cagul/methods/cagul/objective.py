"""CAGUL's objective for the token encoder: the loss of one batch.

Every sample the encoder trains on has its image rewritten; its role says what it should do:
- **po_gd** (the default): PO on the forget set, the NLL of the sample's refusal answer, and GD
  on the other samples, the NLL of their ground-truth answer (the non-private set, plus retain
  samples when there is no discriminator);
- **ga_gd**: gradient ascent on the forget set's ground-truth answer (capped at `ga_cap`, so it
  cannot diverge) instead of PO;
- **ga_kl**: GA, and a KL to the base model's answer distribution on the other samples
  instead of GD.

The terms are the shared losses of `cagul.losses` (the LoRA baselines use the same ones),
weighted `forget_weight` and `gd_weight`. Under PO each sample is also weighted by how far its
last loss lies above the mean of its role (`hard_weights`), so effort goes where an answer
still leaks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from cagul import losses

if TYPE_CHECKING:
    from cagul.methods.cagul.config import CagulTrainingArguments
    from cagul.models import VLM, Batch


def targets(samples: list, objective: str) -> list[str]:
    """The answer each sample is trained towards: its refusal for a forget sample under PO,
    its ground-truth answer otherwise."""
    po = objective == "po_gd"
    return [s.refusal if s.role == "forget" and po else s.answer for s in samples]


def hard_weights(
    last_loss: torch.Tensor, is_forget: torch.Tensor, idx: list[int], exponent: float, cap: float
) -> torch.Tensor:
    """Weights of samples `idx`: (last loss / mean last loss of the same role) ** `exponent`,
    at most `cap`; 1 for a sample not seen yet (NaN last loss) or when `exponent` is 0."""
    w = torch.ones(len(idx))
    if not exponent:
        return w
    sel = torch.tensor(idx, dtype=torch.long)
    for role in (True, False):
        seen = (is_forget == role) & ~last_loss.isnan()
        if not seen.any():
            continue
        mean = last_loss[seen].mean().clamp(min=1e-6)
        mine = (is_forget[sel] == role) & ~last_loss[sel].isnan()
        w[mine] = (last_loss[sel][mine].clamp(min=0) / mean) ** exponent
    return w.clamp(max=cap)


class Objective:
    """The loss of encoder batches over a fixed list of samples (`is_forget[i]`: sample i is
    a forget sample); remembers each sample's last NLL for the hard-sample weights."""

    def __init__(self, name: str, args: CagulTrainingArguments, is_forget: torch.Tensor):
        self.name = name  # po_gd | ga_gd | ga_kl, checked by the adapter's config
        self.args = args
        self.is_forget = is_forget
        self.last_loss = torch.full((len(is_forget),), float("nan"))

    def loss(
        self, vlm: VLM, batch: Batch, logits: torch.Tensor, idx: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the batch's loss, each sample's NLL of its target) for samples `idx`, whose
        `logits` were computed on `batch` with their tokens rewritten."""
        args = self.args
        po = self.name == "po_gd"
        nll = losses.nll(logits, batch.labels)
        forget = self.is_forget[idx].to(nll.device)
        forget_term = nll if po else losses.ga(logits, batch.labels, cap=args.ga_cap)
        retain_term = nll
        if self.name == "ga_kl":
            with torch.no_grad():
                base_logits = vlm.forward(batch)
            retain_term = losses.kl_to_reference(logits, base_logits, batch.labels)
        per = torch.where(forget, args.forget_weight * forget_term, args.gd_weight * retain_term)
        if po:
            w = hard_weights(self.last_loss, self.is_forget, idx, args.hard_weight, args.hard_cap)
            per = per * w.to(per.device)
            self.last_loss[idx] = nll.detach().float().cpu()
        return per.mean(), nll
