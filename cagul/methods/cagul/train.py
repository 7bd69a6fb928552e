"""Training a CAGUL adapter: the discriminator first, then both jointly.

`train_cagul` is a short loop over CAGUL's parts, each in its own module:
- token selection, `selection`: each encoder sample's k least-attended tokens, fixed once;
- the discriminator, `train_discriminator`: cached image views and a BCE epoch;
- the token encoder, `train_encoder`: its samples and an epoch;
- the objective, `objective`: PO+GD (or GA+GD, GA+KL) over `cagul.losses`, with the
  hard-sample weights.

Joint training stops once verified (`_Schedule`): a periodic check of every encoder
sample's greedy answer and of the discriminator's margin, a short consolidation after the
first pass, `epochs` only a cap; samples already past their margin skip their passes until
the next check, and the discriminator stops once it separates.

What is frozen is exploited: visual tokens are computed once per
image view, selections once per (image, question); the discriminator trains on cached tokens
with no language-model pass at all; and, gating by ground-truth membership during training,
only the forget individuals' samples can move the encoder, so only they get language-model
passes. The cost grows with the number of forget individuals, not with the dataset.
"""

from __future__ import annotations

import math
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
from cagul.methods.cagul.train_encoder import (
    EncoderTrainer,
    base_answers_right,
    encoder_samples,
    verify_samples,
)
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
    """Train `adapter` in place for `split`; returns training statistics.

    After the discriminator-only epochs, joint epochs run until verified (`_Schedule`): every
    `check_every` epochs a check answers every encoder sample greedily with its tokens
    rewritten and asks the discriminator to separate its views with a margin; the first check
    that passes starts `consolidate` more epochs (the lr decaying to 0), and a passing check
    after them stops training. `epochs` is a cap."""
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
    setup_seconds = time.time() - t0
    total = args.disc_epochs * disc.steps + args.epochs * (disc.steps + enc.steps)
    tick = _Ticker(total, progress, check_cancel, t0)
    sched = _Schedule(args, vlm, adapter, samples, enc, disc)

    history, epoch_seconds, passes = [], [], 0
    for e in range(args.disc_epochs):
        bce = disc.epoch(rng, tick, f"disc {e + 1}/{args.disc_epochs}")
        history.append({"epoch": f"disc{e + 1}", "bce": bce})
    for e in range(1, args.epochs + 1):
        te = time.time()
        label = f"epoch {e}/{args.epochs}"
        row: dict = {"epoch": e}
        if sched.disc_active:
            row["bce"] = disc.epoch(rng, tick, label)
            sched.disc_active = not disc.separation(args.disc_margin)["passed"]
        if enc.active:
            enc.set_lr_factor(sched.lr_factor(e))
            nll = enc.epoch(rng, tick, label, sched.active(rng))
            passes += nll["passes"]
            row.update(forget_nll=nll["forget"], retain_nll=nll["retain"], lm_passes=nll["passes"])
        history.append(row)
        epoch_seconds.append(time.time() - te)
        if sched.due(e) and sched.check(e):
            break

    adapter.eval()
    n_epochs = len(epoch_seconds)
    return {
        "seconds": round(time.time() - t0, 2),
        "setup_seconds": round(setup_seconds, 2),
        "epoch_seconds": round(sum(epoch_seconds) / max(1, n_epochs), 3),
        "epochs_run": n_epochs,
        "verified_epoch": sched.verified_epoch,
        "stopped_epoch": n_epochs,
        "verified": sched.passed,
        "check_seconds": round(sched.seconds, 2),
        "checks": sched.log,
        "trainable_params": adapter.n_trainable(),
        "views": len(views),
        "encoder_samples": len(samples),
        "lm_passes": passes,
        "lm_passes_per_epoch": round(passes / max(1, n_epochs), 1),
        "discriminator_train_accuracy": disc.accuracy(),
        "history": history,
        "arguments": asdict(args),
    }


class _Schedule:
    """When joint training checks, stops, skips samples and trains the discriminator.

    - `check(e)`: the verification check (greedy answers of every encoder sample with its
      fixed token set rewritten, `verify_samples`; the discriminator's separation of its
      cached views). The first pass starts the consolidation; a pass once it is over stops.
    - `active(rng)`: this epoch's encoder samples: those not skipped (a sample that passed the
      last check with its last NLL under `skip_nll` waits for the next check), with at most
      `views_per_epoch` perturbed views of each forget pair drawn from its views not skipped.
    - `lr_factor(e)`: cosine over the cap until verified, then cosine to 0 over the
      consolidation epochs; back to the cap's cosine if the check after them fails.
    - `disc_active`: the discriminator trains until it separates and again after a failing
      check.
    """

    def __init__(self, args, vlm, adapter, samples, enc, disc):
        self.args, self.vlm, self.adapter, self.samples = args, vlm, adapter, samples
        self.enc, self.disc = enc, disc
        self.disc_active = True
        self.skip: set[int] = set()
        self.verified_epoch: int | None = None
        self.consolidating_from: int | None = None
        self.passed = False
        self.log: list[dict] = []
        self.seconds = 0.0
        self.base_right: list[bool] | None = None

    def due(self, e: int) -> bool:
        a = self.args
        if not a.check_every:
            return False
        if self.consolidating_from is not None:
            return e >= self.consolidating_from + a.consolidate or e == a.epochs
        return e % a.check_every == 0 or e == a.epochs

    def check(self, e: int) -> bool:
        """Run the verification check after epoch `e`; True when training should stop."""
        t = time.time()
        a = self.args
        sep = self.disc.separation(a.disc_margin)
        if not sep["passed"]:
            self.disc_active = True
        ok: list[bool] = []
        if self.enc.active:
            if self.base_right is None:
                self.base_right = base_answers_right(self.vlm, self.samples, a.cache_batch_size)
            ok = verify_samples(
                self.vlm, self.adapter, self.samples, self.base_right, a.cache_batch_size
            )
            last = self.enc.objective.last_loss
            self.skip = {i for i, good in enumerate(ok) if good and float(last[i]) < a.skip_nll}
        failed = [i for i, good in enumerate(ok) if not good]
        passed = sep["passed"] and not failed
        stop = False
        if passed and self.consolidating_from is None and a.consolidate > 0:
            self.consolidating_from = e
            self.verified_epoch = self.verified_epoch or e
        elif passed:
            self.verified_epoch = self.verified_epoch or e
            stop = True
        else:
            self.consolidating_from = None
        self.passed = passed
        roles = [s.role for s in self.samples]
        self.log.append(
            {
                "epoch": e,
                "passed": passed,
                **{f"discriminator_{k}": v for k, v in sep.items()},
                "forget_failing": sum(roles[i] == "forget" for i in failed),
                "other_failing": sum(roles[i] != "forget" for i in failed),
                "skipped_next": len(self.skip),
                "seconds": round(time.time() - t, 2),
                # Which samples fail (the first few), so a run that never verifies says why.
                "failing_samples": [
                    {
                        "role": roles[i],
                        "view": self.samples[i].view_of is not None,
                        "question": self.samples[i].question,
                    }
                    for i in failed[:8]
                ],
            }
        )
        self.seconds += time.time() - t
        return stop

    def active(self, rng: random.Random) -> list[int]:
        a = self.args
        out, views = [], {}
        for i, s in enumerate(self.samples):
            if i in self.skip:
                continue
            if s.view_of is None:
                out.append(i)
            else:
                views.setdefault(s.view_of, []).append(i)
        for group in views.values():
            n = len(group) if not a.views_per_epoch else min(a.views_per_epoch, len(group))
            out += rng.sample(group, n)
        return out

    def lr_factor(self, e: int) -> float:
        a = self.args
        if not a.cosine:
            return 1.0
        base = lambda i: 0.5 * (1 + math.cos(math.pi * min(i, a.epochs) / a.epochs))  # noqa: E731
        if self.consolidating_from is None:
            return base(e - 1)
        j = e - self.consolidating_from - 1  # 0 on the first consolidation epoch
        return base(self.consolidating_from) * 0.5 * (1 + math.cos(math.pi * j / a.consolidate))


def negatives_from(data_dir: str | Path, limit: int = 64) -> list[str]:
    """Unrelated images (the probe scenes) to teach the discriminator what is nobody."""
    d = Path(data_dir) / "probes" / "images"
    return sorted(str(p) for p in d.glob("scene_train_*.png"))[:limit] if d.is_dir() else []
