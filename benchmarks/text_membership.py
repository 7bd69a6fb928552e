"""Does the demo's language model learn "is X among these objects" at all, with no image? (#4)

`benchmarks/scene_reading` found that a fresh language model of the bundle's size does not
learn existence questions even when the visual tokens are its own word embeddings of what
lies under them. This takes vision out entirely: the objects are listed as *text*
("Objects: heart, square, circle. Is there a star in the image?" → "No."), on fresh
procedural scenes, and the model (the bundle's Qwen2.5-VL config, new weights, trained as the
bundle trains: AdamW, lr 3e-3, warm-up then cosine) answers 400 held-out scenes, judged by
its first answer token (Yes vs No). The shapes' base rates give ≈ 0.63 from the question alone.

Arms: `--turns 1`, one question per conversation (how the bundle's VQA items are asked), and
`--turns N`, N questions about the same objects in one multi-turn conversation (as LLaVA-style
instruction data asks them): N supervised answers per sequence for about N/2 times the
tokens.

`--scenes 0` draws a fresh scene for every conversation, so answers cannot be memorised per
scene (on 3000 reused scenes the training loss fell to 0.12 while held-out accuracy stayed
near the prior: the model was memorising). Measured (results/text_membership_fresh*.json):
fresh scenes at lr 3e-3 stay at the prior (0.655 from step 200 to 400, 0.725 at 600); at
lr 1e-3 held-out accuracy is 0.978 at step 200 and 1.000 from step 300. The learning rate,
not the model's size, kept the bundle's language model from learning membership.

Usage::

    python -m benchmarks.text_membership [--steps 600] [--turns 1 6] [--scenes 0] [--lr 1e-3]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from cagul.data.scenes import SHAPES, sample_scene
from cagul.demo.finetune import warmup_schedule
from cagul.models import load_vlm
from cagul.paths import DEMO_DIR


def _question(rng: random.Random, scene) -> tuple[str, str]:
    if rng.random() < 0.5:
        return rng.choice(sorted(scene.shapes)), "Yes"
    return rng.choice([s for s in SHAPES if s not in scene.shapes]), "No"


def conversation(
    tok, rng: random.Random, scene, turns: int, colours: bool = False
) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 outside the answers): the first user turn lists the
    objects ("red heart" with `colours`), every turn asks about one shape."""
    ids: list[int] = []
    labels: list[int] = []
    objects = ", ".join(f"{o.colour} {o.shape}" if colours else o.shape for o in scene.objects)
    for t in range(turns):
        shape, answer = _question(rng, scene)
        listed = f"Objects: {objects}. " if t == 0 else ""
        prompt = (
            f"{'' if t == 0 else chr(10)}<|im_start|>user\n{listed}Is there a {shape} in "
            "the image?<|im_end|>\n<|im_start|>assistant\n"
        )
        p = tok.encode(prompt, add_special_tokens=False)
        a = tok.encode(answer + ".<|im_end|>", add_special_tokens=False)
        ids += p + a
        labels += [-100] * len(p) + a
    return ids, labels


def left_padded_batch(rows, pad: int):
    """(ids, labels) `rows` left-padded into one batch: ids, labels and attention mask."""
    n = max(len(i) for i, _ in rows)
    ids = torch.tensor([[pad] * (n - len(i)) + i for i, _ in rows])
    labels = torch.tensor([[-100] * (n - len(i)) + lab for i, lab in rows])
    mask = torch.tensor([[0] * (n - len(i)) + [1] * len(i) for i, _ in rows])
    return ids, labels, mask


def run_arm(
    turns: int, steps: int, every: int, batch: int, lr: float, seed: int, scenes: int = 3000
) -> list[dict]:
    torch.manual_seed(seed)
    base = load_vlm(DEMO_DIR / "models" / "pretrain")
    tok = base.tokenizer
    model = Qwen2_5_VLForConditionalGeneration(base.model.config).float()
    yes, no = (tok.encode(w, add_special_tokens=False)[0] for w in ("Yes", "No"))
    rng = random.Random(seed)
    train = [sample_scene(rng, f"train_{i}") for i in range(scenes)]
    held_rng = random.Random(seed + 1)
    held = [conversation(tok, held_rng, sample_scene(held_rng, f"held_{i}"), 1) for i in range(400)]
    h_ids, h_labels, h_mask = left_padded_batch(held, tok.pad_token_id)
    first = (h_labels != -100).float().argmax(1)  # position of each held-out answer's first token
    truth = h_labels[torch.arange(len(held)), first] == yes

    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98))
    sched = warmup_schedule(opt, steps, max(1, steps // 20))
    curve, losses, t0 = [], [], time.time()
    model.train()
    for step in range(1, steps + 1):
        rows = [
            conversation(
                tok,
                rng,
                train[rng.randrange(len(train))] if train else sample_scene(rng, "fresh"),
                turns,
            )
            for _ in range(batch)
        ]
        ids, labels, mask = left_padded_batch(rows, tok.pad_token_id)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % every == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                logits = model(input_ids=h_ids, attention_mask=h_mask).logits
            model.train()
            at = logits[torch.arange(len(held)), first - 1]
            said_yes = at[:, yes] > at[:, no]
            row = {
                "turns": turns,
                "step": step,
                "seconds": round(time.time() - t0),
                "loss": round(sum(losses[-every:]) / len(losses[-every:]), 3),
                "held_out_acc": round((said_yes == truth).float().mean().item(), 3),
                "said_yes": round(said_yes.float().mean().item(), 3),
            }
            print(json.dumps(row), flush=True)
            curve.append(row)
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", nargs="+", type=int, default=[1, 6])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument(
        "--batch",
        nargs="+",
        type=int,
        default=[64, 32],
        help="conversations per step, one per arm (default: 64 single-turn, 32 "
        "six-turn, so the arms see similar tokens per step)",
    )
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--scenes",
        type=int,
        default=3000,
        help="training scenes drawn once and reused (0: a fresh scene per "
        "conversation, so answers cannot be memorised per scene)",
    )
    ap.add_argument("--out", default="benchmarks/results/text_membership.json")
    a = ap.parse_args()
    if len(a.batch) != len(a.turns):
        ap.error("give one --batch per --turns arm")
    curves = {
        f"turns={t}": run_arm(t, a.steps, a.every, b, a.lr, a.seed, a.scenes)
        for t, b in zip(a.turns, a.batch, strict=True)
    }
    print("\n| arm | step | seconds | loss | held-out acc | said yes |")
    print("|---|---|---|---|---|---|")
    for name, curve in curves.items():
        for r in curve:
            print(
                f"| {name} | {r['step']} | {r['seconds']} | {r['loss']:.3f} | "
                f"{r['held_out_acc']:.3f} | {r['said_yes']:.2f} |"
            )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"args": vars(a), "curves": curves}, indent=2) + "\n")


if __name__ == "__main__":
    main()
