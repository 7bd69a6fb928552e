"""GA+KL (Yao et al. 2024): −NLL(D_f) + KL(base ‖ current) on D_r, LoRA on the language
model; the retain term keeps the answer distributions where the base model had them rather
than fitting the retain answers. The base is the same model with the LoRA layers switched off.
Stopped early by the shared rule (`cagul.methods.lora`)."""

from __future__ import annotations

from cagul import losses
from cagul.methods.lora import LoraMethod, Step


class GradientAscentKL(LoraMethod):
    name = "ga_kl"
    ga_based = True

    def loss(self, step: Step):
        forget = losses.ga(step.vlm.forward(step.forget), step.forget.labels).mean()
        r = step.retain
        retain = losses.kl_to_reference(step.vlm.forward(r), step.reference(r), r.labels).mean()
        return step.weighted(forget, retain)


METHOD = GradientAscentKL()
