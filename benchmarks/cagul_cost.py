"""How CAGUL's training cost scales: with the number of forget individuals, not the dataset.

Trains adapters (fixed epochs) on a tiny Qwen2.5-VL for a grid of (dataset size, forget
people) in one run, side by side, and prints a table plus JSON with wall time, language-model
passes per epoch and discriminator views. Usage::

    python -m benchmarks.cagul_cost [--out benchmarks/results/cagul_cost.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from cagul.data import generate_dataset, make_split
from cagul.demo.tiny import build_tiny_vlm
from cagul.methods.cagul.adapter import CagulAdapter
from cagul.methods.cagul.config import CagulTrainingArguments
from cagul.methods.cagul.train import train_cagul
from cagul.models import load_vlm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="benchmarks/results/cagul_cost.json")
    ap.add_argument("--sizes", default="10,40")
    ap.add_argument("--forget", default="1,2,4")
    args = ap.parse_args()
    args_t = CagulTrainingArguments(disc_epochs=1, epochs=2, views=2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_vlm("qwen2_5_vl", Path(tmp) / "m", hidden=256, layers=4)
        vlm = load_vlm(model)
        for n in map(int, args.sizes.split(",")):
            ds = generate_dataset(Path(tmp) / f"d{n}", n, 0, n_train_scenes=2, n_test_scenes=2)
            for f in map(int, args.forget.split(",")):
                split = make_split(ds, ds.ids[:f])
                adapter = CagulAdapter.for_model(vlm, k=4)
                t = time.perf_counter()
                stats = train_cagul(vlm, split, adapter, args_t)
                rows.append(
                    {
                        "individuals": n,
                        "pairs": 20 * n,
                        "forget_people": f,
                        "seconds": round(time.perf_counter() - t, 2),
                        "lm_passes_per_epoch": stats["lm_passes_per_epoch"],
                        "views": stats["views"],
                    }
                )
    base = rows[0]["seconds"]
    print(
        f"{'individuals':>11} {'forget':>6} {'LM passes/epoch':>15} {'views':>6} "
        f"{'seconds':>8} {'× first':>7}"
    )
    for r in rows:
        print(
            f"{r['individuals']:>11} {r['forget_people']:>6} {r['lm_passes_per_epoch']:>15} "
            f"{r['views']:>6} {r['seconds']:>8.2f} {r['seconds'] / base:>7.2f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"args": vars(args), "training": vars(args_t), "rows": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
