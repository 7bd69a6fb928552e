"""GA (Yao, Xu and Liu 2023): gradient ascent on the forget set's true answers, LoRA on the
language model, no retain term; stopped early by the shared rule (`cagul.methods.lora`)."""

from __future__ import annotations

from cagul import losses
from cagul.methods.lora import LoraMethod, Step


class GradientAscent(LoraMethod):
    name = "ga"
    uses_retain = False
    ga_based = True

    def loss(self, step: Step):
        forget = losses.ga(step.vlm.forward(step.forget), step.forget.labels).mean()
        return step.args.forget_weight * forget, {"forget": forget.item()}


METHOD = GradientAscent()
