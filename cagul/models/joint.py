"""What every joint-attention VLM (LLaVA, Qwen2.5-VL) scores the same way: its text and image
tokens share the language model's self-attention, so a layer's image-relevance scores come from
that layer's `self_attn` over the positions of `_image_mask`."""

from __future__ import annotations

from .base import VLM, joint_scores
from .scores import joint_scorer


class JointAttentionVLM(VLM):
    """A VLM whose image tokens sit in the language model's sequence (joint self-attention)."""

    attention = "joint"

    def _score_layers(self, attentions, batch):
        return joint_scores(attentions, batch, self._image_mask(batch), self.cross_modal_layers)

    def _score_modules(self):
        layers = self.model.model.language_model.layers
        return [layers[i].self_attn for i in self.cross_modal_layers]

    def _layer_scorer(self, batch):
        return joint_scorer(batch, self._image_mask(batch))
