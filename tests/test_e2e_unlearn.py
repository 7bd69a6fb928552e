"""End to end on the shipped demo bundle: a privacy officer's request for a demo individual,
one real worker process (`python -m jobs.worker --once`) trains and evaluates a CAGUL adapter,
and the stored adapter verifies and forgets."""

from __future__ import annotations

import json

import pytest

import storage
from cagul.data import PRIVATE_CATEGORIES, load_dataset
from cagul.paths import default_data_dir
from jobs import submit_forget_request
from storage import Adapter, AuditEvent, ForgetRequest, MetricReport
from storage.artifacts import verify_adapter
from tests.workerproc import finish, spawn_worker

pytestmark = pytest.mark.slow


def test_forget_request_runs_end_to_end_on_the_demo_bundle(tmp_path):
    ds = load_dataset(default_data_dir())
    forget_id = ds.splits["forget10"][0]
    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    db = storage.connect(url, upgrade=True)
    with db.transaction() as s:
        request, job = submit_forget_request(
            s,
            requester="Privacy Officer",
            individual_ids=[forget_id],
            categories=sorted(PRIVATE_CATEGORIES),
            known_individuals=set(ds.ids),
        )
        request_id = request.id
    worker = spawn_worker(url, "--once", env={"CAGUL_ARTIFACTS": str(tmp_path / "art")})
    rc, out, err = finish(worker, timeout=1200)
    assert rc == 0, err[-3000:]

    with db.read() as s:
        req = s.get(ForgetRequest, request_id)
        adapter = s.query(Adapter).filter_by(request_id=request_id).one()
        metrics = s.query(MetricReport).filter_by(request_id=request_id).one()
        actions = [e.action for e in s.query(AuditEvent).order_by(AuditEvent.id)]
    assert req.status in ("verified", "needs_review")
    directory = verify_adapter(adapter, base_fingerprint=adapter.base_fingerprint)
    assert sorted(p.name for p in directory.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert json.loads((directory / "adapter_config.json").read_text())["forget_ids"] == [forget_id]
    report = metrics.report
    base = report["base"]
    assert base["forget_em"] >= 0.8  # the base model really knew the private answers
    assert metrics.forget_em < base["forget_em"]
    assert report["nonprivate"]["em"] >= 0.5 * base["nonprivate_em"]  # forgetting, not breaking
    assert report["discriminator"]["accuracy"] >= 0.95
    # The verdict follows every bound: verified only when each forget bound and each keep
    # bound holds (written out here, not read from jobs.verdict, so the test can disagree).
    general = report.get("general") or {}
    verified = (
        metrics.forget_em <= 0.05
        and report["forget"]["ape"] <= 0.10
        and report["leak"]["perturbed_image"] <= 0.10
        and report["nonprivate"]["em"] >= 0.95 * base["nonprivate_em"]
        and report["retain"]["em"] >= 0.90
        and general.get("pope_acc", 0.0) >= 0.85
        and general.get("mme_acc", 0.0) >= 0.70
    )
    assert req.status == ("verified" if verified else "needs_review")
    assert any(a.startswith("unlearn.") for a in actions)
