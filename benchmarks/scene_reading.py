"""Does the demo's language model learn to read shapes from its visual tokens at all? (issue #4)

The bundle's Pretrain answers POPE at chance. `benchmarks/vision_probe` showed its tower
describes unseen scenes poorly; this one asks the other half: given *perfect* visual tokens,
does a language model of the bundle's size, trained from scratch as the bundle trains it,
learn to use them? A fresh language model (the bundle's Qwen2.5-VL config, new weights) is
trained on "Is there a {shape} in the image?" (half yes, half no) and, for `--captions` of the
items, "Describe the image." → "Red star, blue circle." in reading order, on fresh procedural
scenes (never the probes'). Every `--every` steps it answers held-out scenes twice, with the
image and with a blank one: the same accuracy both ways means it answers from the question
alone (the shapes' base rates give ≈ 0.63 that way).

Arms:

- `tower`: the shipped Pretrain's vision tower, frozen.
- `oracle`: every visual token replaced (a forward hook on the tower) by the language model's
  own input embeddings of the words for what lies under it, shape + colour (background:
  "image"), × 20: features no tower could make easier to read.
- `aligned`: the shipped tower trained `--align-steps` more on `--align-scenes` procedural
  scenes (and the shipped faces) by the bundle's vision stage with `token_targets`: each
  visual token regressed onto the oracle's vector for what lies under it. Then frozen, as in
  `tower`. Its held-out per-token accuracy (nearest target) is printed first.

Usage::

    python -m benchmarks.scene_reading [--steps 300] [--arms tower oracle]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration

from benchmarks.text_membership import conversation, left_padded_batch
from cagul.data import load_dataset
from cagul.data.probes import write_probes
from cagul.data.scenes import SHAPES, render_scene, sample_scene, token_classes
from cagul.demo.bundle import scene_attributes, word_targets
from cagul.demo.finetune import pretrain_vision, vision_params, warmup_schedule
from cagul.models import load_vlm
from cagul.paths import DEMO_DIR

_BLANK = Image.new("RGB", (112, 112), (245, 245, 240))


def _caption(scene) -> tuple[str, str]:
    objs = sorted(scene.objects, key=lambda o: (o.row, o.col))
    return "Describe the image.", ", ".join(
        f"{o.colour} {o.shape}" for o in objs
    ).capitalize() + "."


def _existence(scene, rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.5:
        return f"Is there a {rng.choice(sorted(scene.shapes))} in the image?", "Yes."
    absent = [s for s in SHAPES if s not in scene.shapes]
    return f"Is there a {rng.choice(absent)} in the image?", "No."


class _Oracle:
    """Replaces the tower's merged tokens with word embeddings of what lies under each one;
    with `noise` p, each token is instead a uniformly random class's vector with probability
    p (an imperfect tower's mistakes, at training and evaluation alike)."""

    def __init__(self, vlm, scale: float = 20.0, noise: float = 0.0, seed: int = 0):
        self.targets = word_targets(vlm, scale)
        self.noise, self.rng = noise, random.Random(seed + 3)
        self.scenes: list = []  # the scenes of the batch about to run; None: blank image
        vlm.model.model.visual.register_forward_hook(self._hook)

    def _tokens(self, scene) -> torch.Tensor:
        labels = _token_labels(scene)
        n = len(self.targets)
        labels = [self.rng.randrange(n) if self.rng.random() < self.noise else c for c in labels]
        return self.targets[labels]

    def _hook(self, _module, _args, out):
        out.pooler_output = torch.cat([self._tokens(s) for s in self.scenes])
        return out


@torch.no_grad()
def _accuracy(vlm, items, oracle) -> tuple[float, float]:
    """Held-out accuracy (Yes. vs No. by answer likelihood) and the share answered yes."""
    if oracle is not None:
        oracle.scenes = [sc for sc, *_ in items]
    imgs, qs = [im for _, im, _, _ in items], [q for *_, q, _ in items]
    yes = vlm.loss(vlm.prepare(imgs, qs, ["Yes."] * len(items)))
    no = vlm.loss(vlm.prepare(imgs, qs, ["No."] * len(items)))
    pred = ["Yes." if y < n else "No." for y, n in zip(yes.tolist(), no.tolist(), strict=True)]
    hits = sum(p == a for p, (*_, a) in zip(pred, items, strict=True))
    return round(hits / len(items), 3), round(pred.count("Yes.") / len(pred), 3)


def _token_labels(scene) -> list[int]:
    return token_classes(
        [] if scene is None else [(o.shape, o.colour, o.row, o.col) for o in scene.objects]
    )


def align_tower(
    vlm, held: list, scenes: int, steps: int, seed: int, workdir: Path, scale: float = 20.0
) -> dict:
    """The `aligned` arm's vision stage; returns its stats and held-out token accuracy."""
    targets = word_targets(vlm, scale)
    write_probes(workdir, seed=seed + 2, n_train_scenes=scenes, n_test_scenes=0, image_size=112)
    paths, attrs, labels = scene_attributes(workdir)
    faces = [str(ind.image_file) for ind in load_dataset(DEMO_DIR / "data").individuals]
    stats = pretrain_vision(
        vlm,
        faces,
        list(range(len(faces))),
        paths,
        attrs,
        labels,
        token_targets=targets,
        steps=steps,
        seed=seed,
    )
    scenes_held = list({id(sc): (sc, im) for sc, im, *_ in held}.values())
    with torch.no_grad():
        batch = vlm.prepare(
            [im for _, im in scenes_held], ["Describe the image."] * len(scenes_held)
        )
        toks = torch.stack(vlm.visual_tokens(batch))
        pred = torch.cdist(toks, targets.expand(len(toks), -1, -1)).argmin(-1)
    truth = torch.tensor([_token_labels(sc) for sc, _ in scenes_held])
    stats["held_out_token_acc"] = round((pred == truth).float().mean().item(), 3)
    print(json.dumps({"align": stats}), flush=True)
    return stats


def text_stage(vlm, steps: int, lr: float, seed: int) -> None:
    """`steps` of text membership (benchmarks/text_membership: "Objects: red heart, blue
    square. Is there a star in the image?", a fresh scene each) on the language model."""
    tok, model = vlm.tokenizer, vlm.model
    rng = random.Random(seed + 7)
    params = [p for n, p in model.named_parameters() if ".visual." not in n]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98))
    sched = warmup_schedule(opt, steps, max(1, steps // 20))
    model.train()
    for step in range(1, steps + 1):
        rows = [conversation(tok, rng, sample_scene(rng, "t"), 1, colours=True) for _ in range(64)]
        ids, labels, mask = left_padded_batch(rows, tok.pad_token_id)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0:
            print(json.dumps({"text_step": step, "loss": round(loss.item(), 3)}), flush=True)
    model.eval()


def run_arm(
    arm: str,
    steps: int,
    every: int,
    captions: float,
    lr: float,
    seed: int,
    align_scenes: int = 2000,
    align_steps: int = 400,
    train_scenes: int = 3000,
    text_first: int = 0,
    align_scale: float = 20.0,
    oracle_noise: float = 0.0,
) -> list:
    torch.manual_seed(seed)
    vlm = load_vlm(DEMO_DIR / "models" / "pretrain")
    fresh = Qwen2_5_VLForConditionalGeneration(vlm.model.config)
    tower = {k: v for k, v in vlm.model.state_dict().items() if ".visual." in k}
    fresh.load_state_dict(tower, strict=False)
    vlm.model = fresh.float().eval()
    if text_first:
        text_stage(vlm, text_first, lr, seed)
    oracle = None
    if arm == "oracle":
        oracle = _Oracle(vlm, scale=align_scale, noise=oracle_noise, seed=seed)

    rng = random.Random(seed)
    train = [sample_scene(rng, f"train_{i}") for i in range(train_scenes)]
    train_imgs = [render_scene(s, 112) for s in train]
    test_rng = random.Random(seed + 1)
    held, blank = [], []
    for i in range(100):
        sc = sample_scene(test_rng, f"held_{i}")
        im = render_scene(sc, 112)
        absent = [s for s in SHAPES if s not in sc.shapes]
        for shape, ans in (
            (test_rng.choice(sorted(sc.shapes)), "Yes."),
            (test_rng.choice(absent), "No."),
        ):
            q = f"Is there a {shape} in the image?"
            held.append((sc, im, q, ans))
            blank.append((None, _BLANK, q, ans))
    align = None
    if arm == "aligned":
        with tempfile.TemporaryDirectory() as tmp:
            align = align_tower(vlm, held, align_scenes, align_steps, seed, Path(tmp), align_scale)

    model = vlm.model
    for p in model.parameters():
        p.requires_grad_(True)
    for p in vision_params(vlm):  # the tower stays as shipped; the oracle hook replaces its output
        p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98))
    sched = warmup_schedule(opt, steps, max(1, steps // 20))
    curve, losses, t0 = [], [], time.time()
    model.train()
    for step in range(1, steps + 1):
        if train:
            idx = [rng.randrange(len(train)) for _ in range(64)]
            scenes, imgs = [train[i] for i in idx], [train_imgs[i] for i in idx]
        else:  # a fresh scene per item: nothing to memorise per scene
            scenes = [sample_scene(rng, "fresh") for _ in range(64)]
            imgs = [render_scene(sc, 112) for sc in scenes]
        qa = [_caption(sc) if rng.random() < captions else _existence(sc, rng) for sc in scenes]
        if oracle is not None:
            oracle.scenes = scenes
        batch = vlm.prepare(imgs, [q for q, _ in qa], [a for _, a in qa])
        loss = vlm.loss(batch).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % every == 0 or step == steps:
            model.eval()
            (acc, said_yes), (blank_acc, _) = (
                _accuracy(vlm, held, oracle),
                _accuracy(vlm, blank, oracle),
            )
            model.train()
            row = {
                "arm": arm,
                "step": step,
                "seconds": round(time.time() - t0),
                "loss": round(sum(losses[-every:]) / len(losses[-every:]), 3),
                "held_out_acc": acc,
                "blank_image_acc": blank_acc,
                "said_yes": said_yes,
                **({"held_out_token_acc": align["held_out_token_acc"]} if align else {}),
            }
            print(json.dumps(row), flush=True)
            curve.append(row)
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--arms", nargs="+", default=["tower", "oracle"], choices=["tower", "oracle", "aligned"]
    )
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--captions", type=float, default=0.5, help="share of caption items")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--align-scenes", type=int, default=2000, help="aligned arm's scenes")
    ap.add_argument("--align-steps", type=int, default=400, help="aligned arm's max steps")
    ap.add_argument(
        "--train-scenes",
        type=int,
        default=3000,
        help="training scenes drawn once and reused (0: a fresh scene per item; "
        "reused ones can be memorised)",
    )
    ap.add_argument(
        "--text-first",
        type=int,
        default=0,
        help="steps of text membership on the language model first",
    )
    ap.add_argument(
        "--align-scale",
        type=float,
        default=20.0,
        help="oracle tokens and the aligned arm's targets: word embeddings × this",
    )
    ap.add_argument(
        "--oracle-noise",
        type=float,
        default=0.0,
        help="oracle arm: share of tokens replaced by a random class's vector",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/scene_reading.json")
    a = ap.parse_args()
    curves = {
        arm: run_arm(
            arm,
            a.steps,
            a.every,
            a.captions,
            a.lr,
            a.seed,
            a.align_scenes,
            a.align_steps,
            a.train_scenes,
            a.text_first,
            a.align_scale,
            a.oracle_noise,
        )
        for arm in a.arms
    }
    print("\n| arm | step | loss | held-out acc | blank-image acc | said yes |")
    print("|---|---|---|---|---|---|")
    for curve in curves.values():
        for r in curve:
            print(
                f"| {r['arm']} | {r['step']} | {r['loss']:.3f} | {r['held_out_acc']:.3f} | "
                f"{r['blank_image_acc']:.3f} | {r['said_yes']:.2f} |"
            )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"args": vars(a), "curves": curves}, indent=2) + "\n")


if __name__ == "__main__":
    main()
