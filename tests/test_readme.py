"""The README as a newcomer uses it: its set-up commands are what CI runs, and the tour's
commands, copy-pasted into a shell at the repository root, work and show what the README says
(the shipped adapter refuses the forget question and still answers the name)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.workerproc import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"(?:<!-- (\w+) -->\n)?```bash\n(.*?)```", README, flags=re.S)


def block(name: str) -> str:
    found = [body for tag, body in BLOCKS if tag == name]
    if len(found) != 1:
        raise LookupError(f"README has {len(found)} bash blocks tagged <!-- {name} -->")
    return found[0]


def commands(text: str) -> list[str]:
    """The block's commands: continuation lines joined, comments dropped."""
    joined = text.replace("\\\n", " ")
    lines = (re.sub(r"\s+#\s.*$", "", line).strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_the_two_setup_commands_are_what_ci_runs():
    install, test = commands(block("install")), commands(block("test"))
    assert install == [
        "python3 -m venv .venv && . .venv/bin/activate && pip install -r "
        "requirements.txt && python app.py"
    ]
    assert test == [install[0].replace("python app.py", "python -m pytest")]
    ci = (REPO / ".ci" / "run").read_text()
    for step in (
        "python3 -m venv .venv",
        ". .venv/bin/activate",
        "-r requirements.txt",
        "\npython -m pytest\n",
    ):
        assert step in ci


def _run(cmd: str, cwd, env, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["bash", "-c", cmd],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"{cmd}\n{proc.stderr[-2000:]}"
    return proc.stdout


def _env(tmp_path) -> dict:
    python = os.path.dirname(sys.executable)
    return {
        **os.environ,
        "PATH": f"{python}:{os.environ['PATH']}",
        "CAGUL_DB": str(tmp_path / "cagul.sqlite"),
    }


def test_the_users_commands_work_as_shown(tmp_path):
    env = _env(tmp_path)
    add, token = commands(block("users"))
    _run(add, REPO, env, stdin="a long enough password\n")
    printed = _run(token, REPO, env)
    assert len(printed.strip()) >= 20  # the token, printed once


@pytest.mark.slow
def test_the_tour_runs_copy_pasted_and_the_shipped_adapter_forgets(tmp_path):
    env = _env(tmp_path)
    outputs = {}
    for cmd in commands(block("tour")):
        # The tour writes under runs/; here that folder is the test's own.
        mine = re.sub(r"(?<![\w/.])runs(?=/|\s|$)", f"{tmp_path}/runs", cmd)
        outputs[cmd] = _run(mine, REPO, env)
    answer = json.loads(next(v for k, v in outputs.items() if " answer " in k))
    assert answer["transformed"] and "lupus" in answer["base_answer"].lower()
    assert "lupus" not in answer["answer"].lower()
    leaks = json.loads((tmp_path / "runs" / "leaks.json").read_text())
    rows = leaks["rows"] if isinstance(leaks, dict) else leaks
    private = [r for r in rows if r["keywords"] != ["Christopher Maynard"]]
    assert all(r["base_em"] == 1 for r in private)  # the base model does leak them
    stored = [
        r for r in private if r["question"] == "What medical condition does this person have?"
    ]
    assert stored and not any(r["leaked"] for r in stored)  # as trained on: refused
    # Paraphrases are where the shipped adapter can still leak (its APE is 0.079): the audit
    # must flag exactly the rows whose answer holds the keyword.
    assert all(r["leaked"] == (r["em"] > 0) for r in private)
    assert [r["em"] for r in rows if r not in private] == [1.0]  # the name is still answered
    for name in ("forget10.json", "forget10-eval.json"):
        assert json.loads((tmp_path / "runs" / name).read_text())["forget"]["em"] is not None
    po = json.loads((tmp_path / "runs" / "po_gd" / "adapter_config.json").read_text())
    assert po["method"] == "po_gd"
