"""The HTTP surface: ids checked to the database's range, one JSON error shape for every
error (unknown routes and wrong methods included), no server paths in answers, record
downloads only for a signed-in caller, CORS off unless configured, bounded bodies, and a
retried job that succeeds no longer shows its dead worker's message."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

import storage
from cagul.paths import REPO
from webui import requests
from webui.auth import COOKIE
from webui.studio import Studio

PASSWORD = "correct horse battery"
HUGE = [2**31, 2**63, 2**64 + 5, 0, -1]


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    st = Studio(database_url=f"sqlite:///{tmp_path_factory.mktemp('http') / 'app.sqlite'}")
    with st.db.transaction() as s:
        storage.create_user(s, "olga", "officer", PASSWORD)
        storage.create_user(s, "aude", "auditor", PASSWORD)
    return st


@pytest.fixture(scope="module")
def client(studio):
    from app import create_app

    return TestClient(create_app(studio))


def bearer(studio, name) -> dict:
    with studio.db.transaction() as s:
        user = s.scalar(select(storage.User).where(storage.User.name == name))
        return {"Authorization": f"Bearer {storage.issue_token(s, user)}"}


def shaped(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) <= {"error", "detail"} and set(body["error"]) == {"code", "message"}
    return body["error"]


def test_ids_outside_the_database_range_are_422_json(studio, client):
    h = bearer(studio, "aude")
    for n in HUGE:
        for method, path in [
            ("get", f"/api/jobs/{n}"),
            ("post", f"/api/jobs/{n}/cancel"),
            ("get", f"/api/forget-requests/{n}"),
            ("get", f"/api/forget-requests/{n}/record"),
            ("get", f"/api/adapters/{n}/report"),
        ]:
            shaped(client.request(method, path, headers=h), 422)
        shaped(client.post("/api/audit", json={"adapter_id": n}, headers=h), 422)
        body = {"question": "Who?", "individual_id": "00000004", "adapter_ids": [n]}
        shaped(client.post("/api/answer", json=body, headers=h), 422)
    shaped(client.get(f"/api/forget-requests/{2**31 - 1}", headers=h), 404)


def test_the_page_refuses_huge_ids_with_a_message(studio):
    from webui import auth

    who = auth.sign_in(studio.db, "aude", PASSWORD)
    for n in (2**63, 2**64, "1e400"):
        with pytest.raises(requests.RequestNotFoundError, match="no"):
            requests.history(studio, who, n)


def test_every_error_has_one_json_shape(client, studio):
    assert shaped(client.get("/api/no-such-route"), 404)["code"] == "not_found"
    assert shaped(client.get("/no-such-page"), 404)["code"] == "not_found"
    wrong = client.delete("/api/jobs/1")
    assert shaped(wrong, 405)["code"] == "method_not_allowed" and "GET" in wrong.headers["allow"]
    shaped(client.put("/api/forget-requests"), 405)
    shaped(client.get("/api/forget-requests"), 401)
    shaped(
        client.post(
            "/api/forget-requests",
            content=b"{",
            headers={**bearer(studio, "olga"), "content-type": "application/json"},
        ),
        422,
    )


def test_health_and_errors_show_no_server_paths(client, studio):
    health = client.get("/api/health")
    assert health.status_code == 200 and str(REPO) not in health.text
    assert str(studio.model_dir) not in health.text
    r = client.post(
        "/api/answer",
        headers=bearer(studio, "olga"),
        json={"question": "Who?", "image_base64": "aGVsbG8="},
    )
    message = shaped(r, 400)["message"]
    assert "BytesIO" not in message and "0x" not in message and "not a readable image" in message


def test_the_record_shows_no_absolute_paths_and_downloads_only_when_signed_in(client, studio):
    h = bearer(studio, "olga")
    created = client.post(
        "/api/forget-requests",
        headers=h,
        json={"individual_ids": ["00000023"], "categories": ["health"]},
    ).json()
    rid = created["id"]
    with studio.db.transaction() as s:  # an event as the runner writes it, with server paths
        storage.record_event(
            s,
            actor="worker:w1",
            action="job.succeeded",
            target_type="job",
            target_id=created["job_id"],
            details={
                "path": str(REPO / "runs" / "adapter-1"),
                "model_dir": "/srv/models/base",
                "n": 3,
            },
        )
    page = client.get(f"/api/forget-requests/{rid}/record", headers=h).text
    assert "runs/adapter-1" in page and str(REPO) not in page and "/srv/models" not in page
    url = f"/api/forget-requests/{rid}/record?download=1"
    shaped(client.get(url), 401)  # no token, no cookie: nothing
    cookie = client.post("/auth/sign-in", json={"name": "olga", "password": PASSWORD})
    got = client.get(url, cookies={COOKIE: cookie.cookies[COOKIE]})
    assert got.status_code == 200 and "attachment" in got.headers["content-disposition"]
    assert f"Forget request #{rid}" in got.text
    # The cookie is for reading: changing something still needs the bearer token.
    shaped(
        client.post(
            f"/api/jobs/{created['job_id']}/cancel", cookies={COOKIE: cookie.cookies[COOKIE]}
        ),
        401,
    )
    client.cookies.clear()


def test_cors_is_off_unless_configured(client, studio, monkeypatch):
    foreign = {"Origin": "http://localhost:9999"}
    r = client.get("/api/health", headers=foreign)
    assert r.status_code == 200 and not any(k.startswith("access-control") for k in r.headers)
    preflight = client.options(
        "/api/forget-requests", headers={**foreign, "Access-Control-Request-Method": "POST"}
    )
    shaped(preflight, 403)
    shaped(
        client.post("/auth/sign-in", headers=foreign, json={"name": "olga", "password": PASSWORD}),
        403,
    )
    shaped(client.post("/gradio_api/queue/join", headers=foreign, json={}), 403)
    same = client.post(
        "/auth/sign-in",
        headers={"Origin": "http://testserver"},
        json={"name": "olga", "password": PASSWORD},
    )
    assert same.status_code == 200
    client.cookies.clear()
    from app import create_app

    monkeypatch.setenv("CAGUL_CORS_ORIGINS", "https://portal.example")
    listed = TestClient(create_app(studio))
    r = listed.get("/api/health", headers={"Origin": "https://portal.example"})
    assert r.headers["access-control-allow-origin"] == "https://portal.example"
    assert "access-control-allow-credentials" not in r.headers


def test_bodies_and_uploads_are_bounded(client, studio):
    big = b"x" * (29 * 2**20)
    shaped(
        client.post(
            "/api/answer",
            content=big,
            headers={**bearer(studio, "olga"), "content-type": "application/json"},
        ),
        413,
    )
    shaped(
        client.post(
            "/gradio_api/queue/join",
            content=b"x" * (2 * 2**20),
            headers={"content-type": "application/json"},
        ),
        413,
    )
    upload = client.post(
        "/gradio_api/upload", files={"files": ("a.png", b"x" * (20 * 2**20 + 10), "image/png")}
    )
    assert upload.status_code == 413 and "error" in upload.json()


def test_a_retry_that_succeeds_clears_the_dead_workers_message(tmp_path):
    import tests.jobkinds  # noqa: F401 - registers the test job kinds
    from jobs import claim_next, enqueue, reap_stale
    from jobs.queue import complete

    db = storage.connect(f"sqlite:///{tmp_path / 'jobs.sqlite'}", upgrade=True)
    with db.transaction() as s:
        job_id = enqueue(s, "test.record", {}).id
    with db.transaction() as s:
        claim_next(s, worker_id="dead", kinds={"test.record"}, gpu_mem_mb=0)
        s.execute(
            update(storage.Job)
            .where(storage.Job.id == job_id)
            .values(heartbeat_at=storage.db_now(-100))
        )
    with db.transaction() as s:
        reap_stale(s, stale_after_s=10)
    with db.read() as s:
        assert "stopped heartbeating" in requests.job_message(s.get(storage.Job, job_id))
    with db.transaction() as s:
        claim = claim_next(s, worker_id="alive", kinds={"test.record"}, gpu_mem_mb=0)
        assert complete(s, claim, {"ok": True})
    with db.read() as s:
        job = s.get(storage.Job, job_id)
        assert job.error is None and requests.job_message(job) == "succeeded"
    db.dispose()
