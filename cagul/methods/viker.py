"""ViKeR (Cai et al. 2026, "Visual-Guided Key-Token Regularization for Multimodal Large Language
Model Unlearning", arXiv 2601.22020), built from its abstract: there is no public code, so
every choice below is ours and says why.

The abstract's three ideas, and how each is realised:
1. *Irrelevant visual inputs predict the ideal post-unlearning token distributions.* For each
   forget pair, the base model is asked the same question with the same true answer (teacher
   forcing) but with an irrelevant image, and its next-token distribution at every answer
   position is the target. The irrelevant image is an **unseen synthetic face**: the dataset's
   own face renderer (`cagul.data.faces`) with attributes drawn from seeds outside the
   dataset, rendered at the pair's image size, and skipped if it equals a dataset image
   pixel for pixel. Why a face: the ideal unlearned model answers about the forget person as
   it would about a person it never learned, and an unseen face is exactly that question; a
   blank image or a scene is a question the model never saw about a person (off its
   distribution), and another known person's face would target *that* person's facts. The
   target is the mean of the distributions under `n_images` (default 4) such faces, so no
   single face's quirks become the target.
2. *Key tokens by information entropy.* A position where the base model, shown an unknown
   face, is sure of the next token (the template: "The person lives in") carries no private
   information; where it is unsure (the city itself) the token is key. Each answer position
   is weighted by the target's entropy over the sample's mean entropy, to the power
   `entropy_power` (default 1), so the weights average to 1 over an answer and key tokens
   weigh more.
3. *The update regularises toward the target, amplifying updates on key tokens.* The forget
   term is Σ_t w_t KL(target_t ‖ current_t) / Σ_t w_t on the forget pairs with their real
   images (`cagul.losses.weighted_kl_to_target`): pulling the model's distribution onto the
   "unknown person" one rather than pushing the true answer away (GA), so it cannot collapse
   into nonsense, and the entropy weights scale each token's gradient (the abstract's
   token-level gradient reweighting). Retain quality is kept by NLL on D_r (GD), as in every
   LoRA baseline here. Optionally `ga_weight` adds entropy-weighted GA (off by default: the
   abstract names regularisation, not ascent, as the update).

Trained with the shared LoRA trainer (`cagul.methods.lora`) on the language model; no early
stopping by default (the KL target is bounded below by 0).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch

from cagul import losses
from cagul.data.faces import render_face, sample_face
from cagul.methods.lora import LoraArguments, LoraMethod, Step


@dataclass
class VikerArguments(LoraArguments):
    """The LoRA baselines' settings plus ViKeR's own."""

    n_images: int = field(default=4, metadata={"help": "unseen faces averaged for the target"})
    entropy_power: float = field(
        default=1.0, metadata={"help": "key-token weight = (entropy / mean entropy) ** this"}
    )
    ga_weight: float = field(
        default=0.0, metadata={"help": "weight of an entropy-weighted GA term (0: off)"}
    )
    face_seed: int = field(default=1_000_003, metadata={"help": "first seed of the unseen faces"})


def unseen_faces(n: int, size: tuple[int, int], known: list[str], seed: int) -> list:
    """`n` rendered faces that are pixel-for-pixel none of the `known` images."""
    from PIL import Image

    known_arrays = {np.asarray(Image.open(p).convert("RGB")).tobytes() for p in known}
    out, s = [], seed
    while len(out) < n:
        img = render_face(
            sample_face(random.Random(s), random.Random(s).choice(["female", "male"])), size=size[0]
        )
        if img.size != size:
            img = img.resize(size)
        if np.asarray(img.convert("RGB")).tobytes() not in known_arrays:
            out.append(img)
        s += 1
    return out


def answer_rows(logits: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
    """Per sample, the `[n_answer, V]` logits that predict its labelled tokens."""
    mask = labels[:, 1:] != -100
    return [logits[b, :-1][mask[b]] for b in range(len(labels))]


def pad_rows(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """`rows` zero-padded at the end into one tensor, and the mask of their real positions."""
    n = max(len(r) for r in rows)
    out = rows[0].new_zeros((len(rows), n) + tuple(rows[0].shape[1:]))
    mask = torch.zeros(len(rows), n, device=rows[0].device)
    for b, r in enumerate(rows):
        out[b, : len(r)] = r
        mask[b, : len(r)] = 1
    return out, mask


def key_token_weights(target_logprobs: torch.Tensor, power: float) -> torch.Tensor:
    """Entropy of each position's target over the answer's mean entropy, to `power`."""
    h = losses.entropy(target_logprobs)
    return (h / h.mean().clamp(min=1e-6)) ** power


class Viker(LoraMethod):
    name = "viker"
    config_class = VikerArguments

    def prepare(self, vlm, split, args: VikerArguments) -> dict:
        """Per forget pair: the target log-probs `[n_answer, V]` and key-token weights."""
        from PIL import Image

        known = sorted({s.image_path for s in split.forget_set + split.retain_set})
        targets, faces_of = {}, {}
        with torch.no_grad():
            for s in split.forget_set:
                size = Image.open(s.image_path).size
                if size not in faces_of:
                    faces_of[size] = unseen_faces(args.n_images, size, known, args.face_seed)
                faces = faces_of[size]
                batch = vlm.prepare(faces, [s.question] * len(faces), [s.answer] * len(faces))
                rows = answer_rows(vlm.forward(batch).float(), batch.labels)
                probs = torch.stack([torch.softmax(r, -1) for r in rows]).mean(0)
                logp = probs.clamp(min=1e-12).log()
                targets[(s.image_path, s.question)] = (
                    logp,
                    key_token_weights(logp, args.entropy_power),
                )
        return targets

    def loss(self, step: Step):
        f = step.forget
        rows = answer_rows(step.vlm.forward(f), f.labels)
        cur, mask = pad_rows(rows)
        tl, tw = zip(
            *(step.state[(s.image_path, s.question)] for s in step.forget_samples), strict=True
        )
        target, _ = pad_rows([t.to(cur.device) for t in tl])
        weights, _ = pad_rows([w.to(cur.device) for w in tw])
        forget = losses.weighted_kl_to_target(cur, target, weights, mask).mean()
        total = step.args.forget_weight * forget
        terms = {"forget": forget.item()}
        if step.args.ga_weight:
            tok = -torch.log_softmax(cur.float(), -1)
            ids = pad_rows([lab[1:][lab[1:] != -100] for lab in f.labels])[0].long()
            nll_tok = tok.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
            ga = -((nll_tok * weights * mask).sum(1) / (weights * mask).sum(1)).mean()
            total = total + step.args.ga_weight * ga
            terms["ga"] = ga.item()
        retain = losses.nll(step.vlm.forward(step.retain), step.retain.labels).mean()
        terms["retain"] = retain.item()
        return total + step.args.retain_weight * retain, terms


METHOD = Viker()
