"""Sign-in, roles, forget requests, the compliance record and the REST API, without a browser
(the REST calls go through FastAPI's test client against the real app)."""

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

import storage
from webui import auth, reports, requests
from webui.auth import ForbiddenError, NotSignedInError
from webui.studio import Studio, StudioError

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('roles') / 'app.sqlite'}"
    st = Studio(database_url=url)
    with st.db.transaction() as s:
        for name, role in [
            ("olga", "officer"),
            ("otto", "officer"),
            ("aude", "auditor"),
            ("vic", "viewer"),
        ]:
            storage.create_user(s, name, role, PASSWORD)
    return st


def who(studio, name):
    return auth.sign_in(studio.db, name, PASSWORD)


def n_rows(studio, model) -> int:
    with studio.db.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_first_run_admin_from_the_environment_or_random_once(tmp_path, monkeypatch):
    db = storage.connect(f"sqlite:///{tmp_path / 'a.sqlite'}", upgrade=True)
    monkeypatch.setenv("CAGUL_ADMIN_PASSWORD", "from-the-env-123")
    assert auth.ensure_admin(db) is None  # the given password is not echoed
    assert auth.sign_in(db, "admin", "from-the-env-123").role == "admin"
    assert auth.ensure_admin(db) is None
    db2 = storage.connect(f"sqlite:///{tmp_path / 'b.sqlite'}", upgrade=True)
    monkeypatch.delenv("CAGUL_ADMIN_PASSWORD")
    printed = auth.ensure_admin(db2)
    assert printed and len(printed) >= 12 and auth.sign_in(db2, "admin", printed)
    assert auth.ensure_admin(db2) is None


def test_wrong_password_is_refused_and_recorded(studio):
    with pytest.raises(NotSignedInError, match="wrong user name or password"):
        auth.sign_in(studio.db, "olga", "not the password")
    with pytest.raises(NotSignedInError, match="wrong user name or password"):
        auth.sign_in(studio.db, "nobody", PASSWORD)
    with studio.db.read() as s:
        failed = s.scalars(
            select(storage.AuditEvent).where(storage.AuditEvent.action == "user.sign_in_failed")
        ).all()
    # The real account when it exists; a name that is none is not stored (it may be a password).
    assert {e.actor for e in failed} >= {"user:olga", "unknown-user"}
    assert "user:nobody" not in {e.actor for e in failed}


def test_roles_and_expiry(studio):
    officer, auditor, viewer = who(studio, "olga"), who(studio, "aude"), who(studio, "vic")
    assert auth.require(officer, "submit") and auth.require(auditor, "audit")
    for w, action in [
        (officer, "audit"),
        (auditor, "submit"),
        (viewer, "requests"),
        (viewer, "reports"),
        (viewer, "audit"),
    ]:
        with pytest.raises(ForbiddenError, match="may not"):
            auth.require(w, action)
    with pytest.raises(NotSignedInError, match="sign in"):
        auth.require(None, "reports")
    stale = auth.SignedIn(
        officer.user_id, "olga", "officer", officer.expires_at - timedelta(days=1)
    )
    with pytest.raises(NotSignedInError, match="expired"):
        auth.require(stale, "submit")


def test_requests_submit_list_cancel_and_refusals(studio):
    olga, otto, aude, vic = (who(studio, n) for n in ("olga", "otto", "aude", "vic"))
    before = n_rows(studio, storage.ForgetRequest)
    bad = [
        (vic, {"individual_ids": ["00000011"], "categories_": ["health"]}, ForbiddenError),
        (olga, {"individual_ids": ["99999999"], "categories_": ["health"]}, StudioError),
        (olga, {"individual_ids": ["00000011"], "categories_": ["bogus"]}, storage.RequestRefused),
        (olga, {"individual_ids": [], "categories_": ["health"]}, StudioError),
        (olga, {"individual_ids": ["00000011"], "categories_": []}, StudioError),
        (
            olga,
            {"individual_ids": ["00000011"], "categories_": ["health"], "method": "magic"},
            Exception,
        ),
        (
            olga,
            {"individual_ids": ["00000011"], "categories_": ["health"], "reason": "x" * 3000},
            StudioError,
        ),
    ]
    for w, kwargs, error in bad:
        with pytest.raises(error):
            requests.submit(studio, w, **kwargs)
    assert n_rows(studio, storage.ForgetRequest) == before
    out = requests.submit(
        studio,
        olga,
        individual_ids=["00000011"],
        categories_=["health", "criminal"],
        reason="GDPR art. 17",
    )
    assert out["status"] == "queued" and out["job_id"]
    with pytest.raises(storage.DuplicateActiveRequestError):
        requests.submit(studio, otto, individual_ids=["00000011"], categories_=["Health"])
    assert [r["id"] for r in requests.request_rows(studio, olga)] == [out["id"]]
    assert requests.request_rows(studio, otto) == []
    assert out["id"] in [r["id"] for r in requests.request_rows(studio, aude)]
    with pytest.raises(requests.RequestNotFoundError):
        requests.cancel(studio, otto, out["id"])  # not otto's request
    assert requests.cancel(studio, olga, out["id"]) == "cancelled"
    with pytest.raises(StudioError, match="already cancelled"):
        requests.cancel(studio, olga, out["id"])
    actions = [e["action"] for e in requests.history(studio, aude, out["id"])]
    assert actions[:2] == ["request.created", "job.enqueued"] and "job.cancelled" in actions


def test_compliance_record_holds_the_request_and_its_trail(studio):
    olga = who(studio, "olga")
    out = requests.submit(
        studio,
        olga,
        individual_ids=["00000012"],
        categories_=["health"],
        reason="Subject wrote on 2026-12-01",
    )
    page = reports.record_html(studio, olga, out["id"])
    name = studio.person("00000012").name
    for text in (
        f"Forget request #{out['id']}",
        name,
        "health",
        "cagul",
        "request.created",
        "Subject wrote on 2026-12-01",
        studio.fingerprint,
        "No evaluation yet",
    ):
        assert text in page
    requests.cancel(studio, olga, out["id"])


def test_report_rows_put_the_unlearned_model_beside_the_base(studio):
    aude = who(studio, "aude")
    adapter_id = studio.adapter_choices()[0][1]
    rows = {r[0]: r for r in reports.metric_rows(reports.adapter_report(studio, aude, adapter_id))}
    assert rows["forget EM ↓"][1] == "1.000" and rows["forget EM ↓"][2] == "0.000"
    with pytest.raises(ForbiddenError):
        reports.adapter_report(studio, who(studio, "vic"), adapter_id)


@pytest.fixture(scope="module")
def client(studio):
    from app import create_app

    return TestClient(create_app(studio))


def token(studio, name) -> dict:
    with studio.db.transaction() as s:
        user = s.scalar(select(storage.User).where(storage.User.name == name))
        return {"Authorization": f"Bearer {storage.issue_token(s, user)}"}


def test_rest_needs_a_token_and_the_right_role(studio, client):
    assert client.get("/api/health").json()["status"] == "ok"
    body = {"individual_ids": ["00000013"], "categories": ["health"], "method": "cagul"}
    for method, path in [
        ("get", "/api/forget-requests"),
        ("post", "/api/forget-requests"),
        ("get", "/api/forget-requests/1"),
        ("get", "/api/adapters"),
    ]:
        r = client.request(method, path, json=body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = client.get("/api/forget-requests", headers={"Authorization": "Bearer cgl_forged"})
    assert r.status_code == 401
    before = n_rows(studio, storage.ForgetRequest)
    r = client.post("/api/forget-requests", json=body, headers=token(studio, "vic"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = client.post("/api/audit", json={"adapter_id": 1}, headers=token(studio, "olga"))
    assert r.status_code == 403
    assert n_rows(studio, storage.ForgetRequest) == before


def test_rest_request_lifecycle_and_bad_input(studio, client):
    h = token(studio, "olga")
    body = {
        "individual_ids": ["00000014"],
        "categories": ["health", "criminal"],
        "reason": "by mail",
    }
    r = client.post("/api/forget-requests", json=body, headers=h)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "queued" and created["job_id"]
    got = client.get(f"/api/forget-requests/{created['id']}", headers=h).json()
    assert got["events"][0]["action"] == "request.created" and got["progress"] == 0.0
    assert client.post("/api/forget-requests", json=body, headers=h).status_code == 409
    rec = client.get(f"/api/forget-requests/{created['id']}/record", headers=h)
    assert rec.status_code == 200 and "compliance record" in rec.text
    job = client.get(f"/api/jobs/{created['job_id']}", headers=h).json()
    assert job["status"] == "queued"
    cancelled = client.post(f"/api/jobs/{created['job_id']}/cancel", headers=h).json()
    assert cancelled["status"] == "cancelled"
    again = client.post(f"/api/jobs/{created['job_id']}/cancel", headers=h)
    assert again.status_code == 400 and "already" in again.json()["error"]["message"]
    for bad, code in [
        ({**body, "categories": ["bogus"]}, 422),  # not in the enum
        ({**body, "individual_ids": ["nobody"]}, 400),
        ({**body, "individual_ids": []}, 422),
        ({**body, "reason": "x" * 5000}, 422),
    ]:
        r = client.post("/api/forget-requests", json=bad, headers=h)
        assert r.status_code == code and "error" in r.json()
    assert client.get("/api/forget-requests/9999", headers=h).status_code == 404


def test_rest_answer_and_audit(studio, client):
    adapter_id = int(studio.adapter_choices()[0][1])
    h = token(studio, "vic")
    r = client.post(
        "/api/answer",
        headers=h,
        json={
            "individual_id": "00000004",
            "question": "What medical condition does this person have?",
            "adapter_ids": [adapter_id],
        },
    )
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["transformed"] and rec["truth"]["base_em"] == 1.0 and rec["truth"]["em"] == 0.0
    r = client.post("/api/answer", headers=h, json={"individual_id": "00000004", "question": " "})
    assert r.status_code == 400 and "empty" in r.json()["error"]["message"]
    r = client.post("/api/answer", headers=h, json={"question": "Who?", "image_base64": "!!"})
    assert r.status_code == 400
    r = client.get(f"/api/adapters/{adapter_id}/report", headers=token(studio, "aude"))
    assert r.status_code == 200 and r.json()["forget"]["em"] == 0.0


def test_page_messages_show_user_text_without_running_it(studio):
    from webui import messages

    with pytest.raises(StudioError) as caught:
        studio.person("<img src=x onerror=alert(1)>")
    page = messages.error(caught.value)
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert messages.info("a < b").endswith("a &lt; b</div>")


def test_single_pair_requests_are_stored_canonical_and_bad_pairs_refused(studio, client):
    olga = who(studio, "olga")
    choices = studio.pair_choices(["00000015"])
    health = next(v for label, v in choices if " · health · " in label)
    assert health.startswith("health/00000015:")
    bare = health.split("/", 1)[1]  # the category may be left out
    before = n_rows(studio, storage.ForgetRequest), n_rows(studio, storage.Job)
    bad = [
        ({"pair_ids": ["00000016:0"]}, requests.UnknownPairError, "not among the people"),
        ({"pair_ids": ["00000015:999"]}, requests.UnknownPairError, "pairs, numbered from 0"),
        ({"pair_ids": ["criminal/" + bare]}, requests.UnknownPairError, "not criminal"),
        ({"pair_ids": ["q1"]}, requests.UnknownPairError, "is not '<unique_id>:<pair index>'"),
        ({"pair_ids": []}, StudioError, "at least one pair"),
        ({"pair_ids": [bare], "categories_": ["health"]}, StudioError, "not both"),
    ]
    for kwargs, error, words in bad:
        kwargs = {"categories_": None, **kwargs}
        with pytest.raises(error, match=words):
            requests.submit(studio, olga, individual_ids=["00000015"], **kwargs)
    assert (n_rows(studio, storage.ForgetRequest), n_rows(studio, storage.Job)) == before
    out = requests.submit(
        studio, olga, individual_ids=["00000015"], categories_=None, pair_ids=[bare]
    )
    got = requests.outcome(studio, olga, out["id"])
    assert got["pair_ids"] == [health] and got["categories"] is None
    row = next(r for r in requests.request_rows(studio, olga) if r["id"] == out["id"])
    assert row["categories"] == f"1 pair: {health}"
    # Stored with its category, the pair overlaps a health request for the same person.
    with pytest.raises(storage.DuplicateActiveRequestError):
        requests.submit(
            studio, who(studio, "otto"), individual_ids=["00000015"], categories_=["health"]
        )
    requests.cancel(studio, olga, out["id"])
    h = token(studio, "olga")
    body = {"individual_ids": ["00000015"], "pair_ids": [bare]}
    r = client.post("/api/forget-requests", json=body, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["pair_ids"] == [health] and r.json()["status"] == "queued"
    client.post(f"/api/jobs/{r.json()['job_id']}/cancel", headers=h)
    n = n_rows(studio, storage.ForgetRequest)
    r = client.post(
        "/api/forget-requests",
        headers=h,
        json={"individual_ids": ["00000015"], "pair_ids": ["00000016:0"]},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_pair"
    assert n_rows(studio, storage.ForgetRequest) == n


def test_openapi_is_typed_with_the_bearer_scheme_and_enums(client):
    spec = client.get("/api/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "an API token from `python -m storage.users token NAME`",
    }
    schemas = spec["components"]["schemas"]
    assert set(schemas["Method"]["enum"]) >= {"cagul", "po_gd", "retrain"}
    assert {"health", "criminal"} <= set(schemas["Category"]["enum"])
    for path, ops in spec["paths"].items():
        for verb, op in ops.items():
            assert op.get("description") or op.get("summary"), (verb, path)
            ok = op["responses"].get("200") or op["responses"].get("201")
            content = ok["content"]
            schema = next(iter(content.values())).get("schema", {})
            typed = "$ref" in schema or "items" in schema or schema.get("type") in ("string",)
            typed = typed or "additionalProperties" in schema
            assert typed, (verb, path, schema)
            if path.startswith("/api/") and path != "/api/health":
                assert op.get("security") == [{"bearer": []}], (verb, path)
            if path.startswith("/auth/"):  # the page's cookie sign-in: no bearer token
                assert "security" not in op, (verb, path)
    for route in (
        "/api/forget-requests/{request_id}/cancel",
        "/api/people",
        "/api/methods",
        "/api/audits",
    ):
        assert route in spec["paths"]


def test_docs_render_from_local_files(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "/api/docs/assets/swagger-ui-bundle.js" in page.text
    js = client.get("/api/docs/assets/swagger-ui-bundle.js")
    css = client.get("/api/docs/assets/swagger-ui.css")
    assert js.status_code == css.status_code == 200 and len(js.content) > 100_000


def test_rest_lists_data_and_cancels_by_request_id_with_a_reason(studio, client):
    h = token(studio, "olga")
    body = {"individual_ids": ["00000012"], "categories": ["Health"], "method": "ga"}
    created = client.post("/api/forget-requests", json=body, headers=h)
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    rows = client.get("/api/forget-requests", headers=h).json()
    row = next(r for r in rows if r["id"] == rid)
    assert row["categories"] == ["health"] and row["people"] == ["00000012"]
    assert row["names"] == [studio.person("00000012").name]
    assert row["progress"] == 0.0 and row["eta_seconds"] is None
    assert row["submitted_at"].endswith("Z") and "T" in row["submitted_at"]
    r = client.post(
        f"/api/forget-requests/{rid}/cancel", headers=h, json={"reason": "the subject withdrew"}
    )
    assert r.status_code == 200 and r.json() == {"request_id": rid, "status": "cancelled"}
    got = client.get(f"/api/forget-requests/{rid}", headers=h).json()
    asked = [e for e in got["events"] if e["action"] == "request.cancel_requested"]
    assert asked[0]["details"] == {"reason": "the subject withdrew"}
    assert all(e["at"].endswith("Z") for e in got["events"])
    assert got["verdict"] is None and got["verdict_lines"] == [] and got["failing"] == []
    other = client.post(f"/api/forget-requests/{rid}/cancel", headers=token(studio, "otto"))
    assert other.status_code == 404  # another officer's request reads as missing
    people = client.get("/api/people", headers=h).json()
    assert {"unique_id", "name", "categories"} == set(people[0])
    assert len(people) == len(studio.dataset.individuals)
    methods = client.get("/api/methods", headers=h).json()
    assert "po_gd" in {m["name"] for m in methods}
    assert client.get("/api/audits", headers=h).status_code == 403  # officers do not audit
    assert client.get("/api/audits", headers=token(studio, "aude")).status_code == 200


def test_one_month_deadline_clamps_to_the_month_end():
    from datetime import UTC, datetime

    from storage.erasure import one_month_after

    assert one_month_after(datetime(2026, 1, 31, 9, tzinfo=UTC)) == datetime(
        2026, 2, 28, 9, tzinfo=UTC
    )
    assert one_month_after(datetime(2028, 1, 31, tzinfo=UTC)).day == 29  # leap year
    assert one_month_after(datetime(2026, 12, 15, tzinfo=UTC)) == datetime(2027, 1, 15, tzinfo=UTC)


def test_erasure_fields_are_stored_refused_when_bad_and_in_the_record(studio, client):
    h = token(studio, "olga")
    body = {
        "individual_ids": ["00000011"],
        "categories": ["health"],
        "method": "ga",
        "subject_ref": "DSR-2026-0042",
        "legal_basis": "art17-1b: consent withdrawn",
        "received": "2026-11-30",
    }
    before = n_rows(studio, storage.ForgetRequest)
    for bad, code in [
        ({**body, "legal_basis": "because"}, 422),
        ({**body, "received": "2999-01-01"}, 400),
        ({**body, "received": "yesterday"}, 422),
    ]:
        r = client.post("/api/forget-requests", json=bad, headers=h)
        assert r.status_code == code, r.text
    assert n_rows(studio, storage.ForgetRequest) == before  # a bad field stores nothing
    r = client.post("/api/forget-requests", json=body, headers=h)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["subject_ref"] == "DSR-2026-0042" and got["legal_basis"] == body["legal_basis"]
    assert got["received_at"] == "2026-11-30T00:00:00Z" and got["due_at"] == "2026-12-30T00:00:00Z"
    row = next(
        x for x in requests.request_rows(studio, who(studio, "olga")) if x["id"] == got["id"]
    )
    assert "d left (2026-12-30)" in row["deadline"] or "OVERDUE" in row["deadline"]
    refused = client.post(f"/api/forget-requests/{got['id']}/sign-off", headers=h)
    assert (
        refused.status_code == 400 and "nothing to sign off" in refused.json()["error"]["message"]
    )
    cancelled = client.post(
        f"/api/forget-requests/{got['id']}/cancel",
        headers=h,
        json={"reason": "duplicate of DSR-2026-0041"},
    )
    assert cancelled.json()["status"] == "cancelled"
    page = reports.record_html(studio, who(studio, "olga"), got["id"])
    assert "DSR-2026-0042" in page and "2026-12-30 00:00:00" in page
    assert "Cancelled at (UTC)" in page and "Completed at" not in page
    assert "none yet" not in page and "cancelled before an adapter was stored" in page
    assert "reason: duplicate of DSR-2026-0041" in page  # details readable, not a raw dict
    assert "{" not in page.split("Event trail")[1].split("</style>")[-1]


def test_record_keeps_long_event_details_whole(studio):
    olga = who(studio, "olga")
    out = requests.submit(
        studio, olga, individual_ids=["00000010"], categories_=["health"], method="ga", reason="r"
    )
    long_reason = "withdrawn consent, letter of " + "x" * 600 + " END"
    requests.cancel(studio, olga, out["id"], long_reason)
    page = reports.record_html(studio, olga, out["id"])
    assert long_reason in page
    trail = requests.history(studio, olga, out["id"])
    texts = [requests.details_text(e["details"]) for e in trail]
    assert any("individual ids: 00000010" in t for t in texts)


def _second_adapter(studio, report: dict) -> int:
    """A stored adapter row with its report (the files are not needed to compare reports)."""
    first = studio.adapter_row(studio.adapter_choices()[0][1])
    with studio.db.transaction() as s:
        row = storage.Adapter(
            method="po_gd",
            config=dict(first.config),
            base_fingerprint=first.base_fingerprint,
            path=first.path,
            sha256="0" * 64,
            size_bytes=1,
        )
        s.add(row)
        s.flush()
        storage.add_metric_report(s, report, adapter_id=row.id, method="po_gd")
        return row.id


def test_reports_compare_several_adapters_with_zero_bars_and_training_curves(studio):
    import json as jsonlib

    aude = who(studio, "aude")
    first = studio.adapter_choices()[0][1]
    other = {
        "forget": {"em": 0.0, "ape": 0.0},
        "nonprivate": {"em": 0.094},
        "retain": {"em": 0.87},
        "general": {"pope_acc": 0.95, "mme_acc": 0.78},
        "training": {
            "history": [
                {"epoch": 1, "forget_nll": 2.0, "retain_nll": 0.5},
                {"epoch": 2, "forget_nll": 4.0, "retain_nll": 0.6},
            ]
        },
    }
    second = _second_adapter(studio, other)
    columns, rows = reports.compare_rows(studio, aude, [first, second])
    assert columns[2:4] == [f"#{first} cagul", f"#{second} po_gd"] and columns[-1] == "goal"
    by = {r[0]: r for r in rows}
    assert by["non-private EM ↑"][2:4] == ["1.000", "0.094"]
    assert by["verdict"][2:4] == ["verified", "needs_review"]
    assert set(reports.reports_bundle(studio, aude, [first, second])) == {str(first), str(second)}
    fig = jsonlib.loads(reports.reports_figure(studio, aude, [first, second]).to_json())
    bars = [t for t in fig["data"] if t["name"].endswith("po_gd")][0]
    assert bars["y"][0] == 0.0 and bars["texttemplate"] == "%{y:.2f}"  # a 0 is drawn as 0.00
    curves = jsonlib.loads(reports.training_figure(studio, aude, [first, second]).to_json())
    names = {t["name"] for t in curves["data"]}
    assert f"#{second} po_gd: forget_nll" in names and f"#{first} cagul: bce" in names
    # LM passes are counts in the tens: their own axis, so the losses are not flattened to 0.
    axes = {t["name"].split(": ")[1]: t.get("yaxis", "y") for t in curves["data"]}
    assert axes["forget_nll"] == "y" and axes["lm_passes"] == "y2"
    assert reports.training_figure(studio, aude, [_second_adapter(studio, {"forget": {}})]) is None
    bench = reports.benchmark_tables()
    if bench:  # the committed benchmark: every bar carries its value, zeros included
        traces = jsonlib.loads(bench["figure"].to_json())["data"]
        assert all(t.get("texttemplate") == "%{y:.2f}" for t in traces if t["type"] == "bar")
        assert jsonlib.loads(bench["sweeps"].to_json())["data"]
