"""Training CAGUL's token encoder: its samples and one epoch.

The samples (`encoder_samples`) are the pairs whose image the gate rewrites: every forget and
non-private pair of the split, and, without a discriminator (every image is rewritten then),
up to `max_retain` retain pairs of other people. Gating by ground-truth membership during
training, only these samples can move the encoder, so only they get language-model passes: the
cost grows with the forget people, not with the dataset. Each sample keeps one refusal, drawn
once. Each forget pair is also shown on `encoder_views` perturbed copies of its image, each a
sample of its own with its own token set, so a shifted or re-lit photo is rewritten too. Token
sets are fixed once (`selection.fix_token_sets`).

An epoch (`EncoderTrainer.epoch`) runs shuffled batches through the VLM with the selected
tokens rewritten by the encoder (a `TokenReplacement` hook), takes the loss from
`objective`, clips the gradient norm at 1 and steps AdamW, the learning rate decaying to 0
along a cosine over all epochs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from PIL import Image

from cagul.data import REFUSALS
from cagul.methods.cagul.objective import Objective, targets
from cagul.methods.cagul.selection import fix_token_sets
from cagul.models import TokenReplacement
from cagul.perturb import random_perturbation

if TYPE_CHECKING:
    from cagul.data import Split
    from cagul.methods.cagul.adapter import CagulAdapter
    from cagul.methods.cagul.config import CagulTrainingArguments
    from cagul.models import VLM


@dataclass
class EncoderSample:
    image: str | Image.Image  # a path, or a perturbed copy (`encoder_views`)
    question: str
    answer: str
    role: str  # "forget" | "retain"
    indices: torch.Tensor | None = None  # the token set, fixed once
    refusal: str = ""  # the PO target of a forget sample


def _pair_samples(split: Split, use_discriminator: bool, retain_pool: list) -> list:
    out = []
    for role, pairs in (("forget", split.forget_set), ("retain", split.nonprivate_set)):
        out += [EncoderSample(s.image_path, s.question, s.answer, role) for s in pairs]
    if not use_discriminator:
        out += [EncoderSample(s.image_path, s.question, s.answer, "retain") for s in retain_pool]
    return out


def perturbed_views(samples: list[EncoderSample], n_views: int, seed: int) -> list:
    """`n_views` more samples for each forget sample: the same pair on perturbed copies of its
    image (drawn once per image, seeded), each its own sample every epoch."""
    rng = random.Random(seed)
    perturbed: dict[str, list[Image.Image]] = {}
    if n_views:
        for path in dict.fromkeys(s.image for s in samples if s.role == "forget"):
            img = Image.open(path).convert("RGB")
            perturbed[path] = [random_perturbation(img, rng) for _ in range(n_views)]
    return [
        EncoderSample(v, s.question, s.answer, s.role, refusal=s.refusal)
        for s in samples
        if s.role == "forget"
        for v in perturbed.get(s.image, ())
    ]


def encoder_samples(
    vlm: VLM,
    adapter: CagulAdapter,
    split: Split,
    args: CagulTrainingArguments,
    rng: random.Random,
    progress: Callable[[float, str], None] | None = None,
) -> list[EncoderSample]:
    """The encoder's samples for `split`, each with its refusal and its token set."""
    forget_people = {s.image_path for s in split.forget_set + split.nonprivate_set}
    retain_pool = [s for s in split.retain_set if s.image_path not in forget_people]
    pool = rng.sample(retain_pool, min(len(retain_pool), args.max_retain))
    samples = _pair_samples(split, adapter.config.use_discriminator, pool)
    if progress:
        progress(0.0, f"selecting tokens for {len(samples)} samples")
    for s in samples:
        s.refusal = rng.choice(REFUSALS)
    samples += perturbed_views(samples, args.encoder_views, args.seed)
    fix_token_sets(vlm, adapter, samples, args.batch_size, args.seed)
    return samples


class EncoderTrainer:
    """AdamW on the token encoder over fixed `samples`. `active` is False when the encoder has
    nothing to train (the uniform-noise ablation)."""

    def __init__(
        self,
        vlm: VLM,
        adapter: CagulAdapter,
        samples: list[EncoderSample],
        args: CagulTrainingArguments,
    ):
        self.vlm = vlm
        self.adapter = adapter
        self.samples = samples
        self.batch_size = args.batch_size
        self.params = [p for p in adapter.token_encoder.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=args.lr) if self.params else None
        self.steps = math.ceil(len(samples) / args.batch_size) if self.opt else 0
        self.sched = None
        if self.opt and args.cosine:
            # Decaying to zero lets the last epochs settle instead of bouncing around the
            # PO/GD compromise at full step size.
            n = max(1, args.epochs * self.steps)
            self.sched = torch.optim.lr_scheduler.LambdaLR(
                self.opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, n) / n))
            )
        is_forget = torch.tensor([s.role == "forget" for s in samples], dtype=torch.bool)
        self.objective = Objective(adapter.config.objective, args, is_forget)

    @property
    def active(self) -> bool:
        return self.opt is not None

    def epoch(self, rng: random.Random, tick: Callable[[str], None], label: str) -> dict:
        """One pass over the samples in an order shuffled by `rng`; the mean NLL of each role's
        targets ({"forget", "retain"}, None for a role without samples)."""
        order = list(range(len(self.samples)))
        rng.shuffle(order)
        sums: dict[str, list[float]] = {"forget": [], "retain": []}
        for i in range(0, len(order), self.batch_size):
            idx = order[i : i + self.batch_size]
            chunk = [self.samples[j] for j in idx]
            answers = targets(chunk, self.objective.name)
            batch = self.vlm.prepare([s.image for s in chunk], [s.question for s in chunk],
                                     answers)  # fmt: skip
            rep = TokenReplacement(self.adapter.token_encoder, [s.indices for s in chunk])
            logits = self.vlm.forward(batch, rep)
            loss, nll = self.objective.loss(self.vlm, batch, logits, idx)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            self.opt.step()
            if self.sched:
                self.sched.step()
            for s, v in zip(chunk, nll.tolist(), strict=True):
                sums[s.role].append(v)
            tick(f"{label} encoder loss {loss.item():.3f}")
        return {k: (sum(v) / len(v) if v else None) for k, v in sums.items()}
