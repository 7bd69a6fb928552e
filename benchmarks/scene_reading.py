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

Usage::

    python -m benchmarks.scene_reading [--steps 300] [--arms tower oracle]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration

from cagul.data.scenes import COLOURS, SHAPES, render_scene, sample_scene, token_cells
from cagul.finetune import _schedule, _vision_params
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
    """Replaces the tower's merged tokens with word embeddings of what lies under each one."""

    def __init__(self, vlm, scale: float = 20.0):
        emb = vlm.model.model.language_model.embed_tokens.weight.detach().clone()
        ids = {w: vlm.tokenizer.encode(" " + w, add_special_tokens=False)[-1]
               for w in (*SHAPES, *COLOURS, "image")}  # fmt: skip
        self.vec = {w: scale * emb[i] for w, i in ids.items()}
        self.cells = token_cells(4)
        self.scenes: list = []  # the scenes of the batch about to run; None: blank image
        vlm.model.model.visual.register_forward_hook(self._hook)

    def _tokens(self, scene) -> torch.Tensor:
        at = {} if scene is None else {(o.row, o.col): o for o in scene.objects}
        return torch.stack([self.vec["image"] if (o := at.get(c)) is None else
                            self.vec[o.shape] + self.vec[o.colour] for c in self.cells])  # fmt: skip

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


def run_arm(arm: str, steps: int, every: int, captions: float, lr: float, seed: int) -> list:
    torch.manual_seed(seed)
    vlm = load_vlm(DEMO_DIR / "models" / "pretrain")
    fresh = Qwen2_5_VLForConditionalGeneration(vlm.model.config)
    tower = {k: v for k, v in vlm.model.state_dict().items() if ".visual." in k}
    fresh.load_state_dict(tower, strict=False)
    vlm.model = fresh.float().eval()
    oracle = _Oracle(vlm) if arm == "oracle" else None

    rng = random.Random(seed)
    train = [sample_scene(rng, f"train_{i}") for i in range(3000)]
    train_imgs = [render_scene(s, 112) for s in train]
    test_rng = random.Random(seed + 1)
    held, blank = [], []
    for i in range(100):
        sc = sample_scene(test_rng, f"held_{i}")
        im = render_scene(sc, 112)
        absent = [s for s in SHAPES if s not in sc.shapes]
        for shape, ans in ((test_rng.choice(sorted(sc.shapes)), "Yes."),
                           (test_rng.choice(absent), "No.")):  # fmt: skip
            q = f"Is there a {shape} in the image?"
            held.append((sc, im, q, ans))
            blank.append((None, _BLANK, q, ans))

    model = vlm.model
    for p in model.parameters():
        p.requires_grad_(True)
    for p in _vision_params(vlm):  # the tower stays as shipped; the oracle hook replaces its output
        p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98))
    sched = _schedule(opt, steps, max(1, steps // 20))
    curve, losses, t0 = [], [], time.time()
    model.train()
    for step in range(1, steps + 1):
        idx = [rng.randrange(len(train)) for _ in range(64)]
        qa = [_caption(train[i]) if rng.random() < captions else _existence(train[i], rng)
              for i in idx]  # fmt: skip
        if oracle is not None:
            oracle.scenes = [train[i] for i in idx]
        batch = vlm.prepare([train_imgs[i] for i in idx], [q for q, _ in qa], [a for _, a in qa])
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
            row = {"arm": arm, "step": step, "seconds": round(time.time() - t0),
                   "loss": round(sum(losses[-every:]) / len(losses[-every:]), 3),
                   "held_out_acc": acc, "blank_image_acc": blank_acc, "said_yes": said_yes}  # fmt: skip
            print(json.dumps(row), flush=True)
            curve.append(row)
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arms", nargs="+", default=["tower", "oracle"], choices=["tower", "oracle"])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--captions", type=float, default=0.5, help="share of caption items")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/scene_reading.json")
    a = ap.parse_args()
    curves = {arm: run_arm(arm, a.steps, a.every, a.captions, a.lr, a.seed) for arm in a.arms}
    print("\n| arm | step | loss | held-out acc | blank-image acc | said yes |")
    print("|---|---|---|---|---|---|")
    for curve in curves.values():
        for r in curve:
            print(f"| {r['arm']} | {r['step']} | {r['loss']:.3f} | {r['held_out_acc']:.3f} | "
                  f"{r['blank_image_acc']:.3f} | {r['said_yes']:.2f} |")  # fmt: skip
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"args": vars(a), "curves": curves}, indent=2) + "\n")


if __name__ == "__main__":
    main()
