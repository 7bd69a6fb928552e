"""Mllama / Llama-3.2-Vision: text attends to the image only through cross-attention layers.

The visual tokens are `cross_attention_states`: the projector's output, one block of
(patches + 1 class token) per tile, tiles x that per image. Each cross-attention layer has its
own attention map and so its own least-attended set; replacement therefore happens in a
forward pre-hook on every cross-attention module, where each layer may get a different index
set. In transformers 5.x, `generate(cross_attention_states=...)` recomputes the cross K/V at
every decoding step, so we never pass precomputed states that way: the hooks rewrite them at
prefill only, and decoding reuses the cached K/V.
"""

from __future__ import annotations

import torch

from .base import VLM, ImageLayout, TokenReplacement, replace_tokens
from .scores import cross_scorer


class Mllama(VLM):
    family = "mllama"
    attention = "cross"

    @property
    def image_token(self) -> str:
        return self.tokenizer.convert_ids_to_tokens(self.config.image_token_id)

    @property
    def cross_modal_layers(self) -> list[int]:
        return list(self.config.text_config.cross_attention_layers)

    def default_image_size(self) -> tuple[int, int]:
        size = self.image_processor.size
        return size["height"], size["width"]

    @property
    def _tile_tokens(self) -> int:
        vc = self.config.vision_config
        return (vc.image_size // vc.patch_size) ** 2 + 1

    def _image_token_count(self, layout) -> int:
        return 1  # one <|image|> marker; the tokens themselves live in cross_attention_states

    def _process_images(self, images):
        out = self.image_processor(images=[[im] for im in images], return_tensors="pt")
        vc = self.config.vision_config
        p = vc.image_size // vc.patch_size
        ratios = vc.supported_aspect_ratios
        max_tiles = out["pixel_values"].shape[2]
        layouts = []
        for ar_id in out["aspect_ratio_ids"][:, 0].tolist():
            th, tw = ratios[ar_id - 1]
            index = torch.empty(th * p * tw * p, dtype=torch.long)
            for r in range(th * p):
                for c in range(tw * p):
                    tile = (r // p) * tw + c // p
                    index[r * tw * p + c] = tile * self._tile_tokens + 1 + (r % p) * p + c % p
            layouts.append(ImageLayout(max_tiles * self._tile_tokens, (th * p, tw * p), index))
        inputs = {k: out[k] for k in ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask")}
        return inputs, layouts

    def _extra_inputs(self, input_ids, layouts, image_inputs) -> dict:
        tiles = image_inputs["aspect_ratio_mask"][:, 0]  # [B, max_tiles], 1 for real tiles
        mask = torch.zeros((*input_ids.shape, 1, tiles.shape[1]), dtype=torch.long)
        for b in range(input_ids.shape[0]):
            pos = (input_ids[b] == self.config.image_token_id).nonzero()[0, 0]
            # Text from the image marker on attends to the image's real (non-padding) tiles.
            mask[b, pos:, 0, :] = tiles[b]
        return {"cross_attention_mask": mask}

    def _cross_modules(self):
        layers = self.model.model.language_model.layers
        return [layers[i].cross_attn for i in self.cross_modal_layers]

    def _hooks(self, replacement: TokenReplacement, batch):
        handles = []
        for pos, module in enumerate(self._cross_modules()):

            def pre_hook(_m, args, kwargs, pos=pos):
                states = kwargs.get("cross_attention_states")
                if states is None:  # decoding step: K/V come from the cache
                    return None
                bsz = len(batch)
                flat = states.reshape(bsz, -1, states.shape[-1])
                per_image = replacement.visual_tokens or list(flat.unbind(0))
                new = []
                for b, (v, idx) in enumerate(zip(per_image, replacement.indices, strict=True)):
                    if idx is not None and idx.dim() == 2:
                        idx = idx[pos]
                    new.append(replace_tokens(v.to(states.dtype), replacement.module_for(b), idx))
                kwargs["cross_attention_states"] = torch.stack(new).reshape(states.shape)
                return args, kwargs

            handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
        return handles

    def _capture_hook(self, store):
        def hook(_module, _args, output):
            store.extend(output.detach().reshape(self._capture_bsz, -1, output.shape[-1]).unbind(0))

        return [self.model.model.multi_modal_projector.register_forward_hook(hook)]

    def visual_tokens(self, batch):
        self._capture_bsz = len(batch)
        return super().visual_tokens(batch)

    def _vision_only(self, batch) -> None:
        vision = self.model.model.vision_model(
            pixel_values=batch.inputs["pixel_values"],
            aspect_ratio_ids=batch.inputs["aspect_ratio_ids"],
            aspect_ratio_mask=batch.inputs["aspect_ratio_mask"],
        )
        self.model.model.multi_modal_projector(vision.last_hidden_state)

    def _score_layers(self, attentions, batch):
        per_sample = []
        for b in range(len(batch)):
            rows = batch.question_mask[b].nonzero().squeeze(-1)
            n = batch.layouts[b].n_tokens
            layer_scores = [
                attentions[layer][b].float()[:, rows, :n].mean(dim=(0, 1))
                for layer in self.cross_modal_layers
            ]
            per_sample.append(torch.stack(layer_scores))
        return per_sample

    def _score_modules(self):
        return self._cross_modules()

    def _layer_scorer(self, batch):
        return cross_scorer(batch)
