"""Training a CAGUL adapter: the discriminator first, then both jointly.

`train_cagul` is a short loop over CAGUL's parts, each in its own module:
- token selection, `selection`: each encoder sample's k least-attended tokens, fixed once;
- the discriminator, `train_discriminator`: cached image views and a BCE epoch;
- the token encoder, `train_encoder`: its samples and an epoch;
- the objective, `objective`: PO+GD (or GA+GD, GA+KL) over `cagul.losses`, with the
  hard-sample weights.

What is frozen is exploited: visual tokens are computed once per
image view, selections once per (image, question); the discriminator trains on cached tokens
with no language-model pass at all; and, gating by ground-truth membership during training,
only the forget individuals' samples can move the encoder, so only they get language-model
passes. The cost grows with the number of forget individuals, not with the dataset.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from cagul.data import Split
from cagul.methods.cagul.adapter import CagulAdapter
from cagul.methods.cagul.config import CagulTrainingArguments
from cagul.methods.cagul.train_discriminator import DiscriminatorTrainer, cache_views
from cagul.methods.cagul.train_encoder import EncoderTrainer, encoder_samples
from cagul.models import VLM

Progress = Callable[[float, str], None] | None


class _Ticker:
    """Counts optimiser steps: checks for cancellation and reports progress with an ETA."""

    def __init__(self, total: int, progress: Progress, check_cancel, t0: float):
        self.total, self.progress, self.check_cancel, self.t0 = total, progress, check_cancel, t0
        self.done = 0

    def __call__(self, msg: str) -> None:
        self.done += 1
        if self.check_cancel:
            self.check_cancel()
        if self.progress:
            eta = (time.time() - self.t0) / self.done * (self.total - self.done)
            self.progress(self.done / max(1, self.total), f"{msg} · ETA {eta:.0f}s")


def train_cagul(
    vlm: VLM,
    split: Split,
    adapter: CagulAdapter,
    args: CagulTrainingArguments | None = None,
    *,
    negatives: list[str] = (),
    progress: Progress = None,
    check_cancel: Callable[[], None] | None = None,
) -> dict:
    """Train `adapter` in place for `split`; returns training statistics."""
    args = args or CagulTrainingArguments()
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    t0 = time.time()
    adapter.to(vlm.device).train()

    views = cache_views(vlm, split, list(negatives), args, rng, progress)
    use_encoder = adapter.config.use_encoder
    samples = encoder_samples(vlm, adapter, split, args, rng, progress) if use_encoder else []
    disc = DiscriminatorTrainer(adapter, views, args)
    enc = EncoderTrainer(vlm, adapter, samples, args)
    total = args.disc_epochs * disc.steps + args.epochs * (disc.steps + enc.steps)
    tick = _Ticker(total, progress, check_cancel, t0)

    history, epoch_seconds = [], []
    for e in range(args.disc_epochs):
        bce = disc.epoch(rng, tick, f"disc {e + 1}/{args.disc_epochs}")
        history.append({"epoch": f"disc{e + 1}", "bce": bce})
    for e in range(args.epochs):
        te = time.time()
        label = f"epoch {e + 1}/{args.epochs}"
        row = {"epoch": e + 1, "bce": disc.epoch(rng, tick, label)}
        if enc.active:
            nll = enc.epoch(rng, tick, label)
            row.update(forget_nll=nll["forget"], retain_nll=nll["retain"])
        history.append(row)
        epoch_seconds.append(time.time() - te)

    adapter.eval()
    return {
        "seconds": round(time.time() - t0, 2),
        "epoch_seconds": round(sum(epoch_seconds) / max(1, len(epoch_seconds)), 3),
        "trainable_params": adapter.n_trainable(),
        "views": len(views),
        "encoder_samples": len(samples),
        "lm_passes_per_epoch": len(samples),
        "discriminator_train_accuracy": disc.accuracy(),
        "history": history,
        "arguments": asdict(args),
    }


def negatives_from(data_dir: str | Path, limit: int = 64) -> list[str]:
    """Unrelated images (the probe scenes) to teach the discriminator what is nobody."""
    d = Path(data_dir) / "probes" / "images"
    return sorted(str(p) for p in d.glob("scene_train_*.png"))[:limit] if d.is_dir() else []
