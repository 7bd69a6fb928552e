"""The verdict means what it says: a PO+GD request on the demo bundle forgets the person's
private answers but refuses their ordinary ones too, so it must end `needs_review`, and the
REST API must name the failing keep line ("non-private EM 0.000 < 0.95 …").

The real queue, worker, runner, pipeline and PO+GD method run on the shipped model; the
schedule is small (2 epochs, lr 1e-2, health and criminal, 4 retain samples) and the general probes
are left out of the data copy the trainer reads, to keep the test near two minutes: the
general-accuracy lines then read "missing from the report" (needs_review on their own), so the
test checks the non-private line by its value, which the missing probes do not affect.
"""

from __future__ import annotations

import html
import shutil

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import storage
from cagul.methods.lora import LoraArguments
from cagul.pipeline import run_unlearning
from jobs import UnlearnSettings, WorkerConfig, make_unlearn_handler
from jobs.worker import Worker
from webui import auth, requests
from webui.studio import Studio

FAST = WorkerConfig(
    heartbeat_s=0.1, stale_after_s=30.0, poll_s=0.05, backoff_s=0.0, progress_every_s=0.0
)
PERSON = "00000000"


@pytest.mark.slow
def test_po_gd_refusing_ordinary_answers_needs_review_and_rest_names_the_line(tmp_path):
    studio = Studio(database_url=f"sqlite:///{tmp_path / 'app.sqlite'}")
    with studio.db.transaction() as s:
        storage.create_user(s, "olga", "officer", "correct horse battery")
    olga = auth.sign_in(studio.db, "olga", "correct horse battery")
    out = requests.submit(
        studio,
        olga,
        individual_ids=[PERSON],
        categories_=["health", "criminal"],
        method="po_gd",
        reason="acceptance test",
    )
    data = tmp_path / "data"
    shutil.copytree(studio.data_dir, data, ignore=shutil.ignore_patterns("probes"))

    def trainer(**kwargs):
        kwargs["data_dir"] = str(data)
        config = LoraArguments(epochs=2, batch_size=4, lr=1e-2, early_stop=False)
        return run_unlearning(**kwargs, config=config, max_retain=4)

    handler = make_unlearn_handler(trainer, UnlearnSettings(artifacts_root=tmp_path / "art"))
    with Worker(studio.db, FAST, gpu_mem_mb=0, handlers={"unlearn": handler}) as worker:
        outcome = worker.run_one()
    assert outcome.status == "succeeded", outcome.error
    assert outcome.result["status"] == "needs_review"

    with studio.db.transaction() as s:
        user = s.scalar(select(storage.User).where(storage.User.name == "olga"))
        header = {"Authorization": f"Bearer {storage.issue_token(s, user)}"}
    from app import create_app

    client = TestClient(create_app(studio))
    got = client.get(f"/api/forget-requests/{out['id']}", headers=header)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["status"] == body["verdict"] == "needs_review"
    lines = {line["key"]: line for line in body["verdict_lines"]}
    forget, keep = lines["forget_em"], lines["nonprivate_em"]
    assert forget["passed"] and forget["value"] <= 0.05  # the private answers are forgotten…
    assert keep["passed"] is False and keep["value"] < 0.5  # …and the ordinary ones lost
    assert keep["threshold"] == pytest.approx(0.95) and keep["op"] == "≥"
    assert keep["text"].startswith(f"non-private EM {keep['value']:.3f} < 0.95")
    assert keep["text"] in body["failing"]
    queue = {r["id"]: r for r in requests.request_rows(studio, olga)}
    assert keep["text"] in queue[out["id"]]["message"]  # the queue names it too
    page = client.get(f"/api/forget-requests/{out['id']}/record", headers=header)
    assert html.escape(keep["text"]) in page.text and "FAIL" in page.text
