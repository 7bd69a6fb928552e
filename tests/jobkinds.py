"""Trivial job kinds and a fake CAGUL trainer, for the queue and runner tests.

Imported by the tests and by worker subprocesses (``python -m jobs.worker --import
tests.jobkinds``). With ``CAGUL_TEST_FAKE_UNLEARN=1`` (subprocesses only) it also replaces the
"unlearn" kind's trainer with :class:`FakeTrainer` configured from ``FAKE_*`` variables, so a
real worker process runs the real runner without torch.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from jobs import JobContext, PermanentJobError, add_kind, make_unlearn_handler, register


@register("test.record", replace=True)
def record(ctx: JobContext) -> dict[str, Any]:
    """Append one line per execution to <record_dir>/<job id>: the exactly-once evidence."""
    path = Path(ctx.payload["record_dir"]) / str(ctx.job_id)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()} {ctx.claim.worker_id} {ctx.attempt}\n")
    if ctx.payload.get("sleep_s"):
        time.sleep(float(ctx.payload["sleep_s"]))
    return {"pid": os.getpid()}


@register("test.steps", replace=True)
def steps(ctx: JobContext) -> dict[str, Any]:
    """``n`` steps of ``step_s`` seconds, checking for cancellation between steps; each step
    start is appended to ``log`` (if given) so tests can count steps after a cancel."""
    n, step_s = int(ctx.payload.get("n", 10)), float(ctx.payload.get("step_s", 0.05))
    log = ctx.payload.get("log")
    for i in range(n):
        ctx.check_cancel()
        if log:
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(f"{time.time()} {i}\n")
        time.sleep(step_s)
        ctx.progress((i + 1) / n, f"step {i + 1}/{n}")
    return {"steps": n}


@register("test.flaky", replace=True)
def flaky(ctx: JobContext) -> dict[str, Any]:
    if ctx.attempt <= int(ctx.payload.get("fail_times", 1)):
        raise RuntimeError(f"flaky failure on attempt {ctx.attempt}")
    return {"attempt": ctx.attempt}


@register("test.permanent", replace=True)
def permanent(ctx: JobContext) -> None:
    raise PermanentJobError("this job can never succeed")


def fake_report(
    forget_em: float = 0.0, ape: float = 0.02, nonprivate_em: float = 1.0
) -> dict[str, Any]:
    """A report that passes every bound of jobs.verdict unless told otherwise."""
    return {
        "forget": {
            "rouge_l": 0.1,
            "em": forget_em,
            "ape": ape,
            "mink": 0.2,
            "mink_pp": 0.2,
            "truth_ratio": 0.6,
        },
        "nonprivate": {"rouge_l": 0.98, "em": nonprivate_em},
        "retain": {"rouge_l": 0.85, "em": 0.95, "truth_ratio": 0.5},
        "general": {"pope_acc": 0.9, "mme_acc": 0.75},
        "base": {"forget_em": 1.0, "nonprivate_em": 1.0},
        "discriminator": {"accuracy": 0.99},
        "efficiency": {"trainable_params": 1234, "epoch_seconds": 0.1, "peak_memory_mb": 10},
        "meta": {"fake": True},
    }


@dataclass
class FakeTrainer:
    """Stands in for ``cagul.pipeline.run_unlearning``: writes the config first, then ``steps``
    slow steps (checking for cancellation), then the weights; logs each step start."""

    steps: int = 4
    step_s: float = 0.01
    forget_em: float = 0.0
    ape: float = 0.02
    nonprivate_em: float = 1.0
    fail: bool = False
    step_log: str | None = None

    @classmethod
    def from_env(cls) -> FakeTrainer:
        return cls(
            steps=int(os.environ.get("FAKE_STEPS", "4")),
            step_s=float(os.environ.get("FAKE_STEP_S", "0.01")),
            forget_em=float(os.environ.get("FAKE_FORGET_EM", "0.0")),
            fail=os.environ.get("FAKE_FAIL") == "1",
            step_log=os.environ.get("FAKE_STEP_LOG"),
        )

    def __call__(
        self,
        *,
        model_dir: str,
        data_dir: str,
        forget_ids: list[str],
        categories: list[str] | None,
        method: str,
        out_dir: str,
        progress,
        check_cancel,
    ) -> dict[str, Any]:
        out = Path(out_dir)
        (out / "adapter_config.json").write_text(
            json.dumps({"method": method, "forget_ids": forget_ids, "categories": categories}),
            encoding="utf-8",
        )
        for i in range(self.steps):
            check_cancel()
            if self.step_log:
                with open(self.step_log, "a", encoding="utf-8") as handle:
                    handle.write(f"{time.time()} {i}\n")
            time.sleep(self.step_s)
            progress((i + 1) / self.steps, f"step {i + 1}/{self.steps}")
        if self.fail:
            raise RuntimeError("fake training failed")
        rng = np.random.default_rng(len(forget_ids))
        save_file(
            {"encoder.weight": rng.standard_normal((8, 8)).astype(np.float32)},
            str(out / "adapter_model.safetensors"),
        )
        report = fake_report(self.forget_em, self.ape, self.nonprivate_em)
        return {"report": report, "base_fingerprint": "fake-base-1"}


if os.environ.get("CAGUL_TEST_FAKE_UNLEARN") == "1":
    add_kind("unlearn", make_unlearn_handler(trainer=FakeTrainer.from_env()), replace=True)
