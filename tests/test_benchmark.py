"""`python -m cagul benchmark` end to end on a tiny Qwen2.5-VL: every table's rows with numbers,
the CAGUL / PO+GD ratios from the same run, CSVs and figures, resuming without re-running, and
one run in its own process."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from cagul.benchmark import Settings, run_benchmark
from cagul.benchmark.plan import MAIN, Run, plan, unique_runs
from cagul.data import generate_dataset
from cagul.demo.tiny import build_tiny_vlm

LORA = {"epochs": 1, "batch_size": 4, "probe_size": 4, "check_every": 1, "early_stop": False}
TINY = Settings(
    seeds=(0, 1),
    ks=(1, 2),
    forget_splits=("forget1", "forget20"),
    cagul_epochs=1,
    cagul_disc_epochs=1,
    sweep_epochs=1,
    max_retain=4,
    method_overrides={
        "cagul": {
            "views": 1,
            "batch_size": 8,
            "disc_batch_size": 8,
            "encoder_views": 0,
            "max_negatives": 4,
        },
        "retrain": {"use_shipped": False, "epochs": 1, "batch_size": 16, "replay": 0},
        "viker": {**LORA, "n_images": 2},
        **{m: LORA for m in ("ga", "ga_gd", "ga_kl", "po_gd", "npo")},
    },
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A bundle-shaped folder: models/{finetune,pretrain} and a dataset with named splits."""
    root = tmp_path_factory.mktemp("bench_bundle")
    build_tiny_vlm("qwen2_5_vl", root / "models" / "finetune", layers=2, seed=0)
    build_tiny_vlm("qwen2_5_vl", root / "models" / "pretrain", layers=2, seed=1)
    generate_dataset(root / "data", n_individuals=8, seed=1, n_train_scenes=4, n_test_scenes=4)
    return root


@pytest.fixture(scope="module")
def results(bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_out")
    summary = run_benchmark(
        out,
        TINY,
        model_dir=bundle / "models" / "finetune",
        data_dir=bundle / "data",
        isolate=False,
        png=False,
    )
    return out, summary


def test_plan_shares_equal_runs_between_tables():
    tables = plan(TINY, default_k=2)
    assert [r.label for r in tables["main"]] == [
        "Pretrain",
        "Finetune",
        "Retrain",
        "GA",
        "GA+GD",
        "GA+KL",
        "PO+GD",
        "PO+GD",
        "NPO",
        "ViKeR",
        "CAGUL",
    ]
    # The ablation's reference (seed 0, same schedule) is the main CAGUL row; k=2 is default k.
    runs = unique_runs(tables)
    assert len(runs) == 11 + 1 + 5 + 1 + 2
    assert tables["ablation"][0].key == tables["main"][10].key == tables["sweep_k"][1].key
    assert [r.seed for r in tables["ablation"][:2]] == [0, 1]


def test_every_table_has_its_rows_with_numbers(results):
    out, summary = results
    main = json.loads((out / "main.json").read_text())
    assert [r["method"] for r in main["main"]] == [label for label, _ in MAIN]
    for row in main["main"]:
        for key in (
            "forget_em",
            "forget_rouge_l",
            "forget_ape",
            "nonprivate_em",
            "retain_em",
            "retain_truth_ratio",
            "pope_acc",
            "mme_acc",
            "model_utility",
        ):
            assert 0.0 <= row[key] <= 1.0, (row["method"], key, row[key])
        assert row["forget_quality"] is not None  # every main row shares Retrain's split
    by = {r["method"]: r for r in main["main"]}
    assert by["Retrain"]["forget_quality"] == pytest.approx(1.0)
    assert by["Pretrain"]["trainable_params"] == 0 and by["Pretrain"]["train_seconds"] is None
    assert by["PO+GD"]["seeds"] == 2 and "forget_em_std" in by["PO+GD"]  # mean and spread
    for name in ("CAGUL", "PO+GD"):
        assert by[name]["train_seconds"] > 0 and by[name]["peak_memory_mb"] > 0
    eff = main["efficiency"]
    ratio = by["CAGUL"]["train_seconds"] / by["PO+GD"]["train_seconds"]
    assert eff["cagul_po_gd_train_seconds_ratio"] == pytest.approx(ratio)
    assert summary["cagul_po_gd_train_seconds_ratio"] == pytest.approx(ratio)
    ablation = json.loads((out / "ablation.json").read_text())["ablation"]
    assert ablation[0]["method"] == "CAGUL" and ablation[0]["seeds"] == 2
    assert [r["method"] for r in ablation][1:] == [
        "w/o discriminator",
        "w/o encoder (uniform noise)",
        "random selection",
        "with GA+GD",
        "with GA+KL",
    ]
    assert ablation[1]["run"]["options"] == {"use_discriminator": False}
    sweeps = json.loads((out / "sweeps.json").read_text())
    assert [r["run"]["k"] for r in sweeps["k"]] == [1, 2]
    people = [r["forget_people"] for r in sweeps["forget"]]
    assert people[0] < people[1]
    assert all(r["forget_em"] is not None for r in sweeps["k"] + sweeps["forget"])


def test_csvs_tables_and_figures_are_written(results):
    out, summary = results
    with (out / "main.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == [label for label, _ in MAIN]
    assert float(rows[-1]["forget_em"]) == pytest.approx(
        json.loads((out / "main.json").read_text())["main"][-1]["forget_em"]
    )
    for name in ("ablation.csv", "sweeps.csv", "tables.md", "plotly.min.js"):
        assert (out / name).stat().st_size > 0
    for name in ("main", "ablation", "sweeps"):
        assert "Plotly.newPlot" in (out / f"{name}.html").read_text()
    assert "| CAGUL |" in (out / "tables.md").read_text()


def test_a_second_start_resumes_without_rerunning(bundle, results, tmp_path):
    out, _ = results
    copy = tmp_path / "again"
    shutil.copytree(out, copy)
    lines = (copy / "rows.jsonl").read_text().splitlines()
    # Drop the last run: only it is trained again.
    (copy / "rows.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    run_benchmark(
        copy,
        TINY,
        model_dir=bundle / "models" / "finetune",
        data_dir=bundle / "data",
        isolate=False,
        png=False,
    )
    again = (copy / "rows.jsonl").read_text().splitlines()
    assert len(again) == len(lines)
    assert json.loads(again[-1])["key"] == json.loads(lines[-1])["key"]


def test_a_run_in_its_own_process_reports_its_row(bundle):
    from cagul.benchmark import run_in_child

    run = Run("Finetune", None, split="forget1")
    spec = {
        "model_dir": str(bundle / "models" / "finetune"),
        "data_dir": str(bundle / "data"),
        "max_retain": 4,
        "overrides": {},
        "threads": 1,
    }
    row = run_in_child(run, spec)
    assert row["key"] == run.key and 0.0 <= row["forget_em"] <= 1.0
    assert row["load_memory_mb"] > 0


def test_the_reports_tab_shows_the_benchmark_tables(results, tmp_path):
    from webui.reports import benchmark_tables

    out, _ = results
    shown = benchmark_tables(out)
    assert list(shown["tables"]) == [
        "Main",
        "Efficiency",
        "Ablation",
        "k sweep",
        "Forget-size sweep",
    ]
    main = shown["tables"]["Main"]
    assert list(main["method"]) == [label for label, _ in MAIN]
    assert "±" in main.set_index("method").loc["PO+GD", "forget EM ↓"]  # two seeds: a spread
    assert [t.name for t in shown["figure"].data][0].startswith("forget EM")
    assert benchmark_tables(tmp_path) is None  # no run left results there
