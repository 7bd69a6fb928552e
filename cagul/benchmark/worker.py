"""One benchmark run: train one method (or take a base model as it is), then evaluate it.

`execute` is what a run does; `python -m cagul.benchmark.worker` does it in a fresh process
(the spec as JSON on stdin, the row as JSON on the last line of stdout), so each run's peak
memory is its own: on CPU the process's peak resident set up to the end of training (the model
loaded included, evaluation excluded), on CUDA `torch.cuda.max_memory_allocated` over training.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from cagul.benchmark.plan import Run
from cagul.progress import Bar

#: The report's values a row keeps, as (row key, report block, report key).
REPORT_FIELDS = (
    ("forget_rouge_l", "forget", "rouge_l"),
    ("forget_em", "forget", "em"),
    ("forget_ape", "forget", "ape"),
    ("forget_mink", "forget", "mink"),
    ("forget_truth_ratio", "forget", "truth_ratio"),
    ("nonprivate_rouge_l", "nonprivate", "rouge_l"),
    ("nonprivate_em", "nonprivate", "em"),
    ("retain_rouge_l", "retain", "rouge_l"),
    ("retain_em", "retain", "em"),
    ("retain_truth_ratio", "retain", "truth_ratio"),
    ("pope_acc", "general", "pope_acc"),
    ("mme_acc", "general", "mme_acc"),
    ("leak", "leak", "perturbed_image"),
    ("trainable_params", "efficiency", "trainable_params"),
    ("epoch_seconds", "efficiency", "epoch_seconds"),
)


def git_commit() -> str | None:
    """The commit of the code that runs (with "+dirty" when cagul/ has uncommitted edits)."""
    import subprocess

    here = Path(__file__).parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=here,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            cwd=here.parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def _peak_mb(device) -> float:
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def method_config(run: Run, overrides: dict):
    """The run's method config: the method's defaults, the run's seed, `overrides` (a dict of
    fields, nested ones included), then the run's k / epochs / switches, by field name
    (`cagul.methods.base.configure`: a method without such a field ignores it)."""
    from cagul.methods import get_method
    from cagul.methods.base import configure

    config = configure(get_method(run.method).config_class(), seed=run.seed, **overrides)
    spec = {"k": run.k, "epochs": run.epochs, "disc_epochs": run.disc_epochs}
    return configure(config, **spec, **dict(run.options))


def execute(run: Run, *, model_dir, data_dir, max_retain, overrides=None, device="cpu") -> dict:
    """Train and evaluate `run`; the row: its spec, the report's values, the truth ratios the
    forget quality needs, training seconds and peak memory."""
    import torch

    from cagul.data import (
        PRIVATE_CATEGORIES,
        load_dataset,
        load_probes,
        make_split,
        resolve_forget_ids,
    )
    from cagul.evaluate import evaluate, evaluate_unlearned
    from cagul.methods import get_method
    from cagul.models import load_vlm

    model_dir, data_dir = Path(model_dir), Path(data_dir)
    base_dir = model_dir if run.base == "finetune" else model_dir.parent / run.base
    if str(device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    vlm = load_vlm(base_dir, device=device)
    load_mb = _peak_mb(device)
    ds = load_dataset(data_dir)
    split = make_split(
        ds, resolve_forget_ids(ds, run.split)[1], "private", private_categories=PRIVATE_CATEGORIES
    )
    probes = load_probes(data_dir / "probes") if (data_dir / "probes").is_dir() else None
    t0, stats, peak = time.time(), {}, load_mb
    common = dict(max_retain=max_retain, progress=False)
    if run.method is None:
        report = evaluate(vlm, split, probes, **common)
    else:
        chosen = get_method(run.method)
        cfg = method_config(run, (overrides or {}).get(run.method, {}))
        with tempfile.TemporaryDirectory() as out:
            art = chosen.train(
                vlm,
                split,
                cfg,
                out_dir=out,
                data_dir=data_dir,
                progress=Bar(run.label, leave=False),
            )
            peak = _peak_mb(device)
            stats = art.stats
            unlearned = art.model or chosen.load(vlm, out)
            report = evaluate_unlearned(
                vlm, unlearned, split, probes, base=False, training=stats, **common
            )
    row = {"label": run.label, "key": run.key, "run": run.as_dict(), "commit": git_commit()}
    for key, block, name in REPORT_FIELDS:
        row[key] = (report.get(block) or {}).get(name)
    row.update(
        # A shipped Retrain model was trained when the bundle was built: that is its cost.
        train_seconds=stats.get("build_seconds", stats.get("seconds")) if run.method else None,
        train_source=stats.get("source", "trained" if run.method else None),
        peak_memory_mb=round(peak, 1) if run.method else None,
        load_memory_mb=round(load_mb, 1),
        wall_seconds=round(time.time() - t0, 2),
        forget_people=len(split.forget_ids),
        forget_pairs=len(split.forget_set),
        forget_truth_ratio_x=report["values"]["forget_truth_ratio_x"],
    )
    return row


def main() -> int:
    spec = json.loads(sys.stdin.read())
    if spec.get("threads"):
        import torch

        torch.set_num_threads(int(spec["threads"]))
    run = Run(**{**spec["run"], "options": tuple(sorted(spec["run"]["options"].items()))})
    row = execute(
        run,
        model_dir=spec["model_dir"],
        data_dir=spec["data_dir"],
        max_retain=spec["max_retain"],
        overrides=spec.get("overrides"),
        device=spec.get("device", "cpu"),
    )
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
