"""`python -m cagul evaluate` on a tiny model and a small generated dataset."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cagul.data import generate_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("evdata")
    generate_dataset(out, n_individuals=5, seed=0, n_train_scenes=4, n_test_scenes=4)
    return out


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "cagul", "evaluate", *args], capture_output=True, text=True
    )


def test_evaluate_writes_every_report_key(tiny_dirs, data_dir, tmp_path):
    out = tmp_path / "report.json"
    proc = _run(
        "--model",
        tiny_dirs["qwen2_5_vl"],
        "--data",
        str(data_dir),
        "--split",
        "forget20",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert "evaluate" in proc.stderr  # the progress bar goes to stderr
    report = json.loads(out.read_text())
    assert set(report["forget"]) >= {"rouge_l", "em", "ape", "mink", "mink_pp", "truth_ratio"}
    assert set(report["nonprivate"]) >= {"rouge_l", "em"}
    assert set(report["retain"]) >= {"rouge_l", "em", "truth_ratio"}
    assert set(report["general"]) >= {"pope_acc", "mme_acc"}
    assert set(report["efficiency"]) >= {"trainable_params", "epoch_seconds", "peak_memory_mb"}
    assert report["meta"]["forget"] == 7 and report["meta"]["forget_individuals"] == 1
    for block in ("forget", "nonprivate", "retain"):
        for key in ("rouge_l", "em"):
            assert 0.0 <= report[block][key] <= 1.0
    assert len(report["values"]["forget_truth_ratio_x"]) == 7
    rows = (tmp_path / "report.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[0].startswith("model,adapter,split")


def test_identity_setting_reports_no_nonprivate_set(tiny_dirs, data_dir, tmp_path):
    out = tmp_path / "r.json"
    proc = _run(
        "--model",
        tiny_dirs["llava"],
        "--data",
        str(data_dir),
        "--split",
        "forget20",
        "--setting",
        "identity",
        "--out",
        str(out),
        "--max-retain",
        "10",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["nonprivate"] is None
    assert report["meta"]["forget"] == 20 and report["meta"]["retain_evaluated"] == 10


def test_forget_quality_against_a_retrain_report(tiny_dirs, data_dir, tmp_path):
    first = tmp_path / "a.json"
    assert (
        _run(
            "--model",
            tiny_dirs["qwen2_5_vl"],
            "--data",
            str(data_dir),
            "--split",
            "forget20",
            "--out",
            str(first),
            "--max-retain",
            "5",
        ).returncode
        == 0
    )
    second = tmp_path / "b.json"
    proc = _run(
        "--model",
        tiny_dirs["qwen2_5_vl"],
        "--data",
        str(data_dir),
        "--split",
        "forget20",
        "--out",
        str(second),
        "--max-retain",
        "5",
        "--retrain-report",
        str(first),
    )
    assert proc.returncode == 0, proc.stderr
    # The same model against itself: identical samples, KS p-value 1.
    assert json.loads(second.read_text())["forget"]["forget_quality"] == pytest.approx(1.0)


def test_missing_split_fails_clearly(tiny_dirs, data_dir):
    proc = _run("--model", tiny_dirs["qwen2_5_vl"], "--data", str(data_dir), "--split", "nope")
    assert proc.returncode == 2 and "nope" in proc.stderr and "forget10" in proc.stderr


def test_missing_data_dir_fails_clearly(tiny_dirs, tmp_path):
    proc = _run("--model", tiny_dirs["qwen2_5_vl"], "--data", str(tmp_path / "none"))
    assert proc.returncode == 2 and "error:" in proc.stderr
