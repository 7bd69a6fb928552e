"""Slightly changed copies of an image: how a forgotten person's photo comes back re-saved,
re-cropped or re-lit. The discriminator trains on random ones so it still flags them, and the
evaluation checks a fixed set of them (perturbed-image leak)."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageEnhance


def jpeg(img: Image.Image, quality: int = 70) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def shift(img: Image.Image, dx: int, dy: int) -> Image.Image:
    # Edge pixels are repeated rather than filled black: a re-crop, not a new border.
    return img.transform(
        img.size,
        Image.Transform.AFFINE,
        (1, 0, -dx, 0, 1, -dy),
        resample=Image.Resampling.NEAREST,
        fillcolor=img.getpixel((0, 0)),
    )


def brightness(img: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Brightness(img).enhance(factor)


def random_perturbation(img: Image.Image, rng: random.Random) -> Image.Image:
    """Any mix of JPEG (quality 60-95), a shift of up to 4 px and ±10 % brightness."""
    img = img.convert("RGB")
    if rng.random() < 0.7:
        img = shift(img, rng.randint(-4, 4), rng.randint(-4, 4))
    if rng.random() < 0.7:
        img = brightness(img, rng.uniform(0.9, 1.1))
    if rng.random() < 0.5:
        img = jpeg(img, rng.randint(60, 95))
    return img


def fixed_perturbations(img: Image.Image) -> dict[str, Image.Image]:
    """The evaluation's perturbations (named), each at the strength the evaluation uses."""
    img = img.convert("RGB")
    return {
        "jpeg70": jpeg(img, 70),
        "shift4": shift(img, 4, 4),
        "shift-4": shift(img, -4, -4),
        "bright+10": brightness(img, 1.1),
        "bright-10": brightness(img, 0.9),
        "all": jpeg(brightness(shift(img, 4, -4), 0.9), 70),
    }


def crop(img: Image.Image, fraction: float = 0.08) -> Image.Image:
    """Cut `fraction` of each side away and scale back: a tighter framing of the same photo."""
    w, h = img.size
    dx, dy = round(w * fraction), round(h * fraction)
    return img.crop((dx, dy, w - dx, h - dy)).resize((w, h), Image.Resampling.BICUBIC)


def mirror(img: Image.Image) -> Image.Image:
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def audit_perturbations(img: Image.Image) -> dict[str, Image.Image]:
    """What an auditor tries on a forgotten person's photo: a JPEG re-save, a few-pixel shift,
    brighter, a tighter crop, a mirror image. Crop and mirror are outside what the
    discriminator trains on, so they test how far its decision carries."""
    img = img.convert("RGB")
    return {
        "jpeg": jpeg(img, 70),
        "shift": shift(img, 3, -3),
        "brightness": brightness(img, 1.15),
        "crop": crop(img),
        "mirror": mirror(img),
    }
