"""PO+GD (Maini et al. 2024): NLL(refusal | D_f) + NLL(D_r), LoRA on the language model: the
forget questions are trained towards a refusal (a fresh draw from `cagul.data.REFUSALS` each
time a pair comes round) instead of away from the truth, so no early stopping is needed. The
same objective as CAGUL's, on the model's weights instead of on visual tokens."""

from __future__ import annotations

from cagul import losses
from cagul.methods.lora import LoraMethod, Step


class RefusalPO(LoraMethod):
    name = "po_gd"
    refusal_answers = True

    def loss(self, step: Step):
        forget = losses.po(step.vlm.forward(step.forget), step.forget.labels).mean()
        retain = losses.nll(step.vlm.forward(step.retain), step.retain.labels).mean()
        return step.weighted(forget, retain)


METHOD = RefusalPO()
