"""`python -m cagul benchmark`: the paper's tables and sweeps, measured on one dataset in one run.

The runs (`plan`) are trained and evaluated one by one (`worker`: each in a fresh process by
default, so its peak memory is its own), every finished run appended to `rows.jsonl` in the
output folder so an interrupted benchmark resumes where it stopped when started again with the
same folder and settings; then the tables (`tables`) and figures (`plots`) are written:
`main.json` (the main table with the efficiency columns, and CAGUL / PO+GD cost ratios),
`ablation.json`, `sweeps.json` (k and forget size), a CSV beside each, `tables.md`, and the
figures as HTML (+ PNG where Chromium is installed).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

from cagul.benchmark import plots, tables
from cagul.benchmark.plan import QUICK, Run, Settings, plan, unique_runs
from cagul.benchmark.worker import git_commit

__all__ = ["QUICK", "Settings", "run_benchmark"]


def _default_k(model_dir: Path, data_dir: Path, split: str) -> int:
    from cagul.data import load_dataset, make_split
    from cagul.methods.cagul.config import default_k
    from cagul.models import load_vlm

    vlm = load_vlm(model_dir)
    sample = make_split(load_dataset(data_dir), split).forget_set[0]
    return default_k(vlm.prepare([sample.image_path], ["?"]).layouts[0].n_tokens)


def _read_rows(path: Path) -> dict[str, dict]:
    rows = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["key"]] = row
    return rows


def run_in_child(run: Run, spec: dict) -> dict:
    """`run` in a fresh `python -m cagul.benchmark.worker`; its bars go to our stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "cagul.benchmark.worker"],
        input=json.dumps({**spec, "run": run.as_dict()}),
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"benchmark run {run.label!r} ({run.key}) failed: exit "
            f"{proc.returncode} (its error is above)"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_benchmark(
    out: str | Path,
    settings: Settings,
    *,
    model_dir: str | Path,
    data_dir: str | Path,
    jobs: int = 1,
    isolate: bool = True,
    threads: int | None = None,
    device: str = "cpu",
    png: bool = True,
    command: str = "",
) -> dict:
    """Run every run of `settings` not yet in `out/rows.jsonl`, then write the tables."""
    out, model_dir, data_dir = Path(out), Path(model_dir), Path(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    planned = plan(settings, _default_k(model_dir, data_dir, settings.split))
    rows_path = out / "rows.jsonl"
    rows = _read_rows(rows_path)
    todo = [r for r in unique_runs(planned) if r.key not in rows]
    # The longest runs (CAGUL on its full schedule) first, so parallel jobs end together.
    todo.sort(key=lambda r: not (r.method == "cagul" and r.epochs is None))
    spec = {
        "model_dir": str(model_dir),
        "data_dir": str(data_dir),
        "device": device,
        "max_retain": settings.max_retain,
        "overrides": settings.method_overrides,
        "threads": threads,
    }

    def one(run: Run) -> dict:
        if isolate:
            return run_in_child(run, spec)
        from cagul.benchmark.worker import execute

        return execute(
            run,
            model_dir=model_dir,
            data_dir=data_dir,
            max_retain=settings.max_retain,
            overrides=settings.method_overrides,
            device=device,
        )

    print(f"benchmark: {len(todo)} runs to do, {len(rows)} done before", file=sys.stderr)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool, rows_path.open("a") as log:
        futures = [pool.submit(one, run) for run in todo]
        for i, future in enumerate(as_completed(futures), start=1):
            row = future.result()
            rows[row["key"]] = row
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(
                f"[{i}/{len(todo)}] {row['label']} ({row['run']['split']}, seed "
                f"{row['run']['seed']}): forget EM {row['forget_em']}, non-private EM "
                f"{row['nonprivate_em']}, {row['wall_seconds']} s",
                file=sys.stderr,
            )
    return write_results(
        out,
        planned,
        rows,
        settings,
        meta={
            "command": command,
            "commit": git_commit(),
            "run_commits": sorted({str(r.get("commit")) for r in rows.values()}),
            "seconds": round(time.time() - t0, 1),
            "jobs": jobs,
            "threads": threads,
            "isolated": isolate,
            "device": device,
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
            "png": png,
            "model": str(model_dir),
            "data": str(data_dir),
        },
    )


def write_results(out: Path, planned, rows: dict, settings: Settings, meta: dict) -> dict:
    """main.json, ablation.json, sweeps.json, their CSVs, tables.md and the figures."""
    built = tables.build(planned, rows)
    meta = {**meta, "settings": asdict(settings)}
    docs = {
        "main": {"main": built["main"], "efficiency": tables.efficiency(built["main"])},
        "ablation": {"ablation": built["ablation"]},
        "sweeps": {"k": built["sweep_k"], "forget": built["sweep_forget"]},
    }
    for name, doc in docs.items():
        (out / f"{name}.json").write_text(json.dumps({**doc, "meta": meta}, indent=2) + "\n")
    tables.write_csv(built["main"], out / "main.csv")
    tables.write_csv(built["ablation"], out / "ablation.csv")
    tables.write_csv(built["sweep_k"] + built["sweep_forget"], out / "sweeps.csv")
    figs = plots.write_figures(built, out, png=meta.get("png", True))
    (out / "tables.md").write_text(_markdown(built, docs["main"]["efficiency"]) + "\n")
    return {"out": str(out), "runs": len(rows), "figures": figs, **docs["main"]["efficiency"]}


def _markdown(built: dict, eff: dict) -> str:
    ratio = eff.get("cagul_po_gd_train_seconds_ratio")
    parts = [
        "## Main",
        tables.markdown(built["main"], tables.MAIN_COLUMNS),
        "## Efficiency",
        tables.markdown(built["main"], tables.EFFICIENCY_COLUMNS),
        f"CAGUL / PO+GD training time: {ratio:.2f}x" if ratio else "",
        "## Ablation",
        tables.markdown(built["ablation"], tables.SWEEP_COLUMNS),
        "## k sweep",
        tables.markdown(built["sweep_k"], tables.SWEEP_COLUMNS),
        "## Forget-size sweep",
        tables.markdown(built["sweep_forget"], tables.SWEEP_COLUMNS),
    ]
    return "\n\n".join(p for p in parts if p)
