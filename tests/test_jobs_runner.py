"""The "unlearn" job runner with a fake trainer: verified / needs-review verdicts, atomic adapter
directories, retries, cancellation, and a worker process killed with SIGKILL mid-job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from safetensors.numpy import load_file
from sqlalchemy import func, select, update

import storage
from jobs import (
    UnlearnSettings,
    WorkerConfig,
    cancel_forget_request,
    make_unlearn_handler,
    request_verdict,
    submit_forget_request,
)
from jobs.reaper import any_stale
from jobs.verdict import bounds_with
from jobs.worker import Worker
from storage import Adapter, ForgetRequest, Job, MetricReport
from tests.jobkinds import FakeTrainer, fake_report
from tests.workerproc import REPO, finish, spawn_worker

pytest_plugins = ["tests.dbutil"]

KNOWN = {"p1", "p2"}
FAST = WorkerConfig(
    heartbeat_s=0.1, stale_after_s=1.0, poll_s=0.05, backoff_s=0.0, progress_every_s=0.0
)


def _submit(storage_db, **kw):
    args = dict(
        requester="Jane Doe", individual_ids=["p1"], categories=["health"], known_individuals=KNOWN
    )
    args.update(kw)
    with storage_db.transaction() as s:
        request, job = submit_forget_request(s, **args)
    return request.id, job.id


def _worker(storage_db, root: Path, trainer: FakeTrainer) -> Worker:
    settings = UnlearnSettings(artifacts_root=root, model_dir="base-model", data_dir="data")
    handler = make_unlearn_handler(trainer=trainer, settings=settings)
    return Worker(storage_db, FAST, gpu_mem_mb=0, handlers={"unlearn": handler})


def _request(storage_db, request_id) -> ForgetRequest:
    with storage_db.read() as s:
        return s.get(ForgetRequest, request_id)


def _adapters(storage_db) -> list[Adapter]:
    with storage_db.read() as s:
        return list(s.scalars(select(Adapter)).all())


def _actions(storage_db, target_type, target_id) -> list[str]:
    with storage_db.read() as s:
        return [e.action for e in storage.events_for(s, target_type, target_id)]


def _listing(root: Path) -> list[str]:
    folder = root / "adapters"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_unlearn_job_stores_a_verified_adapter(storage_db, tmp_path):
    request_id, job_id = _submit(storage_db)
    with _worker(storage_db, tmp_path, FakeTrainer()) as worker:
        outcome = worker.run_one()
    assert outcome.status == "succeeded", outcome.error
    request = _request(storage_db, request_id)
    assert request.status == "verified" and request.completed_at is not None
    (adapter,) = _adapters(storage_db)
    assert adapter.job_id == job_id and adapter.request_id == request_id
    folder = storage.verify_adapter(adapter, base_fingerprint="fake-base-1")
    assert _listing(tmp_path) == [folder.name] == [f"request-{request_id}-job-{job_id}"]
    assert "encoder.weight" in load_file(str(folder / storage.ADAPTER_WEIGHTS))
    assert adapter.config["forget_ids"] == ["p1"]
    with storage_db.read() as s:
        report = s.scalar(select(MetricReport))
        job = s.get(Job, job_id)
    assert (report.adapter_id, report.passed, report.forget_em) == (adapter.id, True, 0.0)
    assert report.report["retain"]["rouge_l"] == 0.85
    assert job.progress == 1.0 and job.result["adapter_id"] == adapter.id
    assert _actions(storage_db, "request", request_id) == [
        "request.created",
        "unlearn.started",
        "unlearn.evaluated",
        "request.verified",
    ]
    assert _actions(storage_db, "adapter", adapter.id) == ["adapter.stored"]
    assert _actions(storage_db, "job", job_id) == ["job.enqueued", "job.claimed", "job.succeeded"]


def test_leaky_adapter_needs_review(storage_db, tmp_path):
    request_id, _ = _submit(storage_db)
    with _worker(storage_db, tmp_path, FakeTrainer(forget_em=0.2)) as worker:
        assert worker.run_one().result["status"] == "needs_review"
    assert _request(storage_db, request_id).status == "needs_review"
    with storage_db.read() as s:
        assert s.scalar(select(MetricReport.passed)) is False
        (event,) = [
            e
            for e in storage.events_for(s, "request", request_id)
            if e.action == "request.needs_review"
        ]
    assert event.details["reasons"] == ["forget EM 0.200 > 0.05"]


def _failing(report, settings=None):
    judged = request_verdict(report, settings or UnlearnSettings())
    return judged.status, judged.failing


def test_verdict_checks_every_forget_and_keep_bound():
    assert _failing(fake_report(0.05, 0.10)) == ("verified", [])
    assert _failing(fake_report(0.0, 0.11))[0] == "needs_review"
    leaky_image = {**fake_report(), "leak": {"perturbed_image": 0.5}}
    assert _failing(leaky_image)[1] == ["perturbed-image leak 0.500 > 0.10"]
    # A model that refuses the person's other answers fails a keep bound, named with the base.
    assert _failing(fake_report(nonprivate_em=0.094)) == (
        "needs_review",
        ["non-private EM 0.094 < 0.95 (95% of base 1.000)"],
    )
    broken = fake_report()
    broken["retain"]["em"], broken["general"]["pope_acc"] = 0.5, 0.4
    assert _failing(broken)[1] == ["retain EM 0.500 < 0.90", "general accuracy (POPE) 0.400 < 0.85"]
    assert _failing({"forget": {}}) == (
        "needs_review",
        [
            "forget EM missing from the report",
            "paraphrase leak missing from the report",
            "non-private EM missing from the report",
            "retain EM missing from the report",
            "general accuracy (POPE) missing from the report",
            "general accuracy (MME) missing from the report",
        ],
    )
    lines = request_verdict(fake_report(), UnlearnSettings()).to_json()["lines"]
    assert [(x["key"], x["op"], x["passed"]) for x in lines] == [
        ("forget_em", "≤", True),
        ("paraphrase_leak", "≤", True),
        ("image_leak", "≤", None),
        ("nonprivate_em", "≥", True),
        ("retain_em", "≥", True),
        ("pope_acc", "≥", True),
        ("mme_acc", "≥", True),
    ]


def test_bounds_can_be_set_by_name_and_a_typo_is_refused():
    settings = UnlearnSettings(bounds=bounds_with(forget_em=0.3))
    assert _failing(fake_report(0.2), settings) == ("verified", [])
    with pytest.raises(ValueError, match="forget_emm"):
        bounds_with(forget_emm=0.3)


def test_keep_failure_needs_review_and_names_the_line(storage_db, tmp_path):
    request_id, _ = _submit(storage_db)
    with _worker(storage_db, tmp_path, FakeTrainer(nonprivate_em=0.0)) as worker:
        result = worker.run_one().result
    assert result["status"] == "needs_review"
    assert result["reasons"] == ["non-private EM 0.000 < 0.95 (95% of base 1.000)"]
    with storage_db.read() as s:
        stored = s.scalar(select(MetricReport.report))
    assert stored["verdict"]["failing"] == result["reasons"]


def test_failed_training_leaves_no_adapter_behind(storage_db, tmp_path):
    request_id, job_id = _submit(storage_db, max_attempts=2)
    with _worker(storage_db, tmp_path, FakeTrainer(fail=True)) as worker:
        outcomes = worker.run(until_empty=True)
    assert [o.status for o in outcomes] == ["queued", "failed"]
    assert _request(storage_db, request_id).status == "failed"
    assert _adapters(storage_db) == [] and _listing(tmp_path) == []
    assert _actions(storage_db, "request", request_id).count("unlearn.failed") == 2


def test_leftovers_of_a_crashed_attempt_are_removed(storage_db, tmp_path):
    request_id, job_id = _submit(storage_db)
    root = tmp_path / "adapters"
    name = f"request-{request_id}-job-{job_id}"
    for leftover in (root / f".tmp-{name}-a1-dead", root / name):  # half-written; orphaned
        leftover.mkdir(parents=True)
        (leftover / storage.ADAPTER_WEIGHTS).write_bytes(b"partial")
    (root / ".tmp-request-99-job-99-a1-x").mkdir()  # another job's: must survive
    with _worker(storage_db, tmp_path, FakeTrainer()) as worker:
        assert worker.run_one().status == "succeeded"
    assert _listing(tmp_path) == [".tmp-request-99-job-99-a1-x", name]
    storage.verify_adapter(_adapters(storage_db)[0])


def test_retry_after_a_lost_completion_reuses_the_adapter(storage_db, tmp_path):
    """The worker died after storing the adapter but before marking the job done."""
    request_id, job_id = _submit(storage_db)
    log = tmp_path / "steps.log"
    with _worker(storage_db, tmp_path, FakeTrainer(step_log=str(log))) as worker:
        worker.run_one()
        with storage_db.transaction() as s:
            s.execute(update(Job).values(status="queued", worker_id=None))
        again = worker.run_one()
    assert again.status == "succeeded" and again.result["reused"] is True
    assert (
        len(_adapters(storage_db)) == 1 and len(log.read_text().splitlines()) == 4
    )  # trained once
    assert _request(storage_db, request_id).status == "verified"


def test_cancelling_training_stops_within_one_step(storage_db, tmp_path):
    request_id, job_id = _submit(storage_db)
    log = tmp_path / "steps.log"
    worker = _worker(storage_db, tmp_path, FakeTrainer(steps=100, step_s=0.1, step_log=str(log)))
    outcomes: list = []
    thread = threading.Thread(target=lambda: outcomes.extend(worker.run(once=True)))
    thread.start()
    deadline = time.monotonic() + 15
    while _request(storage_db, request_id).status != "running" or not log.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.25)
    with storage_db.transaction() as s:
        assert cancel_forget_request(s, request_id, actor="user:alice") == "running"
    steps_when_asked = len(log.read_text().splitlines())
    thread.join(timeout=10)
    assert len(log.read_text().splitlines()) - steps_when_asked <= 1
    assert [o.status for o in outcomes] == ["cancelled"]
    assert _request(storage_db, request_id).status == "cancelled"
    assert _adapters(storage_db) == [] and _listing(tmp_path) == []
    assert _actions(storage_db, "request", request_id)[-1] == "unlearn.cancelled"
    assert _actions(storage_db, "job", job_id)[-2:] == ["job.cancel_requested", "job.cancelled"]


def test_pair_requests_need_a_pair_aware_trainer(storage_db, tmp_path):
    request_id, job_id = _submit(storage_db, pair_ids=["health/q1"], categories=None)
    with _worker(storage_db, tmp_path, FakeTrainer()) as worker:
        outcome = worker.run_one()
    assert outcome.status == "failed" and "pair_ids" in outcome.error
    assert _request(storage_db, request_id).status == "failed"


def test_pair_requests_reach_a_trainer_that_takes_keywords(storage_db, tmp_path):
    seen = {}

    def trainer(**kwargs):
        seen.update(kwargs)
        return FakeTrainer()(**{k: v for k, v in kwargs.items() if k != "pair_ids"})

    request_id, _ = _submit(storage_db, pair_ids=["health/p1:3"], categories=None)
    with _worker(storage_db, tmp_path, trainer) as worker:
        outcome = worker.run_one()
    assert outcome.status == "succeeded", outcome.error
    assert seen["pair_ids"] == ["health/p1:3"] and seen["categories"] is None
    assert _request(storage_db, request_id).status == "verified"


def test_queue_modules_do_not_import_torch():
    code = (
        "import sys, storage, jobs, jobs.runner, jobs.worker; "
        "bad = {'torch', 'cagul', 'transformers'} & set(sys.modules); "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout


def test_worker_killed_mid_job_is_recovered_exactly_once(storage_db, storage_url, tmp_path):
    request_id, job_id = _submit(storage_db)
    env = {
        "CAGUL_TEST_FAKE_UNLEARN": "1",
        "CAGUL_ARTIFACTS": str(tmp_path),
        "CAGUL_MODEL_DIR": "base-model",
        "CAGUL_DATA_DIR": "data",
        "FAKE_STEPS": "40",
        "FAKE_STEP_S": "0.1",
    }
    doomed = spawn_worker(storage_url, "--once", env=env, worker_id="doomed")
    deadline = time.monotonic() + 30
    while True:
        with storage_db.read() as s:
            job = s.get(Job, job_id)
        if job.status == "running" and job.progress >= 0.2:
            break
        assert time.monotonic() < deadline and doomed.poll() is None, finish(doomed)
        time.sleep(0.05)
    partial = list((tmp_path / "adapters").glob(".tmp-*"))
    assert len(partial) == 1 and (partial[0] / "adapter_config.json").exists()
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    while True:  # nobody heartbeats any more; wait until the job counts as dead
        with storage_db.read() as s:
            if any_stale(s, stale_after_s=1.5):
                break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    code, out, err = finish(
        spawn_worker(storage_url, "--once", worker_id="rescuer", env={**env, "FAKE_STEPS": "3"})
    )
    assert code == 0, err[-3000:]
    with storage_db.read() as s:
        job = s.get(Job, job_id)
        assert (job.status, job.attempts, job.worker_id) == ("succeeded", 2, "rescuer")
        assert s.scalar(select(func.count()).select_from(Adapter)) == 1
        adapter = s.scalar(select(Adapter))
        events = [(e.action, e.actor) for e in storage.events_for(s, "job", job_id)]
    assert _request(storage_db, request_id).status == "verified"
    assert _listing(tmp_path) == [Path(adapter.path).name]  # no partial directory remains
    storage.verify_adapter(adapter, base_fingerprint="fake-base-1")
    assert events == [
        ("job.enqueued", "system"),
        ("job.claimed", "worker:doomed"),
        ("job.requeued", "reaper:rescuer"),
        ("job.claimed", "worker:rescuer"),
        ("job.succeeded", "worker:rescuer"),
    ]
    assert _actions(storage_db, "request", request_id).count("unlearn.started") == 2


def test_paths_come_from_payload_then_settings_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CAGUL_MODEL_DIR", "env-model")
    monkeypatch.setenv("CAGUL_ARTIFACTS", str(tmp_path))
    settings = UnlearnSettings(data_dir="configured-data")
    assert settings.model({"model_dir": "payload-model"}) == "payload-model"
    assert settings.model({}) == "env-model"
    assert settings.data({}) == "configured-data"
    assert settings.adapters_root() == tmp_path / "adapters"
