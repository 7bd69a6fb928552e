"""Does a second population asked in every wording make paraphrases work? (issue #4's gate)

The demo bundle's Finetune model answers its training questions (EM 1.00) but not their
paraphrases (0.04): a tiny LM trained from scratch has no language prior, so an unseen wording
of a question does not reach the fact. A real LM brings that prior from pre-training. This
benchmark gives it one the same way: a disjoint synthetic population (seed 1, its faces added
to the vision identity stage) whose biographies are asked with *every* template of a field,
training and paraphrase, trained alongside the target people, who are asked with training
templates only (`cagul.demo.bundle.template_drawer`). Two arms, same data, same steps, starting
from the shipped Pretrain model; the only difference is whether the other population's
questions include the paraphrase wordings. Paraphrase EM is measured on the *target* people,
whose paraphrases are never trained on. Usage (about 20 minutes per arm on 2 CPU cores)::

    python -m benchmarks.paraphrase_prior [--arms without,with] [--target 10] [--extra 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from cagul.data import generate_dataset, load_dataset, load_probes, make_split
from cagul.demo.bundle import pair_em, template_drawer, vqa_samples
from cagul.demo.finetune import FinetuneConfig, finetune, pretrain_vision
from cagul.models import load_vlm
from cagul.paths import DEMO_DIR


def _pairs(ds) -> list:
    split = make_split(ds, "forget10")
    return split.forget_set + split.retain_set


def run_arm(arm: str, n_target: int, n_extra: int, epochs: int, work: Path) -> dict:
    ds = load_dataset(DEMO_DIR / "data")
    probes = load_probes(DEMO_DIR / "data" / "probes")
    extra_ds = generate_dataset(work / "extra", n_extra, seed=1, probes=False)
    vlm = load_vlm(DEMO_DIR / "models" / "pretrain")
    faces = [str(i.image_file) for i in [*ds.individuals, *extra_ds.individuals]]
    pretrain_vision(vlm, faces, list(range(len(faces))), steps=300, seed=0)
    targets = set(ds.ids[:n_target])
    target = [s for s in _pairs(ds) if s.unique_id in targets]
    extra = _pairs(extra_ds)
    vqa = vqa_samples(probes.train, 0)
    if arm == "with":
        draw = template_drawer(target, vqa, 128, 0, extra=extra)
    else:  # the same pairs, every one asked with training templates only
        draw = template_drawer(target + extra, vqa, 128, 0)
    curve = []
    t0 = time.time()

    def on_epoch(epoch: int) -> None:
        if (epoch + 1) % 10 == 0:
            row = {
                "epoch": epoch + 1,
                "seconds": round(time.time() - t0),
                "target_em": pair_em(vlm, target),
                "target_paraphrase_em": pair_em(vlm, target, paraphrase=True),
            }
            curve.append(row)
            print(arm, row, flush=True)

    cfg = FinetuneConfig(epochs=epochs, lr=3e-3, batch_size=64, seed=0, train_vision=True)
    finetune(vlm, draw, cfg, on_epoch=on_epoch)
    return {
        "target_pairs": len(target),
        "extra_pairs": len(extra),
        "curve": curve,
        **{k: v for k, v in curve[-1].items() if k != "epoch"},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arms", default="without,with")
    ap.add_argument("--target", type=int, default=10, help="bundle people trained on")
    ap.add_argument("--extra", type=int, default=20, help="people of the other population")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--out", default="benchmarks/results/paraphrase_prior.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    out = Path(args.out)
    results = json.loads(out.read_text())["arms"] if out.is_file() else {}
    for arm in args.arms.split(","):
        with tempfile.TemporaryDirectory() as work:
            results[arm] = run_arm(arm, args.target, args.extra, args.epochs, Path(work))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"config": vars(args), "arms": results}, indent=2) + "\n")
    print(f"{'arm':<10}{'target EM':>12}{'paraphrase EM':>16}{'seconds':>10}")
    for arm, r in results.items():
        print(
            f"{arm:<10}{r['target_em']:>12.3f}{r['target_paraphrase_em']:>16.3f}{r['seconds']:>10}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
