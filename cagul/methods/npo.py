"""NPO (Zhang et al. 2024) + GD: (2/β)·log(1 + (π/π_ref)^β) on D_f with β = 0.1 and π_ref the
base model (the LoRA layers switched off), + NLL(D_r). Unlike GA its forget term is bounded
below and its gradient fades as the answer becomes unlikely, so it does not collapse and is
not stopped early by default (`early_stop=True` applies the shared rule)."""

from __future__ import annotations

from cagul import losses
from cagul.methods.lora import LoraMethod, Step


class NegativePreference(LoraMethod):
    name = "npo"

    def loss(self, step: Step):
        f = step.forget
        forget = losses.npo(
            step.vlm.forward(f), step.reference(f), f.labels, step.args.npo_beta
        ).mean()
        retain = losses.nll(step.vlm.forward(step.retain), step.retain.labels).mean()
        return step.weighted(forget, retain)


METHOD = NegativePreference()
