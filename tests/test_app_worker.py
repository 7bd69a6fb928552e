"""A forget request through the whole product: an officer submits it in the browser, the app's
own worker trains it with the real trainer (small epochs: `CAGUL_QUICK_UNLEARN=1`), the app is
killed mid-job and started again, the request finishes exactly once; then the officer opens the
report and the compliance record, and an auditor audits the new adapter. REST is checked on
the same request (token from `python -m storage.users token`)."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.browser import REPO, browser, choose, free_port, open_page, wait_healthy
from tests.test_browser import add_user, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PERSON = "00000013"
ENV = {
    "CAGUL_QUICK_UNLEARN": "1",
    "CAGUL_HEARTBEAT_S": "1",
    "CAGUL_STALE_AFTER_S": "8",
    "CAGUL_REAP_EVERY_S": "1",
    "CAGUL_POLL_S": "0.5",
}


def start(db, port, tmp_path):
    log = open(tmp_path / f"app-{port}.log", "a")  # noqa: SIM115 - the process owns it
    env = {**os.environ, **ENV, "CAGUL_ARTIFACTS": str(tmp_path / "artifacts")}
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--database-url", f"sqlite:///{db}"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc)
    return proc, url


def query(db, sql, *args):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


def api(url, path, token):
    req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(what)


def test_request_survives_a_killed_app_and_ends_on_record(tmp_path):
    db = tmp_path / "app.sqlite"
    add_user(db, "olga", "officer")
    add_user(db, "audrey", "auditor")
    token = (
        subprocess.run(
            [
                sys.executable,
                "-m",
                "storage.users",
                "--database-url",
                f"sqlite:///{db}",
                "token",
                "olga",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    proc, url = start(db, free_port(), tmp_path)
    try:
        with browser() as b:
            page = open_page(b, url)
            sign_in(page, "olga")
            page.get_by_role("tab", name="Forget requests").click()
            choose(page, "requests-person", PERSON)
            page.keyboard.press("Escape")
            page.fill("#requests-reason textarea", "browser test")
            page.click("#requests-submit")
            page.wait_for_selector("#requests-message .msg-info", timeout=30_000)
            rid = query(db, "SELECT id FROM forget_requests")[0][0]
            # The queue table refreshes by itself: progress moves while the worker trains.
            page.wait_for_function(
                "() => /running/.test(document.querySelector('#requests-queue tbody').textContent)",
                timeout=180_000,
            )
            wait_for(lambda: query(db, "SELECT progress FROM jobs")[0][0] > 0.05, 300, "progress")
            assert api(url, f"/api/forget-requests/{rid}", token)["status"] == "running"
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert children, "the app runs its worker in a child process"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        # The worker child dies with the app (no orphan keeps the claim).
        wait_for(
            lambda: not any(os.path.exists(f"/proc/{c}") for c in children), 30, "the worker's exit"
        )
        proc, url = start(db, free_port(), tmp_path)
        status = wait_for(
            lambda: (
                (s := query(db, "SELECT status FROM forget_requests")[0][0])
                in ("verified", "needs_review")
                and s
            ),
            900,
            "a verdict",
        )
        assert query(db, "SELECT count(*) FROM adapters WHERE request_id=?", rid) == [(1,)]
        attempts, job_status = query(db, "SELECT attempts, status FROM jobs")[0]
        assert job_status == "succeeded" and attempts == 2
        got = api(url, f"/api/forget-requests/{rid}", token)
        assert got["verdict"] == status and got["adapter_id"]
        assert "job.requeued" in {e["action"] for e in got["events"]}
        with browser() as b:
            page = open_page(b, url)
            sign_in(page, "olga")
            page.get_by_role("tab", name="Forget requests").click()
            page.fill("#requests-id input", str(rid))
            page.click("#requests-show")
            page.wait_for_function(
                f"() => document.querySelector('#requests-outcome').innerText.includes('{status}')",
                timeout=30_000,
            )
            with page.expect_download() as info:
                page.click("#requests-record a")  # the authenticated REST route
            record = tmp_path / "record.html"
            info.value.save_as(record)
            text = record.read_text()
            assert "compliance record" in text and got["adapter_sha256"] in text
            assert "job.claimed" in text
            page.get_by_role("tab", name="Reports").click()
            choose(page, "reports-adapter", f"#{got['adapter_id']}")
            page.keyboard.press("Escape")
            page.click("#reports-show")
            page.wait_for_function(
                "() => document.querySelector('#reports-table').textContent.includes('forget EM')",
                timeout=30_000,
            )
            sign_in(page, "audrey")
            page.get_by_role("tab", name="Audit").click()
            choose(page, "audit-adapter", f"#{got['adapter_id']}")
            page.click("#audit-run")
            page.wait_for_selector("#audit-summary h3", timeout=300_000)
            assert PERSON in page.locator("#audit-table").text_content()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
