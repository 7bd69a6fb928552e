"""GA+GD (Yao et al. 2024): −NLL(D_f) + NLL(D_r), LoRA on the language model; the descent on
retain answers holds the rest of the model while the ascent pushes the forget answers away.
Stopped early by the shared rule (`cagul.methods.lora`)."""

from __future__ import annotations

from cagul import losses
from cagul.methods.lora import LoraMethod, Step


class GradientDifference(LoraMethod):
    name = "ga_gd"
    ga_based = True

    def loss(self, step: Step):
        forget = losses.ga(step.vlm.forward(step.forget), step.forget.labels).mean()
        retain = losses.nll(step.vlm.forward(step.retain), step.retain.labels).mean()
        return step.weighted(forget, retain)


METHOD = GradientDifference()
