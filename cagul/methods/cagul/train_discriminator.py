"""Training CAGUL's discriminator: its cached views and one BCE epoch.

The views are the forget people's images, clean and as `views` perturbed copies, so a re-saved
or shifted photo is still recognised, labelled 1; and a fixed budget of negatives labelled 0:
up to `max_negatives` unrelated images (the probe scenes, so general questions are left alone)
and the other people's images, clean and perturbed (`negative_views` in all, so the cost does
not grow with the dataset). The VLM is frozen, so each view's visual tokens are
computed once (`cache_views`) and the discriminator trains on that cache with no
language-model pass at all: a BCE weighted by the ratio of negatives to positives.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from PIL import Image

from cagul.perturb import random_perturbation

if TYPE_CHECKING:
    from cagul.data import Split
    from cagul.methods.cagul.adapter import CagulAdapter
    from cagul.methods.cagul.config import CagulTrainingArguments
    from cagul.models import VLM

_VIEW_QUESTION = "What is shown in the image?"


@dataclass
class Views:
    """The discriminator's training set: cached visual tokens, their layouts and labels."""

    tokens: list[torch.Tensor]
    layouts: list
    labels: torch.Tensor  # 1.0: a forget person; on the VLM's device

    def __len__(self) -> int:
        return len(self.tokens)


def view_tokens(vlm: VLM, images: list, bs: int) -> tuple[list[torch.Tensor], list]:
    """The visual tokens (float32, detached) and layouts of `images`, in batches of `bs`."""
    tokens, layouts = [], []
    for i in range(0, len(images), bs):
        chunk = images[i : i + bs]
        batch = vlm.prepare(chunk, [_VIEW_QUESTION] * len(chunk))
        with torch.no_grad():
            tokens += [t.detach().float() for t in vlm.visual_tokens(batch)]
        layouts += batch.layouts
    return tokens, layouts


def cache_views(
    vlm: VLM,
    split: Split,
    negatives: list[str],
    args: CagulTrainingArguments,
    rng: random.Random,
    progress: Callable[[float, str], None] | None = None,
) -> Views:
    """The forget people's images clean and perturbed (`args.views` copies drawn with `rng`),
    then at most `args.negative_views` negatives: the first `args.max_negatives` of
    `negatives` and every other person's clean image (a sample of them when they do not fit),
    then perturbed copies of those people, round-robin, up to the budget. Their visual tokens
    are computed once. The budget keeps the cache and every discriminator epoch the same size
    however large the dataset grows."""
    forget_ids = set(split.forget_ids)
    people: dict[str, bool] = {}
    for s in split.forget_set + split.retain_set:
        people.setdefault(s.image_path, s.unique_id in forget_ids)
    images, labels = [], []
    for path in (p for p, is_forget in people.items() if is_forget):
        img = Image.open(path).convert("RGB")
        images += [path] + [random_perturbation(img, rng) for _ in range(args.views)]
        labels += [1.0] * (args.views + 1)
    negs = negative_views(
        [p for p, is_forget in people.items() if not is_forget],
        list(negatives)[: args.max_negatives],
        args.views,
        args.negative_views,
        rng,
    )
    images += negs
    labels += [0.0] * len(negs)
    if progress:
        progress(0.0, f"caching visual tokens of {len(images)} image views")
    tokens, layouts = view_tokens(vlm, images, args.cache_batch_size)
    return Views(tokens, layouts, torch.tensor(labels, device=vlm.device))


def negative_views(
    others: list[str], scenes: list[str], views: int, budget: int, rng: random.Random
) -> list:
    """At most `budget` negative views: `scenes` and the other people's clean images first
    (a seeded sample when they alone exceed the budget), then up to `views` perturbed copies
    of each other person, one per person per round, until the budget is spent."""
    clean = scenes + others
    if len(clean) >= budget:
        return rng.sample(clean, budget)
    out: list = list(clean)
    opened = {p: Image.open(p).convert("RGB") for p in others}
    for _ in range(views):
        for p in others:
            if len(out) >= budget:
                return out
            out.append(random_perturbation(opened[p], rng))
    return out


class DiscriminatorTrainer:
    """AdamW on the discriminator over cached `views`, one shuffled BCE epoch at a time."""

    def __init__(self, adapter: CagulAdapter, views: Views, args: CagulTrainingArguments):
        self.adapter = adapter
        self.views = views
        self.batch_size = args.disc_batch_size
        self.opt = torch.optim.AdamW(adapter.discriminator.parameters(), lr=args.disc_lr)
        self.steps = math.ceil(len(views) / self.batch_size)
        y = views.labels
        n_pos = float(y.sum())
        self.pos_weight = torch.tensor((len(y) - n_pos) / max(1.0, n_pos), device=y.device)

    def epoch(self, rng: random.Random, tick: Callable[[str], None], label: str) -> float:
        """One pass over the views in an order shuffled by `rng`; the mean BCE."""
        v = self.views
        order = list(range(len(v)))
        rng.shuffle(order)
        bces = []
        for i in range(0, len(order), self.batch_size):
            idx = order[i : i + self.batch_size]
            logits = self.adapter.discriminator(
                [v.tokens[j] for j in idx], [v.layouts[j] for j in idx]
            )
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, v.labels[idx], pos_weight=self.pos_weight
            )
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            bces.append(loss.item())
            tick(f"{label} discriminator BCE {loss.item():.3f}")
        return sum(bces) / max(1, len(bces))

    def separation(self, margin: float) -> dict:
        """Whether the discriminator separates the cached views with `margin`: every forget
        person's view at a probability above threshold + margin, every other view below
        threshold - margin (one batched pass, no update)."""
        v = self.views
        prob = self.adapter.forget_probability(v.tokens, v.layouts)
        pos = v.labels.cpu() > 0.5
        thr = self.adapter.config.threshold
        lowest = float(prob[pos].min()) if pos.any() else 1.0
        highest = float(prob[~pos].max()) if (~pos).any() else 0.0
        return {
            "passed": lowest > thr + margin and highest < thr - margin,
            "lowest_forget_probability": round(lowest, 4),
            "highest_other_probability": round(highest, 4),
        }

    def accuracy(self) -> float:
        """The share of views the adapter's gate decides right (at its threshold)."""
        v = self.views
        pred = self.adapter.forget_probability(v.tokens, v.layouts) > self.adapter.config.threshold
        return (pred.float() == v.labels.cpu()).float().mean().item()
