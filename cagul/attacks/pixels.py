"""A differentiable copy of a VLM's image processor, so attacks can work in pixel space.

Attacks perturb the photo an auditor would upload: an RGB image with values k/255. Their
budget (L-inf eps) is in that space, so the attack needs d(pixel_values)/d(pixels) through the
checkpoint's image processor, which works on numpy/PIL and is not differentiable.

Choice (documented here, used by every attack): the attack runs on a float image tensor
`x` in [0, 1], shape [3, H, W], at a size the processor does not resize (its *native* size;
an image of another size is resized once, with PIL bicubic, before the attack, and the
adversarial image is returned at the native size). At that size every family's processor is
an affine map per output element: rescale, normalise per channel, and rearrange (Qwen2.5-VL's
patches with their temporal copy, LLaVA's crop, Mllama's tiles and constant padding). We
recover that map from the processor itself, without re-implementing any family:

* which input pixel each output element copies: the processor is run with rescaling and
  normalisation off on images whose values spell each pixel's index + 1 in base 256 (one image
  per digit); an output that reads 0 in every digit image copies no pixel (padding);
* the affine part: outputs of an all-0 and an all-255 image give offset and slope.

`PixelMap(x) = slope * 255 * x[index] + offset` (padding: the constant offset) is then exact
up to float rounding; the constructor checks it against the processor on the real image and
refuses (`PixelMapError`) a processor it does not reproduce to 1e-4, so no attack ever runs on
a guessed pipeline.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from cagul.models import VLM, VLMError

TOLERANCE = 1e-4


class PixelMapError(VLMError):
    """The processor is not an affine map of the image at this size; no attack can use it."""


def to_tensor(image: Image.Image) -> torch.Tensor:
    """[3, H, W] float in [0, 1] (values k/255) of an RGB PIL image."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def to_image(x: torch.Tensor) -> Image.Image:
    """The RGB image of a [3, H, W] tensor whose values are already k/255 (see `quantise`)."""
    arr = torch.round(x.detach().clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr, "RGB")


def _pixel_values(vlm: VLM, image: Image.Image, **kwargs) -> torch.Tensor:
    # `_process_images` is the family's own call of its processor (+ its layout bookkeeping);
    # with rescale/normalise off we ask the processor directly, in the same way.
    if kwargs:
        nested = vlm.family == "mllama"  # Mllama's processor takes a list of images per sample
        out = vlm.image_processor(
            images=[[image]] if nested else [image], return_tensors="pt", **kwargs
        )
        return out["pixel_values"].double()
    inputs, _ = vlm._process_images([image])
    return inputs["pixel_values"].double()


class PixelMap:
    """image tensor [3, H, W] in [0, 1] -> the `pixel_values` the VLM's processor would give."""

    def __init__(self, vlm: VLM, image: Image.Image):
        self.size = image.size
        n = 3 * image.size[0] * image.size[1]
        digits = max(1, math.ceil(math.log(n + 1, 256)))
        codes = np.arange(1, n + 1, dtype=np.int64)  # index + 1: 0 marks padding
        raw = {"do_rescale": False, "do_normalize": False}
        index = None
        for d in range(digits):
            plane = ((codes // 256**d) % 256).astype(np.uint8)
            probe = Image.fromarray(
                plane.reshape(3, image.size[1], image.size[0]).transpose(1, 2, 0)
            )
            got = _pixel_values(vlm, probe, **raw).round().long()
            index = got * 256**d if index is None else index + got * 256**d
        if index.min() < 0 or index.max() > n:  # a resize blended the codes: not a copy
            raise PixelMapError(
                f"the {vlm.family} processor resizes a {image.size[0]}x"
                f"{image.size[1]} image; it is not its native size"
            )
        low = _pixel_values(vlm, Image.new("RGB", image.size, (0, 0, 0)))
        high = _pixel_values(vlm, Image.new("RGB", image.size, (255, 255, 255)))
        self.shape = low.shape
        self.padding = index.reshape(-1) == 0
        self.index = (index.reshape(-1) - 1).clamp(min=0)
        self.offset = low.reshape(-1).float()
        self.slope = ((high - low).reshape(-1) / 255.0).float()
        self.slope[self.padding] = 0.0
        expected = _pixel_values(vlm, image).float()
        error = (self(to_tensor(image)) - expected).abs().max().item()
        if not math.isfinite(error) or error > TOLERANCE:
            raise PixelMapError(
                f"the {vlm.family} processor is not reproduced at {image.size[0]}x"
                f"{image.size[1]} (max error {error:.2g}); cannot attack through it"
            )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable: `pixel_values` of image tensor `x` (same size as the map's)."""
        flat = x.reshape(-1)[self.index] * 255.0
        return (self.slope * flat + self.offset).reshape(self.shape)


def native_image(vlm: VLM, image) -> tuple[Image.Image, PixelMap]:
    """The RGB image at a size the processor keeps, and its map: the image itself if the map
    reproduces the processor there, else the image resized (PIL bicubic) to the family's
    default size (`PixelMapError` if even that size is not reproduced)."""
    img = vlm._check_image(image)
    try:
        return img, PixelMap(vlm, img)
    except PixelMapError:
        h, w = vlm.default_image_size()
        resized = img.resize((w, h), Image.BICUBIC)
        return resized, PixelMap(vlm, resized)
