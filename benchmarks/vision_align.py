"""Does the bundle's vision stage make tokens a language model can read? (issue #4)

`benchmarks/scene_reading` showed a fresh language model reads visual tokens that are its own
word embeddings of what lies under them, and does not read them when a fifth are wrong. This
runs the demo bundle's vision stage as `demo-bundle` does (a fresh tiny Qwen2.5-VL, the
bundle's faces, its 200 training scenes plus `--extra-scenes` procedural ones, each scene
token regressed onto the word embeddings of what lies under it), optionally with the
contrastive term (`--contrast`: cross-entropy over the negative distances to every class's
target), and scores the tower on the 60 held-out test scenes of the probes: the share of
tokens whose nearest target is the right class (shape and colour), and of tokens whose
nearest target has the right shape (what POPE asks).

Usage::

    python -m benchmarks.vision_align [--steps 1400] [--contrast 1.0] [--extra-scenes 4000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

from cagul.data import generate_dataset, load_dataset, load_probes
from cagul.data.scenes import COLOURS, token_classes
from cagul.demo.bundle import BundleConfig, draw_extra_scenes, vision_stage, word_targets


def held_out_accuracy(vlm, probes_dir: Path, targets: torch.Tensor) -> tuple[float, float]:
    """(class, shape) accuracy of the nearest target over every token of the test scenes."""
    scenes = [
        s
        for s in json.loads((probes_dir / "scenes.json").read_text())
        if s["scene_id"].startswith("test")
    ]
    imgs = [
        Image.open(probes_dir / "images" / f"scene_{s['scene_id']}.png").convert("RGB")
        for s in scenes
    ]
    with torch.no_grad():
        toks = torch.stack(
            vlm.visual_tokens(vlm.prepare(imgs, ["Describe the image."] * len(imgs)))
        )
        pred = torch.cdist(toks.float(), targets.expand(len(toks), -1, -1)).argmin(-1)
    truth = torch.tensor(
        [
            token_classes([(o["shape"], o["colour"], o["row"], o["col"]) for o in s["objects"]])
            for s in scenes
        ]
    )
    n = len(COLOURS)
    same_shape = ((pred == 0) == (truth == 0)) & (
        (pred == 0) | ((pred - 1) // n == (truth - 1) // n)
    )
    return (pred == truth).float().mean().item(), same_shape.float().mean().item()


def run(steps: int, contrast: float, extra_scenes: int, lr: float, seed: int) -> dict:
    cfg = BundleConfig(seed=seed, extra_scenes=extra_scenes)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate_dataset(out / "data", cfg.n_individuals, seed, image_size=cfg.image_size)
        ds, probes = load_dataset(out / "data"), load_probes(out / "data" / "probes")
        dirs, clash = [out / "data" / "probes"], set()
        if extra_scenes:
            clash = draw_extra_scenes(out / "_scenes", out / "data" / "probes", cfg)
            dirs.append(out / "_scenes")
        cfg = replace(cfg, vision_steps=steps, vision_lr=lr, token_contrast=contrast)
        vlm, stats = vision_stage(out, cfg, ds, probes, None, dirs, clash)
        targets = word_targets(vlm, cfg.align_scale)
        token_acc, shape_acc = held_out_accuracy(vlm, out / "data" / "probes", targets)
    return {
        "steps": steps,
        "contrast": contrast,
        "extra_scenes": extra_scenes,
        "lr": lr,
        "seconds": stats["seconds"],
        "train_token_acc": stats["token_accuracy"],
        "held_out_token_acc": round(token_acc, 4),
        "held_out_shape_acc": round(shape_acc, 4),
        "face_accuracy": stats["accuracy"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1400)
    ap.add_argument(
        "--contrast",
        type=float,
        nargs="+",
        default=[1.0],
        help="one run per value (0: regression only)",
    )
    ap.add_argument("--extra-scenes", type=int, default=4000)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/vision_align.json")
    a = ap.parse_args()
    rows = [run(a.steps, c, a.extra_scenes, a.lr, a.seed) for c in a.contrast]
    print("\n| contrast | steps | s | train token acc | held-out token acc | held-out shape acc |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['contrast']} | {r['steps']} | {r['seconds']:.0f} | {r['train_token_acc']:.3f} "
            f"| {r['held_out_token_acc']:.3f} | {r['held_out_shape_acc']:.3f} |"
        )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"args": vars(a), "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
