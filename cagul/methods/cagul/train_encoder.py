"""Training CAGUL's token encoder: its samples and one epoch.

The samples (`encoder_samples`) are the pairs whose image the gate rewrites: every forget and
non-private pair of the split, and, without a discriminator (every image is rewritten then),
up to `max_retain` retain pairs of other people. Gating by ground-truth membership during
training, only these samples can move the encoder, so only they get language-model passes: the
cost grows with the forget people, not with the dataset. Each sample keeps one refusal, drawn
once. Each forget pair is also shown on `encoder_views` perturbed copies of its image, each a
sample of its own with its own token set, so a shifted or re-lit photo is rewritten too. Token
sets are fixed once (`selection.fix_token_sets`).

An epoch (`EncoderTrainer.epoch`) runs shuffled batches of the samples the schedule chose
(`train._Schedule`) through the VLM with the selected tokens rewritten by the
encoder (a `TokenReplacement` hook), takes the loss from `objective`, clips the gradient
norm at 1 and steps AdamW at the learning rate the schedule set. `verify_samples` is the
schedule's check: every sample's greedy answer with its tokens rewritten, as the evaluation
generates it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from PIL import Image

from cagul import metrics
from cagul.answering import cut_answer
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
    keywords: tuple[str, ...] = ()  # what a leaking answer contains (the verification check)
    view_of: int | None = None  # a perturbed view: the index of its clean sample


def _pair_samples(split: Split, use_discriminator: bool, retain_pool: list) -> list:
    out = []
    for role, pairs in (("forget", split.forget_set), ("retain", split.nonprivate_set)):
        out += [
            EncoderSample(s.image_path, s.question, s.answer, role, keywords=s.keywords)
            for s in pairs
        ]
    if not use_discriminator:
        out += [
            EncoderSample(s.image_path, s.question, s.answer, "retain", keywords=s.keywords)
            for s in retain_pool
        ]
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
        EncoderSample(
            v, s.question, s.answer, s.role, refusal=s.refusal, keywords=s.keywords, view_of=i
        )
        for i, s in enumerate(samples)
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
    fix_token_sets(vlm, adapter, samples, args.cache_batch_size, args.seed)
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
        self.lr = args.lr
        is_forget = torch.tensor([s.role == "forget" for s in samples], dtype=torch.bool)
        self.objective = Objective(adapter.config.objective, args, is_forget)

    @property
    def active(self) -> bool:
        return self.opt is not None

    def set_lr_factor(self, factor: float) -> None:
        """The learning rate for the next steps: `factor` times the configured one."""
        for group in self.opt.param_groups:
            group["lr"] = self.lr * factor

    def epoch(
        self,
        rng: random.Random,
        tick: Callable[[str], None],
        label: str,
        active: list[int] | None = None,
    ) -> dict:
        """One pass over the samples `active` (None: all) in an order shuffled by `rng`; the
        mean NLL of each role's targets ({"forget", "retain"}, None for a role without
        samples in this pass) and the number of language-model passes ("passes")."""
        order = list(range(len(self.samples))) if active is None else list(active)
        rng.shuffle(order)
        sums: dict[str, list[float]] = {"forget": [], "retain": []}
        for i in range(0, len(order), self.batch_size):
            idx = order[i : i + self.batch_size]
            chunk = [self.samples[j] for j in idx]
            answers = targets(chunk, self.objective.name)
            batch = self.vlm.prepare([s.image for s in chunk], [s.question for s in chunk], answers)
            rep = TokenReplacement(self.adapter.token_encoder, [s.indices for s in chunk])
            logits = self.vlm.forward(batch, rep)
            loss, nll = self.objective.loss(self.vlm, batch, logits, idx)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            self.opt.step()
            for s, v in zip(chunk, nll.tolist(), strict=True):
                sums[s.role].append(v)
            tick(f"{label} encoder loss {loss.item():.3f}")
        out: dict = {k: (sum(v) / len(v) if v else None) for k, v in sums.items()}
        out["passes"] = len(order)
        return out


def base_answers_right(vlm: VLM, samples: list[EncoderSample], batch_size: int) -> list[bool]:
    """Whether the base model (nothing rewritten) answers each non-forget sample right (keyword
    EM 1): the verification check asks the rewrite to keep only what the base model knows."""
    keep = [i for i, s in enumerate(samples) if s.role != "forget" and s.keywords]
    answers = _greedy(vlm, [samples[i] for i in keep], None, batch_size)
    right = [False] * len(samples)
    for i, a in zip(keep, answers, strict=True):
        right[i] = metrics.keyword_em(a, samples[i].keywords) == 1.0
    return right


def _greedy(vlm: VLM, samples: list[EncoderSample], encoder, batch_size: int) -> list[str]:
    """Greedy answers as the evaluation generates them (cut at the first "."), with each
    sample's fixed token set rewritten by `encoder` (None: the base model)."""
    out: list[str] = []
    for i in range(0, len(samples), batch_size):
        chunk = samples[i : i + batch_size]
        batch = vlm.prepare([s.image for s in chunk], [s.question for s in chunk])
        rep = None if encoder is None else TokenReplacement(encoder, [s.indices for s in chunk])
        out += [cut_answer(t) for t in vlm.generate(batch, rep, 50, stop_at_period=True)]
    return out


def verify_samples(
    vlm: VLM,
    adapter: CagulAdapter,
    samples: list[EncoderSample],
    base_right: list[bool],
    batch_size: int,
) -> list[bool]:
    """Per sample, whether its rewritten greedy answer is what training wants: a forget sample
    (clean or a perturbed view) leaks none of its keywords (keyword EM 0, what forget EM
    counts); another sample the base model answered right is still answered right."""
    answers = _greedy(vlm, samples, adapter.token_encoder, batch_size)
    ok = []
    for s, a, base in zip(samples, answers, base_right, strict=True):
        if s.role == "forget":
            ok.append(not s.keywords or metrics.keyword_em(a, s.keywords) == 0.0)
        else:
            ok.append(not base or metrics.keyword_em(a, s.keywords) == 1.0)
    return ok
