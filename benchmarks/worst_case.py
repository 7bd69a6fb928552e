"""The auditor's worst case on the demo bundle: PGD gate evasion and answer recovery per
L-inf budget, the transfer (black-box) check, and MinK++ membership inference.

For each adapter given (default: the shipped CAGUL adapter; add e.g. a PO+GD artifact with
`--adapter DIR`), on its own forget split: the clean answers, then per eps the worst case
(`cagul.attacks.worst_case`, the same code `python -m cagul audit --attack pgd` runs), timed;
with two or more adapters, the answer-recovery photos found against each are asked of the
others (transfer); and the MinK++ AUC of forget pairs against generated held-out people
(before: the base model; after: the adapter; `--retrain` adds the bundle's Retrain model).
Prints a table, writes JSON (with the load average, since the machine may be shared)::

    python -m benchmarks.worst_case [--adapter DIR ...] [--eps 2/255,4/255,8/255] [--steps 10]
        [--threads 2] [--out benchmarks/results/worst_case.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from cagul.attacks.membership import holdout_people, membership_auc
from cagul.attacks.pgd import parse_eps
from cagul.attacks.worst_case import (
    AttackSettings,
    answer_recovery,
    ask,
    clean_pass,
    gate_evasion,
    has_gate,
)
from cagul.cli import load_model
from cagul.data import load_dataset, make_split
from cagul.models import load_vlm
from cagul.paths import DEMO_DIR, default_data_dir, default_model_dir


def _items(split) -> list[dict]:
    return [
        {
            "image": s.image_path,
            "question": s.question,
            "keywords": list(s.keywords),
            "target": s.answer,
        }
        for s in split.forget_set
    ]


def _strip(d: dict | None) -> dict | None:
    return None if d is None else {k: v for k, v in d.items() if k != "images"}


def run_adapter(vlm, model, items, budgets, settings, out: dict, save=None) -> dict:
    """Clean pass and per-budget attacks of one model into `out`; returns the adversarial
    photos. `save` is called after each budget (partial results survive an interruption)."""
    out.update({"clean": clean_pass(model, vlm, items), "budgets": []})
    print(f"{model.method}: clean leak {out['clean']['leak_rate']:.3f}", flush=True)
    photos = {}
    for budget in budgets:
        t = time.perf_counter()
        gate = gate_evasion(model, vlm, items, budget, settings) if has_gate(model) else None
        t_gate = time.perf_counter() - t
        rec = answer_recovery(model, vlm, items, budget, settings)
        photos[budget.label] = rec["images"]
        out["budgets"].append(
            {
                "eps": budget.label,
                "gate_evasion": _strip(gate),
                "answer_recovery": _strip(rec),
                "gate_seconds": t_gate,
                "seconds": time.perf_counter() - t,
            }
        )
        b = out["budgets"][-1]
        print(
            f"{model.method} {budget.label}: evaded {gate and gate['evaded']}, recovery leak "
            f"{rec['leak_rate']:.3f}, {b['seconds']:.0f} s",
            flush=True,
        )
        if save:
            save()
    out["attack_seconds"] = sum(b["seconds"] for b in out["budgets"])
    return photos


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:5.1f}%"


def print_table(results: dict) -> None:
    print(
        f"{'adapter':<28} {'eps':>7} {'evaded':>7} {'gate leak':>9} {'recovery leak':>13} "
        f"{'fabricated':>10} {'NLL before->after':>18} {'seconds':>8}"
    )
    for name, r in results["adapters"].items():
        if "attack_seconds" not in r:  # not attacked (--membership-only) or interrupted
            continue
        c = r["clean"]
        print(
            f"{name:<28} {'clean':>7} {'-':>7} {'-':>9} {_pct(c['leak_rate']):>13} "
            f"{_pct(c['outcomes']['other']):>10} {'':>18} {'':>8}"
        )
        for b in r["budgets"]:
            g, rec = b["gate_evasion"], b["answer_recovery"]
            nll = f"{rec['nll_before']:.2f}->{rec['nll_after']:.2f}"
            print(
                f"{'':<28} {b['eps']:>7} {_pct(g and g['evaded']):>7} "
                f"{_pct(g and g['leak_rate']):>9} {_pct(rec['leak_rate']):>13} "
                f"{_pct(rec['outcomes']['other']):>10} {nll:>18} {b['seconds']:8.1f}"
            )
        print(f"{'':<28} total attack time {r['attack_seconds']:.1f} s")
    for t in results.get("transfer", []):
        print(f"transfer {t['from']} -> {t['to']} at {t['eps']}: leak {_pct(t['leak_rate'])}")
    for name, m in results.get("membership", {}).items():
        print(f"membership AUC (MinK++) {name:<24} {m['auc']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", default=None)
    ap.add_argument("--adapter", action="append", help="artifact dir (repeat; default shipped)")
    ap.add_argument("--eps", default="2/255,4/255,8/255")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--transfer-to",
        action="append",
        default=[],
        help="artifact dir only asked the others' adversarial photos (black box)",
    )
    ap.add_argument(
        "--holdout",
        type=int,
        default=10,
        help="generated held-out people (0: no membership inference)",
    )
    ap.add_argument("--retrain", action="store_true", help="membership of the Retrain model")
    ap.add_argument("--membership-only", action="store_true", help="no attacks")
    ap.add_argument("--out", default="benchmarks/results/worst_case.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    budgets = parse_eps(args.eps)
    settings = AttackSettings(steps=args.steps, seed=args.seed)
    adapters = args.adapter or [str(DEMO_DIR / "adapters" / "forget10")]
    load_start = os.getloadavg()
    vlm = load_vlm(args.model or default_model_dir(), device="cpu")
    ds = load_dataset(args.data or default_data_dir())
    results = {
        "commit": _commit(),
        "eps": [b.label for b in budgets],
        "steps": args.steps,
        "seed": args.seed,
        "threads": args.threads,
        "adapters": {},
        "transfer": [],
        "membership": {},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        results["loadavg_start"], results["loadavg_end"] = load_start, os.getloadavg()
        out.write_text(json.dumps(results, indent=2) + "\n")

    photos, items_of, models = {}, {}, {}
    for d in adapters:
        model = load_model(vlm, [d])
        cfg = model.config
        split = make_split(ds, list(cfg["forget_ids"]), setting=cfg["setting"])
        name = f"{model.method}:{Path(d).name}"
        items_of[name], models[name] = _items(split), model
        results["adapters"][name] = {}
        if args.membership_only:
            continue
        photos[name] = run_adapter(
            vlm, model, items_of[name], budgets, settings, results["adapters"][name], save
        )
        save()
    for d in args.transfer_to:
        model = load_model(vlm, [d])
        name = f"{model.method}:{Path(d).name}"
        cfg = model.config
        split = make_split(ds, list(cfg["forget_ids"]), setting=cfg["setting"])
        items_of[name], models[name] = _items(split), model
    for a in photos:
        for b in models:
            if a == b or items_of[a] != items_of[b]:
                continue
            for budget in budgets:
                rows = ask(models[b], vlm, photos[a][budget.label], items_of[a])
                results["transfer"].append(
                    {
                        "from": a,
                        "to": b,
                        "eps": budget.label,
                        "leak_rate": sum(r["leaked"] for r in rows) / len(rows),
                    }
                )
    first = next(iter(items_of))
    split = make_split(
        ds, list(models[first].config["forget_ids"]), setting=models[first].config["setting"]
    )
    with tempfile.TemporaryDirectory() as tmp:
        if args.holdout < 1:
            save()
            print_table(results)
            return
        cats = sorted({s.category for s in split.forget_set})
        holdout = holdout_people(tmp, args.holdout, seed=1000 + args.seed, categories=cats)
        results["membership"]["base (finetune)"] = membership_auc(
            None, vlm, split.forget_set, holdout
        )
        for name, model in models.items():
            results["membership"][name] = membership_auc(model, vlm, split.forget_set, holdout)
        if args.retrain:
            retrain = load_vlm(Path(args.model or default_model_dir()).parent / "retrain")
            results["membership"]["retrain"] = membership_auc(
                None, retrain, split.forget_set, holdout
            )
    save()
    print_table(results)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
