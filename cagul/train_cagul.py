"""Training a CAGUL adapter (DESIGN §2.5): the discriminator first, then both jointly.

Losses: BCE for the discriminator over every image (plus perturbed copies, so a re-saved photo
is still recognised, and a few unrelated images, so general questions are left alone); for
the token encoder, PO (a refusal answer) on the forget set and GD (the ground-truth answer) on
retain samples whose image is transformed, i.e. the non-private set; GA+GD and GA+KL swap PO
for gradient ascent (capped) and GD for a KL to the base model's answer distribution.

What is frozen is exploited (DESIGN §2, cost insight): visual tokens are computed once per
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from PIL import Image

from cagul import losses
from cagul.adapter import CagulAdapter
from cagul.data import REFUSALS, Split
from cagul.models import VLM, TokenReplacement
from cagul.perturb import random_perturbation

_VIEW_QUESTION = "What is shown in the image?"


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


@dataclass
class _EncoderSample:
    image: str | Image.Image  # a path, or a perturbed copy (`encoder_views`)
    question: str
    answer: str
    role: str  # "forget" | "retain"
    indices: torch.Tensor | None = None
    refusal: str = ""


Progress = Callable[[float, str], None] | None


def _view_tokens(vlm: VLM, images: list, bs: int) -> tuple[list[torch.Tensor], list]:
    tokens, layouts = [], []
    for i in range(0, len(images), bs):
        chunk = images[i : i + bs]
        batch = vlm.prepare(chunk, [_VIEW_QUESTION] * len(chunk))
        with torch.no_grad():
            tokens += [t.detach().float() for t in vlm.visual_tokens(batch)]
        layouts += batch.layouts
    return tokens, layouts


def _encoder_samples(
    split: Split,
    use_discriminator: bool,
    retain_pool: list,
) -> list:
    out = []
    for role, pairs in (("forget", split.forget_set), ("retain", split.nonprivate_set)):
        for s in pairs:
            out.append(_EncoderSample(s.image_path, s.question, s.answer, role))
    if not use_discriminator:
        out += [_EncoderSample(s.image_path, s.question, s.answer, "retain") for s in retain_pool]
    return out


def _select_all(
    vlm: VLM,
    adapter: CagulAdapter,
    samples: list,
    bs: int,
    seed: int,
    n_views: int = 0,
    roles: tuple[str, ...] = ("forget", "retain"),
) -> list[_EncoderSample]:
    """Fix each sample's token set once (the VLM is frozen, so its scores never change), and
    return, for the samples of `roles`, `n_views` more each: the same pair on a perturbed copy
    of its image with that copy's own token set. Each is a sample of its own every epoch (one
    random draw among clean and perturbed per epoch was measured worse: leak 0.42)."""
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    n_layers = len(vlm.cross_modal_layers)
    perturbed: dict[str, list[Image.Image]] = {}
    if n_views:
        for path in dict.fromkeys(s.image for s in samples if s.role in roles):
            img = Image.open(path).convert("RGB")
            perturbed[path] = [random_perturbation(img, rng) for _ in range(n_views)]
    view_samples = [
        _EncoderSample(v, s.question, s.answer, s.role, refusal=s.refusal)
        for s in samples
        if s.role in roles
        for v in perturbed.get(s.image, ())
    ]
    jobs = samples + view_samples
    for i in range(0, len(jobs), bs):
        chunk = jobs[i : i + bs]
        batch = vlm.prepare([s.image for s in chunk], [s.question for s in chunk])
        if adapter.config.selection == "least_attended":
            scores = vlm.cross_modal_scores(batch)
        else:
            scores = [torch.zeros(n_layers, lay.n_tokens) for lay in batch.layouts]
        for s, sc in zip(chunk, scores, strict=True):
            s.indices = adapter.select(sc, gen)
    return view_samples


def _hard_weights(
    last_loss: torch.Tensor, is_forget: torch.Tensor, idx: list[int], exponent: float, cap: float
) -> torch.Tensor:
    """Weights of samples `idx`: (last loss / mean last loss of the same role) ** `exponent`,
    at most `cap`; 1 for a sample not seen yet (NaN last loss) or when `exponent` is 0."""
    w = torch.ones(len(idx))
    if not exponent:
        return w
    sel = torch.tensor(idx, dtype=torch.long)
    for role in (True, False):
        seen = (is_forget == role) & ~last_loss.isnan()
        if not seen.any():
            continue
        mean = last_loss[seen].mean().clamp(min=1e-6)
        mine = (is_forget[sel] == role) & ~last_loss[sel].isnan()
        w[mine] = (last_loss[sel][mine].clamp(min=0) / mean) ** exponent
    return w.clamp(max=cap)


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
    cfg = adapter.config
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    t0 = time.time()
    dev = vlm.device
    adapter.to(dev).train()

    # --- cached views for the discriminator -------------------------------------------------
    forget_ids = set(split.forget_ids)
    people: dict[str, bool] = {}
    for s in split.forget_set + split.retain_set:
        people.setdefault(s.image_path, s.unique_id in forget_ids)
    view_imgs, view_labels = [], []
    for path, label in people.items():
        img = Image.open(path).convert("RGB")
        view_imgs += [path] + [random_perturbation(img, rng) for _ in range(args.views)]
        view_labels += [float(label)] * (args.views + 1)
    for path in list(negatives)[: args.max_negatives]:
        view_imgs.append(path)
        view_labels.append(0.0)
    if progress:
        progress(0.0, f"caching visual tokens of {len(view_imgs)} image views")
    view_tokens, view_layouts = _view_tokens(vlm, view_imgs, args.disc_batch_size)
    y = torch.tensor(view_labels, device=dev)
    n_pos = float(y.sum())
    pos_weight = torch.tensor((len(y) - n_pos) / max(1.0, n_pos), device=dev)

    # --- encoder samples and their fixed token sets -----------------------------------------
    forget_people = {s.image_path for s in split.forget_set + split.nonprivate_set}
    retain_pool = [s for s in split.retain_set if s.image_path not in forget_people]
    samples: list[_EncoderSample] = []
    if cfg.use_encoder:
        pool = rng.sample(retain_pool, min(len(retain_pool), args.max_retain))
        samples = _encoder_samples(split, cfg.use_discriminator, pool)
        if progress:
            progress(0.0, f"selecting tokens for {len(samples)} samples")
        for s in samples:
            s.refusal = rng.choice(REFUSALS)
        samples += _select_all(
            vlm, adapter, samples, args.batch_size, args.seed, args.encoder_views, ("forget",)
        )

    disc_opt = torch.optim.AdamW(adapter.discriminator.parameters(), lr=args.disc_lr)
    enc_params = [p for p in adapter.token_encoder.parameters() if p.requires_grad]
    enc_opt = torch.optim.AdamW(enc_params, lr=args.lr) if enc_params else None
    disc_steps = math.ceil(len(view_tokens) / args.disc_batch_size)
    enc_steps = math.ceil(len(samples) / args.batch_size) if enc_opt else 0
    enc_sched = None
    if enc_opt and args.cosine:
        # Decaying to zero lets the last epochs settle instead of bouncing around the PO/GD
        # compromise at full step size.
        n = max(1, args.epochs * enc_steps)
        enc_sched = torch.optim.lr_scheduler.LambdaLR(
            enc_opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, n) / n))
        )
    total = args.disc_epochs * disc_steps + args.epochs * (disc_steps + enc_steps)
    done, epoch_seconds, history = 0, [], []

    def tick(msg: str) -> None:
        nonlocal done
        done += 1
        if check_cancel:
            check_cancel()
        if progress:
            eta = (time.time() - t0) / done * (total - done)
            progress(done / max(1, total), f"{msg} · ETA {eta:.0f}s")

    def disc_epoch(epoch_label: str) -> float:
        order = list(range(len(view_tokens)))
        rng.shuffle(order)
        losses = []
        for i in range(0, len(order), args.disc_batch_size):
            idx = order[i : i + args.disc_batch_size]
            logits = adapter.discriminator([view_tokens[j] for j in idx],
                                           [view_layouts[j] for j in idx])  # fmt: skip
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, y[idx], pos_weight=pos_weight
            )
            disc_opt.zero_grad(set_to_none=True)
            loss.backward()
            disc_opt.step()
            losses.append(loss.item())
            tick(f"{epoch_label} discriminator BCE {loss.item():.3f}")
        return sum(losses) / max(1, len(losses))

    last_loss = torch.full((len(samples),), float("nan"))
    is_forget = torch.tensor([s.role == "forget" for s in samples], dtype=torch.bool)

    def enc_epoch(epoch_label: str) -> dict:
        order = list(range(len(samples)))
        rng.shuffle(order)
        sums: dict[str, list[float]] = {"forget": [], "retain": []}
        for i in range(0, len(order), args.batch_size):
            idx = order[i : i + args.batch_size]
            chunk = [samples[j] for j in idx]
            po = cfg.objective == "po_gd"
            answers = [
                s.answer if not (s.role == "forget" and po)
                else s.refusal
                for s in chunk
            ]  # fmt: skip
            batch = vlm.prepare([s.image for s in chunk], [s.question for s in chunk], answers)
            rep = TokenReplacement(adapter.token_encoder, [s.indices for s in chunk])
            logits = vlm.forward(batch, rep)
            nll = losses.nll(logits, batch.labels)
            forget = torch.tensor([s.role == "forget" for s in chunk], device=nll.device)
            # The shared losses (cagul.losses): PO is the NLL of a refusal; GA is capped so it
            # cannot diverge; GA+KL holds the base model's answer distribution on retain samples.
            forget_term = nll if po else losses.ga(logits, batch.labels, cap=args.ga_cap)
            retain_term = nll
            if cfg.objective == "ga_kl":
                with torch.no_grad():
                    base_logits = vlm.forward(batch)
                retain_term = losses.kl_to_reference(logits, base_logits, batch.labels)
            per = torch.where(
                forget, args.forget_weight * forget_term, args.gd_weight * retain_term
            )
            if po:
                w = _hard_weights(last_loss, is_forget, idx, args.hard_weight, args.hard_cap)
                per = per * w.to(per.device)
                last_loss[idx] = nll.detach().float().cpu()
            loss = per.mean()
            enc_opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(enc_params, 1.0)
            enc_opt.step()
            if enc_sched:
                enc_sched.step()
            for s, v in zip(chunk, nll.tolist(), strict=True):
                sums[s.role].append(v)
            tick(f"{epoch_label} encoder loss {loss.item():.3f}")
        return {k: (sum(v) / len(v) if v else None) for k, v in sums.items()}

    for e in range(args.disc_epochs):
        history.append(
            {"epoch": f"disc{e + 1}", "bce": disc_epoch(f"disc {e + 1}/{args.disc_epochs}")}
        )
    for e in range(args.epochs):
        te = time.time()
        label = f"epoch {e + 1}/{args.epochs}"
        row = {"epoch": e + 1, "bce": disc_epoch(label)}
        if enc_opt:
            nll = enc_epoch(label)
            row.update(forget_nll=nll["forget"], retain_nll=nll["retain"])
        history.append(row)
        epoch_seconds.append(time.time() - te)

    adapter.eval()
    with torch.no_grad():
        pred = adapter.forget_probability(view_tokens, view_layouts) > cfg.threshold
    view_acc = (pred.float() == y.cpu()).float().mean().item()
    return {
        "seconds": round(time.time() - t0, 2),
        "epoch_seconds": round(sum(epoch_seconds) / max(1, len(epoch_seconds)), 3),
        "trainable_params": adapter.n_trainable(),
        "views": len(view_tokens),
        "encoder_samples": len(samples),
        "lm_passes_per_epoch": len(samples),
        "discriminator_train_accuracy": view_acc,
        "history": history,
        "arguments": asdict(args),
    }


def negatives_from(data_dir: str | Path, limit: int = 64) -> list[str]:
    """Unrelated images (the probe scenes) to teach the discriminator what is nobody."""
    d = Path(data_dir) / "probes" / "images"
    return sorted(str(p) for p in d.glob("scene_train_*.png"))[:limit] if d.is_dir() else []
