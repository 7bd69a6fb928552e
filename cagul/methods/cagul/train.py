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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from cagul.data import Split
from cagul.methods.cagul.adapter import CagulAdapter
from cagul.methods.cagul.train_discriminator import DiscriminatorTrainer, cache_views
from cagul.methods.cagul.train_encoder import EncoderTrainer, encoder_samples
from cagul.models import VLM

Progress = Callable[[float, str], None] | None


@dataclass
class CagulTrainingArguments:
    """How a CAGUL adapter is trained. The defaults were chosen on the demo bundle; how each was
    measured is in docs/experiments/cagul-tuning.md."""

    disc_epochs: int = field(default=2, metadata={"help": "discriminator-only epochs first"})
    epochs: int = field(default=200, metadata={"help": "joint epochs after that"})
    lr: float = field(default=3e-3, metadata={"help": "token encoder learning rate"})
    disc_lr: float = field(default=1e-3, metadata={"help": "discriminator learning rate"})
    batch_size: int = field(default=16, metadata={"help": "samples per encoder step"})
    disc_batch_size: int = field(default=32, metadata={"help": "views per discriminator step"})
    views: int = field(default=12, metadata={"help": "perturbed copies of each image (BCE)"})
    encoder_views: int = field(
        default=8,
        metadata={
            "help": "perturbed copies of each forget pair, each an encoder "
            "sample with its own token set (0: clean only)"
        },
    )
    max_negatives: int = field(default=64, metadata={"help": "unrelated images used as negatives"})
    gd_weight: float = field(default=1.0, metadata={"help": "weight of GD / KL terms"})
    forget_weight: float = field(
        default=0.8,
        metadata={"help": "weight of PO / GA terms, against the same images' GD / KL terms"},
    )
    ga_cap: float = field(default=8.0, metadata={"help": "GA stops pushing past this NLL"})
    max_retain: int = field(
        default=128, metadata={"help": "retain samples per epoch when every sample is transformed"}
    )
    hard_weight: float = field(
        default=1.0,
        metadata={"help": "exponent of the last-loss / role-mean sample weight (0: uniform)"},
    )
    hard_cap: float = field(default=4.0, metadata={"help": "largest hard-sample weight"})
    cosine: bool = field(default=True, metadata={"help": "cosine-decay the encoder lr to 0"})
    seed: int = field(default=0, metadata={"help": "shuffling, views and refusal draws"})


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
