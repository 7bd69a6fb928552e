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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image, ImageEnhance

from cagul.models import VLM, TokenReplacement


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
    vision_lr_scale: float = field(
        default=0.1,
        metadata={
            "help": "vision tower lr = lr × this: noisy early gradients of a fresh "
            "language model must not wreck features the vision stage made"
        },
    )
    seed: int = field(default=0, metadata={"help": "shuffling seed"})


def warmup_schedule(opt, total: int, warmup: int):
    """A linear warm-up over `warmup` steps, then a cosine decay to 0 at step `total`."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def vision_params(vlm: VLM):
    """The vision tower's parameters (Qwen2.5-VL only: the other families keep it frozen)."""
    return vlm.model.model.visual.parameters() if vlm.family == "qwen2_5_vl" else ()


def _cached_tokens(vlm: VLM, chunk, cache: dict | None) -> TokenReplacement | None:
    """The visual tokens of `chunk`'s images from `cache` (filled on first sight), as a
    replacement that rewrites nothing; None when there is no cache (the tower trains)."""
    if cache is None:
        return None
    todo = [str(c[0]) for c in chunk if str(c[0]) not in cache]
    todo = list(dict.fromkeys(todo))
    if todo:
        was_training = vlm.model.training
        vlm.model.eval()
        cache.update(
            zip(todo, vlm.visual_tokens(vlm.prepare(todo, ["?"] * len(todo))), strict=True)
        )
        vlm.model.train(was_training)
    return TokenReplacement(None, [None] * len(chunk), [cache[str(c[0])] for c in chunk])


def finetune(
    vlm: VLM,
    samples: Sequence[tuple[str, str, str]] | Callable[[int], Sequence[tuple[str, str, str]]],
    cfg: FinetuneConfig,
    progress: Callable[[int, int, float], None] | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> dict:
    """Train the whole language side (and optionally vision) on `samples` of
    (image path, question, answer), or on `samples(epoch)` when the mix changes per epoch (a
    fresh question template per pair, a fresh replay draw). `on_epoch(epoch)` runs after each
    epoch (in eval mode), e.g. to log accuracy. Leaves the model frozen again afterwards."""
    draw = samples if callable(samples) else (lambda _epoch: samples)
    model = vlm.model
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    if not cfg.train_vision:
        for p in vision_params(vlm):
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    vision_ids = {id(p) for p in vision_params(vlm)}
    groups = [
        {"params": [p for p in params if id(p) not in vision_ids], "lr": cfg.lr},
        {"params": [p for p in params if id(p) in vision_ids], "lr": cfg.lr * cfg.vision_lr_scale},
    ]
    opt = torch.optim.AdamW(
        [g for g in groups if g["params"]], weight_decay=cfg.weight_decay, betas=(0.9, 0.98)
    )
    steps_per_epoch = math.ceil(len(draw(0)) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    sched = warmup_schedule(opt, total, max(1, int(cfg.warmup_frac * total)))
    # A frozen tower gives each image the same tokens every epoch: compute them once per image
    # path and hand them to the language model (Qwen2.5-VL then skips the tower, which took
    # 1.05 of 2.24 s of a 64-item bundle VQA step in one profile). Holds one [n, d] tensor per
    # distinct image of the stage.
    token_cache: dict[str, torch.Tensor] | None = None if cfg.train_vision else {}
    rng = random.Random(cfg.seed)
    step, t0, losses = 0, time.time(), []
    for epoch in range(cfg.epochs):
        epoch_samples = draw(epoch)
        order = list(range(len(epoch_samples)))
        rng.shuffle(order)
        for i in range(0, len(order), cfg.batch_size):
            if step >= total:
                break
            chunk = [epoch_samples[j] for j in order[i : i + cfg.batch_size]]
            batch = vlm.prepare([c[0] for c in chunk], [c[1] for c in chunk], [c[2] for c in chunk])
            loss = vlm.loss(batch, _cached_tokens(vlm, chunk, token_cache)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
            if progress:
                progress(step, total, loss.item())
        if on_epoch:
            model.eval()
            with torch.no_grad():
                on_epoch(epoch)
            model.train()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return {
        "steps": step,
        "seconds": time.time() - t0,
        "final_loss": sum(losses[-10:]) / max(1, len(losses[-10:])),
    }


def augment(img: Image.Image, rng: random.Random) -> Image.Image:
    """A small shift and brightness change: what a re-photographed face looks like."""
    dx, dy = rng.randint(-4, 4), rng.randint(-4, 4)
    img = img.transform(img.size, Image.Transform.AFFINE, (1, 0, dx, 0, 1, dy), fillcolor=None)
    return ImageEnhance.Brightness(img).enhance(rng.uniform(0.9, 1.1))


def pretrain_vision(
    vlm: VLM,
    faces: list[str],
    identities: list[int],
    scenes: list[str] = (),
    attributes: torch.Tensor | None = None,
    token_labels: torch.Tensor | None = None,
    token_targets: torch.Tensor | None = None,
    steps: int = 600,
    lr: float = 2e-3,
    batch_size: int = 32,
    seed: int = 0,
    eval_every: int = 25,
    min_steps: int = 100,
    eval_scenes: int = 256,
    token_contrast: float = 0.0,
) -> dict:
    """Pre-train the vision tower so that what the language model needs is linearly readable
    from the mean visual token: the identity of each face (cross-entropy) and, for scenes,
    a multi-label attribute vector (`attributes[i]`, 0/1: shapes, colours, counts, rows and
    columns present) and, per visual token, what lies under it (`token_labels[i, t]`, a class
    index: dense supervision that keeps *where* readable), with shift/brightness augmentation
    so near-duplicates map alike. With `token_targets` ([classes, d]) each token is regressed
    onto its class's target vector instead of classified by a fresh head (and scored by the
    nearest target), e.g. the language model's word embeddings of what lies under each token
    (benchmarks/scene_reading's `aligned` arm); `token_contrast` > 0 adds, with that weight,
    a cross-entropy over the negative distances to every target (prototype classification:
    pulled onto its own target and away from the others).

    Stops once every face, clean and augmented, is classified right and the scene attributes
    are ≥ 98 % right (checked every `eval_every` steps after `min_steps` on the first
    `eval_scenes` scenes, so a large scene set does not make every check a pass over all of
    it: further steps sharpen the clusters, which is what makes the biographies learnable), or
    after `steps`.
    """
    from PIL import Image as PILImage

    model = vlm.model
    if vlm.family != "qwen2_5_vl":
        raise NotImplementedError("vision pre-training is implemented for Qwen2.5-VL bundles")
    if token_targets is not None and token_labels is None:
        raise ValueError("token_targets needs token_labels (the class of every scene token)")
    visual = model.model.visual
    for p in visual.parameters():
        p.requires_grad_(True)
    torch.manual_seed(seed)
    id_head = torch.nn.Linear(vlm.hidden_size, max(identities) + 1)
    heads = list(id_head.parameters())
    attr_head = token_head = None
    if scenes:
        attr_head = torch.nn.Linear(vlm.hidden_size, attributes.shape[1])
        heads += list(attr_head.parameters())
    if token_labels is not None and token_targets is None:
        token_head = torch.nn.Linear(vlm.hidden_size, int(token_labels.max()) + 1)
        heads += list(token_head.parameters())
    elif token_targets is not None:
        targets = token_targets.detach().float()

        def token_head(toks):  # negative distance to each target: argmax is the nearest
            return -torch.cdist(toks, targets.expand(len(toks), -1, -1))

    opt = torch.optim.AdamW(list(visual.parameters()) + heads, lr=lr)
    rng = random.Random(seed)
    face_pil = [PILImage.open(p).convert("RGB") for p in faces]
    scene_pil = [PILImage.open(p).convert("RGB") for p in scenes]
    y_all = torch.tensor(identities)

    def tokens(imgs):
        inputs, _ = vlm._process_images(imgs)
        out = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
        return torch.stack(list(out.pooler_output))  # [B, n, d]: one grid size in a stage

    def pooled(imgs):
        return tokens(imgs).mean(1)

    token_acc: list[float] = []

    def accuracy() -> tuple[float, float, float | None]:
        visual.eval()
        with torch.no_grad():
            clean = (id_head(pooled(face_pil)).argmax(-1) == y_all).float().mean().item()
            aug = [augment(im, rng) for im in face_pil]
            shifted = (id_head(pooled(aug)).argmax(-1) == y_all).float().mean().item()
            attr = None
            if attr_head is not None:
                hits, tok_hits = [], []
                for i in range(0, min(len(scene_pil), eval_scenes), 64):
                    toks = tokens(scene_pil[i : min(i + 64, eval_scenes)])
                    logits = attr_head(toks.mean(1))
                    hits.append(((logits > 0).float() == attributes[i : i + len(toks)]).float())
                    if token_head is not None:
                        pred = token_head(toks).argmax(-1)
                        tok_hits.append((pred == token_labels[i : i + len(toks)]).float())
                attr = torch.cat(hits).mean().item()
                if tok_hits:
                    token_acc.append(torch.cat(tok_hits).mean().item())
        visual.train()
        return clean, shifted, attr

    t0, step = time.time(), 0
    clean = shifted = attr_acc = None
    visual.train()
    while step < steps:
        idx = [rng.randrange(len(face_pil)) for _ in range(batch_size)]
        loss = torch.nn.functional.cross_entropy(
            id_head(pooled([augment(face_pil[i], rng) for i in idx])), y_all[idx]
        )
        if attr_head is not None:
            sidx = [rng.randrange(len(scene_pil)) for _ in range(batch_size)]
            toks = tokens([augment(scene_pil[i], rng) for i in sidx])
            loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(
                attr_head(toks.mean(1)), attributes[sidx]
            )
            if token_targets is not None:
                # Per-element MSE over the targets' mean square: 1.0 means "no better than 0".
                loss = (
                    loss
                    + torch.nn.functional.mse_loss(toks, targets[token_labels[sidx]])
                    / targets.pow(2).mean()
                )
                if token_contrast:
                    loss = loss + token_contrast * torch.nn.functional.cross_entropy(
                        token_head(toks).flatten(0, 1), token_labels[sidx].flatten()
                    )
            elif token_head is not None:
                loss = loss + torch.nn.functional.cross_entropy(
                    token_head(toks).flatten(0, 1), token_labels[sidx].flatten()
                )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % eval_every == 0 and step >= min_steps:
            clean, shifted, attr_acc = accuracy()
            aligned = token_targets is None or (token_acc and token_acc[-1] >= 0.98)
            if (
                clean == 1.0
                and shifted == 1.0
                and (attr_acc is None or attr_acc >= 0.98)
                and aligned
            ):
                break
    if clean is None:
        clean, shifted, attr_acc = accuracy()
    visual.eval()
    for p in visual.parameters():
        p.requires_grad_(False)
    return {
        "steps": step,
        "seconds": round(time.time() - t0, 2),
        "accuracy": clean,
        "augmented_accuracy": shifted,
        "attribute_accuracy": attr_acc,
        "token_accuracy": token_acc[-1] if token_acc else None,
    }


def pretrain_vision_identity(vlm: VLM, images: list[str], labels: list[int], **kwargs) -> dict:
    """`pretrain_vision` on faces only."""
    return pretrain_vision(vlm, images, labels, **kwargs)
