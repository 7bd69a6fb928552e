"""LLaVA (FIUBench's own models): joint self-attention, CLIP patches through an MLP projector.

The visual tokens are `multi_modal_projector`'s output, [images, n, d]. With the "default"
feature strategy the CLIP class token is dropped, so n = (image_size / patch_size)^2; with
"full" it is kept as token 0 and the grid starts at token 1.
"""

from __future__ import annotations

import torch

from .base import ImageLayout, TokenReplacement, replace_tokens, row_major_grid
from .joint import JointAttentionVLM


class Llava(JointAttentionVLM):
    family = "llava"

    @property
    def image_token(self) -> str:
        return self.tokenizer.convert_ids_to_tokens(self.config.image_token_id)

    @property
    def cross_modal_layers(self) -> list[int]:
        return list(range(self.config.text_config.num_hidden_layers))

    def _needs_bos(self) -> bool:
        return True

    def default_image_size(self) -> tuple[int, int]:
        crop = getattr(self.image_processor, "crop_size", None) or {}
        side = crop.get("height") or self.config.vision_config.image_size
        return side, crop.get("width") or side

    def _process_images(self, images):
        out = self.image_processor(images=images, return_tensors="pt")
        vc = self.config.vision_config
        p = vc.image_size // vc.patch_size
        full = self.config.vision_feature_select_strategy == "full"
        layout = ImageLayout(p * p + int(full), (p, p), row_major_grid(p, p, offset=int(full)))
        return {"pixel_values": out["pixel_values"]}, [layout] * len(images)

    def _image_mask(self, batch) -> torch.Tensor:
        return batch.inputs["input_ids"] == self.config.image_token_id

    def _projector(self):
        return self.model.model.multi_modal_projector

    def _hooks(self, replacement: TokenReplacement, batch):
        def hook(_module, _args, output):
            per_image = replacement.visual_tokens or list(output.unbind(0))
            new = [
                replace_tokens(v.to(output.dtype), replacement.module_for(b), idx)
                for b, (v, idx) in enumerate(zip(per_image, replacement.indices, strict=True))
            ]
            return torch.stack(new)

        return [self._projector().register_forward_hook(hook)]

    def _capture_hook(self, store):
        def hook(_module, _args, output):
            store.extend(output.detach().unbind(0))

        return [self._projector().register_forward_hook(hook)]

    def _vision_only(self, batch) -> None:
        self.model.model.get_image_features(pixel_values=batch.inputs["pixel_values"])
