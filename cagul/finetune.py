"""Full fine-tuning of a VLM on (image, question, answer) triples: how the demo's base models
(Pretrain's VQA stage, Finetune, Retrain) are trained, in stages as real VLMs are.

Also the vision stage: identity classification on the mean of an image's visual tokens, so the
identity is readable from the tokens before the language model is asked to use it (measured:
end to end from faces, a tiny model ignores the image and learns per-question priors).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from PIL import Image, ImageEnhance

from cagul.models import VLM


@dataclass
class FinetuneConfig:
    epochs: int = field(default=10, metadata={"help": "passes over the samples"})
    lr: float = field(default=3e-3, metadata={"help": "peak AdamW learning rate"})
    batch_size: int = field(default=64, metadata={"help": "samples per optimiser step"})
    warmup_frac: float = field(default=0.05, metadata={"help": "linear warm-up share of steps"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    train_vision: bool = field(
        default=False, metadata={"help": "also update the vision tower (off: it keeps its stage)"}
    )
    seed: int = field(default=0, metadata={"help": "shuffling seed"})


def _schedule(opt, total: int, warmup: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def _vision_params(vlm: VLM):
    return vlm.model.model.visual.parameters() if vlm.family == "qwen2_5_vl" else ()


def finetune(
    vlm: VLM,
    samples: list[tuple[str, str, str]],
    cfg: FinetuneConfig,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict:
    """Train the whole language side (and optionally vision) on `samples` of
    (image path, question, answer). Leaves the model frozen again afterwards."""
    model = vlm.model
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    if not cfg.train_vision:
        for p in _vision_params(vlm):
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    steps_per_epoch = math.ceil(len(samples) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    sched = _schedule(opt, total, max(1, int(cfg.warmup_frac * total)))
    rng = random.Random(cfg.seed)
    order = list(range(len(samples)))
    step, t0, losses = 0, time.time(), []
    for _epoch in range(cfg.epochs):
        rng.shuffle(order)
        for i in range(0, len(order), cfg.batch_size):
            chunk = [samples[j] for j in order[i : i + cfg.batch_size]]
            batch = vlm.prepare([c[0] for c in chunk], [c[1] for c in chunk], [c[2] for c in chunk])
            loss = vlm.loss(batch).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
            if progress:
                progress(step, total, loss.item())
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return {"steps": step, "seconds": time.time() - t0, "final_loss": sum(losses[-10:]) / 10}


def augment(img: Image.Image, rng: random.Random) -> Image.Image:
    """A small shift and brightness change: what a re-photographed face looks like."""
    dx, dy = rng.randint(-4, 4), rng.randint(-4, 4)
    img = img.transform(img.size, Image.Transform.AFFINE, (1, 0, dx, 0, 1, dy), fillcolor=None)
    return ImageEnhance.Brightness(img).enhance(rng.uniform(0.9, 1.1))


def pretrain_vision_identity(
    vlm: VLM,
    images: list[str],
    labels: list[int],
    steps: int = 60,
    lr: float = 2e-3,
    batch_size: int = 32,
    seed: int = 0,
) -> dict:
    """Train the vision tower (and projector) to make identities linearly readable from the
    mean visual token, with augmentation so that near-duplicates map alike."""
    from PIL import Image as PILImage

    model = vlm.model
    if vlm.family != "qwen2_5_vl":
        raise NotImplementedError("vision pre-training is implemented for Qwen2.5-VL bundles")
    visual = model.model.visual
    visual.train()
    for p in visual.parameters():
        p.requires_grad_(True)
    n_classes = max(labels) + 1
    head = torch.nn.Linear(vlm.hidden_size, n_classes)
    opt = torch.optim.AdamW(list(visual.parameters()) + list(head.parameters()), lr=lr)
    rng = random.Random(seed)
    pil = [PILImage.open(p).convert("RGB") for p in images]
    t0, acc = time.time(), 0.0
    for _ in range(steps):
        idx = [rng.randrange(len(pil)) for _ in range(batch_size)]
        batch_imgs = [augment(pil[i], rng) for i in idx]
        inputs, layouts = vlm._process_images(batch_imgs)
        out = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
        pooled = torch.stack([t.mean(0) for t in out.pooler_output])
        logits = head(pooled)
        y = torch.tensor([labels[i] for i in idx])
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc = (logits.argmax(-1) == y).float().mean().item()
    visual.eval()
    for p in visual.parameters():
        p.requires_grad_(False)
    return {"steps": steps, "seconds": time.time() - t0, "train_accuracy": acc}
