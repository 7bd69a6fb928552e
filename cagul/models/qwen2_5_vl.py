"""Qwen2.5-VL: joint self-attention over text and the merged patch tokens.

The visual tokens are the output of `model.model.visual` (`pooler_output`, already merged 2x2
and back in image order); we hook there rather than on `visual.merger`, whose output is still in
the window-attention order. One image gives (h/merge) x (w/merge) tokens, with h and w read from
the processor's `image_grid_thw`.
"""

from __future__ import annotations

import math

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .base import ImageLayout, TokenReplacement, replace_tokens, row_major_grid
from .joint import JointAttentionVLM


def _rewritten(per_image, replacement: TokenReplacement, dtype) -> list[torch.Tensor]:
    """Each image's tokens with its selected rows passed through its sample's module."""
    return [
        replace_tokens(v.to(dtype), replacement.module_for(b), idx)
        for b, (v, idx) in enumerate(zip(per_image, replacement.indices, strict=True))
    ]


class QwenVL(JointAttentionVLM):
    family = "qwen2_5_vl"

    @property
    def image_token(self) -> str:
        return "<|image_pad|>"

    @property
    def cross_modal_layers(self) -> list[int]:
        return list(range(self.config.text_config.num_hidden_layers))

    def default_image_size(self) -> tuple[int, int]:
        ip = self.image_processor
        lo = getattr(ip, "min_pixels", None) or ip.size.get("shortest_edge", 56 * 56)
        hi = getattr(ip, "max_pixels", None) or ip.size.get("longest_edge", 1024 * 1024)
        side = int(math.sqrt(min(max(448 * 448, lo), hi)))
        return side, side

    def _process_images(self, images):
        out = self.image_processor(images=images, return_tensors="pt")
        merge = self.config.vision_config.spatial_merge_size
        layouts = []
        for t, h, w in out["image_grid_thw"].tolist():
            rows, cols = h // merge, w // merge
            layouts.append(ImageLayout(t * rows * cols, (rows, cols), row_major_grid(rows, cols)))
        return {
            "pixel_values": out["pixel_values"],
            "image_grid_thw": out["image_grid_thw"],
        }, layouts

    def _image_mask(self, batch) -> torch.Tensor:
        return batch.inputs["input_ids"] == self.config.image_token_id

    def _split(self, pooled: torch.Tensor, batch) -> list[torch.Tensor]:
        return list(pooled.split([lay.n_tokens for lay in batch.layouts]))

    def _hooks(self, replacement: TokenReplacement, batch):
        def hook(_module, _args, output):
            per_image = replacement.visual_tokens or self._split(output.pooler_output, batch)
            output.pooler_output = torch.cat(
                _rewritten(per_image, replacement, output.pooler_output.dtype)
            )
            return output

        return [self.model.model.visual.register_forward_hook(hook)]

    def _inputs_without_tower(self, batch, replacement):
        # Qwen2_5_VLModel takes the encoder's output in place of pixel_values: with cached
        # tokens the frozen tower (about half a tiny model's training step) is skipped.
        tokens = [v.to(self.device) for v in replacement.visual_tokens]
        new = _rewritten(tokens, replacement, self.model.dtype)
        inputs = {k: v for k, v in batch.inputs.items() if k != "pixel_values"}
        inputs["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(pooler_output=new)}
        return inputs

    def _capture_hook(self, store):
        def hook(_module, _args, output):
            pooled = output.pooler_output.detach()
            store.extend(pooled.split(self._pending_sizes))

        return [self.model.model.visual.register_forward_hook(hook)]

    def visual_tokens(self, batch):
        self._pending_sizes = [lay.n_tokens for lay in batch.layouts]
        return super().visual_tokens(batch)

    def _vision_only(self, batch) -> None:
        # The vision tower alone yields the tokens; no language-model pass is needed.
        self.model.model.get_image_features(
            batch.inputs["pixel_values"], batch.inputs["image_grid_thw"]
        )
