"""Issue 24, CLI side: every bad input fails before any work, exit 2, one line, nothing written.

"Before any work" is checked by recorders: `cagul.models.load_vlm` (answer, audit, evaluate,
info) and `cagul.pipeline.run_unlearning` (unlearn) are replaced by functions that note the
call, so a test knows the model was never loaded and no training step ran. A few cases go
through the real `python -m cagul` process to pin the exit code and the absence of a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cagul.cli import main
from cagul.paths import REPO
from tests.test_bad_input_data import png_declaring

DATA = REPO / "assets" / "demo" / "data"
IMAGE = DATA / "images" / "00000001.png"


class Recorder:
    """Stands in for an expensive function; a test asserts it was never reached."""

    def __init__(self):
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        raise AssertionError("work started although the input was bad")


@pytest.fixture
def work(monkeypatch):
    """Recorders for model loading and training (both must stay unused)."""
    import cagul.models
    import cagul.pipeline

    rec = {"load_vlm": Recorder(), "run_unlearning": Recorder()}
    monkeypatch.setattr(cagul.models, "load_vlm", rec["load_vlm"])
    monkeypatch.setattr(cagul.pipeline, "run_unlearning", rec["run_unlearning"])
    return rec


def _run(argv) -> int:
    """`main(argv)`'s exit code, also when argparse itself refuses the value."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def _fails(argv, capsys, message, work, tmp_path):
    """Run the command: exit 2, one stderr line holding `message`, no work, nothing new."""
    before = sorted(tmp_path.rglob("*"))
    rc = _run(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and message in err, err
    assert "Traceback" not in err
    assert all(not r.calls for r in work.values()), "work started"
    assert sorted(tmp_path.rglob("*")) == before, "something was written"
    return err


def _unlearn(tmp_path, *extra):
    return [
        "unlearn",
        "--data",
        str(DATA),
        "--forget",
        "00000001",
        "--out",
        str(tmp_path / "adapter"),
        *extra,
    ]


# ---- item 1: empty choices are refused, never read as "the default" -------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--k", "0"], "argument --k: must be at least 1, got 0"),
        (["--k", "-3"], "must be at least 1, got -3"),
        (["--k", "eight"], "'eight' is not an integer"),
        (["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        (["--epochs", "-1"], "must be at least 1, got -1"),
        (["--disc-epochs", "-1"], "argument --disc-epochs: must be at least 0"),
        (["--lr", "0"], "argument --lr: must be a finite number > 0.0"),
        (["--lr", "nan"], "must be a finite number"),
        (["--forget-weight", "-1"], "argument --forget-weight"),
        (["--max-retain", "0"], "argument --max-retain"),
    ],
)
def test_unlearn_refuses_bad_numbers(tmp_path, capsys, work, extra, message):
    _fails(_unlearn(tmp_path, *extra), capsys, message, work, tmp_path)


@pytest.mark.parametrize(
    ("forget", "message"),
    [("", "--forget is empty"), (" , ,", "--forget is empty"), ("nobody", "unknown individual")],
)
def test_unlearn_refuses_an_empty_or_unknown_forget_list(tmp_path, capsys, work, forget, message):
    argv = ["unlearn", "--data", str(DATA), "--forget", forget, "--out", str(tmp_path / "a")]
    _fails(argv, capsys, message, work, tmp_path)


# ---- item 3: --out is checked before the work ---------------------------------------------


def test_unlearn_out_that_is_a_file_is_refused(tmp_path, capsys, work):
    (tmp_path / "adapter").write_text("not a directory")
    _fails(_unlearn(tmp_path), capsys, "is a file, not a directory", work, tmp_path)
    assert (tmp_path / "adapter").read_text() == "not a directory"


def test_unlearn_out_under_a_file_is_refused(tmp_path, capsys, work):
    (tmp_path / "f").write_text("x")
    argv = [
        "unlearn",
        "--data",
        str(DATA),
        "--forget",
        "00000001",
        "--out",
        str(tmp_path / "f" / "adapter"),
    ]
    _fails(argv, capsys, "is a file, not a directory", work, tmp_path)


def _old_adapter(tmp_path) -> Path:
    out = tmp_path / "adapter"
    out.mkdir()
    (out / "adapter_config.json").write_text("{}")
    (out / "adapter_model.safetensors").write_bytes(b"old")
    return out


def test_unlearn_out_holding_an_adapter_needs_overwrite(tmp_path, capsys, work):
    _old_adapter(tmp_path)
    err = _fails(_unlearn(tmp_path), capsys, "already holds another adapter", work, tmp_path)
    assert "--overwrite" in err


def test_unlearn_out_holding_other_files_needs_overwrite(tmp_path, capsys, work):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "notes.txt").write_text("mine")
    _fails(_unlearn(tmp_path), capsys, "already holds 1 files", work, tmp_path)


def test_overwrite_never_deletes_folders(tmp_path, capsys, work):
    out = _old_adapter(tmp_path)
    (out / "sub").mkdir()
    _fails(_unlearn(tmp_path, "--overwrite"), capsys, "holds folders (sub)", work, tmp_path)


def test_report_inside_the_adapter_dir_is_refused(tmp_path, capsys, work):
    out = tmp_path / "adapter"
    out.mkdir()
    argv = _unlearn(tmp_path, "--report", str(out / "r.json"))
    _fails(argv, capsys, "--report must lie beside --out", work, tmp_path)


def test_overwrite_clears_the_old_adapter_then_trains(tmp_path, capsys, monkeypatch):
    """With --overwrite the stale files go (cleanly, before training) and training runs."""
    import cagul.pipeline

    out = _old_adapter(tmp_path)
    (out / "stray.txt").write_text("left over")
    seen = {}

    def fake_run(**kw):
        seen["listing"] = sorted(p.name for p in Path(kw["out_dir"]).iterdir())
        seen["k"] = kw["config"].k
        Path(kw["out_dir"], "adapter_config.json").write_text("{}")
        return {"report": {}, "base_fingerprint": "x"}

    monkeypatch.setattr(cagul.pipeline, "run_unlearning", fake_run)
    assert main(_unlearn(tmp_path, "--overwrite", "--k", "3")) == 0
    assert seen == {"listing": [], "k": 3}
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json"]
    capsys.readouterr()


@pytest.mark.parametrize("command", ["answer", "evaluate", "audit", "info"])
@pytest.mark.parametrize("where", ["directory", "missing parent"])
def test_out_file_is_checked_before_the_work(tmp_path, capsys, work, command, where):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"image": "00000001", "question": "Who?", "keywords": ["x"]}\n')
    out = tmp_path if where == "directory" else tmp_path / "nope" / "out.json"
    argv = {
        "answer": ["answer", "--image", str(IMAGE), "--question", "Who?"],
        "evaluate": ["evaluate", "--data", str(DATA)],
        "audit": ["audit", "--data", str(DATA), "--prompts", str(prompts)],
        "info": ["info"],
    }[command] + ["--out", str(out)]
    message = "is a directory" if where == "directory" else "does not exist"
    _fails(argv, capsys, message, work, tmp_path)


def test_evaluate_csv_and_retrain_report_are_checked_first(tmp_path, capsys, work):
    argv = ["evaluate", "--data", str(DATA), "--csv", str(tmp_path)]
    _fails(argv, capsys, "--csv", work, tmp_path)
    (tmp_path / "r.json").write_text('{"values": {}}')
    argv = ["evaluate", "--data", str(DATA), "--retrain-report", str(tmp_path / "r.json")]
    _fails(argv, capsys, "not a readable report", work, tmp_path)


# ---- item 2: images and questions, before the model loads -----------------------------------


def _bomb(tmp_path) -> Path:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(100_000, 100_000))
    return path


@pytest.mark.parametrize(
    ("image", "question", "message"),
    [
        ("bomb", "Who?", "declares too many pixels"),
        ("text", "Who?", "not a readable image"),
        ("missing", "Who?", "no such image file"),
        ("good", "   ", "the question is empty"),
        ("good", "x" * 501, "at most 500 allowed"),
    ],
)
def test_answer_refuses_bad_images_and_questions(tmp_path, capsys, work, image, question, message):
    paths = {"bomb": _bomb(tmp_path), "good": IMAGE, "missing": tmp_path / "none.png"}
    (tmp_path / "text.png").write_text("hello")
    paths["text"] = tmp_path / "text.png"
    argv = ["answer", "--image", str(paths[image]), "--question", question]
    _fails(argv, capsys, message, work, tmp_path)


@pytest.mark.slow
def test_a_real_20000_square_png_is_refused(tmp_path, capsys, work):
    path = tmp_path / "huge.png"
    Image.new("L", (20_000, 20_000)).save(path, optimize=False)
    argv = ["answer", "--image", str(path), "--question", "Who?"]
    _fails(argv, capsys, "pixels", work, tmp_path)


# ---- items 8 and 10: audit prompts -----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"image": "00000001", "question": "Who?", "keywords": [3]}', "every keyword must be"),
        ('{"image": "00000001", "question": "Who?", "keywords": [""]}', "every keyword must be"),
        ('{"image": ["a.png"], "question": "Who?", "keywords": ["x"]}', "got list"),
        ('{"image": "00000001", "question": 12, "keywords": ["x"]}', "must be text, got int"),
        ('{"image": "00000001", "question": "Who?", "keywords": "x"}', "non-empty list"),
        ('{"image": "bomb.png", "question": "Who?", "keywords": ["x"]}', "too many pixels"),
        ('{"image": "../outside.png", "question": "Who?", "keywords": ["x"]}', "outside"),
        ('{"image": "nobody", "question": "Who?", "keywords": ["x"]}', "neither a file"),
        ("[1, 2]", "needs image, question and keywords"),
    ],
)
def test_audit_refuses_bad_prompts_before_the_model(tmp_path, capsys, work, line, message):
    root = tmp_path / "audit"
    root.mkdir()
    (root / "bomb.png").write_bytes(png_declaring(100_000, 100_000))
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.png")
    prompts = root / "p.jsonl"
    prompts.write_text(line + "\n")
    argv = ["audit", "--data", str(DATA), "--prompts", str(prompts)]
    _fails(argv, capsys, message, work, tmp_path)


def test_audit_names_a_non_utf8_prompts_file(tmp_path, capsys, work):
    prompts = tmp_path / "latin1.jsonl"
    prompts.write_bytes('{"image": "00000001", "question": "Qui êtes-vous?"}'.encode("latin-1"))
    err = _fails(
        ["audit", "--data", str(DATA), "--prompts", str(prompts)],
        capsys,
        "is not UTF-8 text",
        work,
        tmp_path,
    )
    assert "latin1.jsonl" in err


# ---- through the real process ---------------------------------------------------------------


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cagul", *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_real_command_exits_2_with_one_line(tmp_path):
    out = tmp_path / "adapter"
    for argv, message in (
        (["unlearn", "--forget", "", "--out", str(out)], "--forget is empty"),
        (["unlearn", "--k", "0", "--out", str(out)], "--k: must be at least 1"),
        (["answer", "--image", str(_bomb(tmp_path)), "--question", "Who?"], "too many pixels"),
    ):
        proc = _cli(*argv)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stdout == ""
    assert not out.exists()


def test_prompts_json_rows_are_returned_clean(tmp_path):
    """A good prompt passes the same checks (the question comes back stripped)."""
    from cagul.inference import check_prompt_images, read_prompts

    prompts = tmp_path / "p.jsonl"
    Image.new("RGB", (8, 8)).save(tmp_path / "face.png")
    prompts.write_text(json.dumps({"image": "face.png", "question": " Who? ", "keywords": ["x"]}))
    (row,) = read_prompts(prompts)
    assert row["question"] == "Who?"
    assert check_prompt_images([row], {}, tmp_path) == [str((tmp_path / "face.png").resolve())]


@pytest.mark.parametrize(
    "argv",
    [
        ["unlearn", "--data", "", "--out", "OUT"],
        ["unlearn", "--model", "", "--out", "OUT"],
        ["unlearn", "--split", "  ", "--out", "OUT"],
        ["evaluate", "--split", ""],
        ["evaluate", "--data", ""],
        ["answer", "--image", "", "--question", "Who?"],
        ["audit", "--prompts", ""],
        ["info", "--model", ""],
    ],
)
def test_blank_values_are_refused_not_read_as_the_default(tmp_path, capsys, work, argv):
    argv = [str(tmp_path / "adapter") if a == "OUT" else a for a in argv]
    _fails(argv, capsys, "must not be empty", work, tmp_path)


def test_overwrite_never_replaces_a_model_or_the_inputs(tmp_path, capsys, work):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    argv = ["unlearn", "--data", str(DATA), "--forget", "00000001", "--overwrite"]
    _fails([*argv, "--out", str(model)], capsys, "holds a model (config.json)", work, tmp_path)
    old = _old_adapter(tmp_path)
    argv = ["consolidate", "--data", str(DATA), "--adapter", str(old), "--overwrite"]
    _fails([*argv, "--out", str(old)], capsys, "also an input of this command", work, tmp_path)
    assert (old / "adapter_model.safetensors").read_bytes() == b"old"
