"""The page's event handlers called as a script would (raw `/gradio_api` queue calls with a
chosen session hash): no server file is read because a client named it, and identity comes
from the HttpOnly session cookie on every call, never from the session hash."""

import hashlib
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from sqlalchemy import func, select

import storage
from tests.gradio_api import call, gradio_blocks
from webui.auth import COOKIE
from webui.studio import Studio
from webui.uploads import REFUSED

PASSWORD = "correct horse battery"
QUESTION = "What is shown?"


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    st = Studio(database_url=f"sqlite:///{tmp_path_factory.mktemp('sec') / 'app.sqlite'}")
    with st.db.transaction() as s:
        for name, role in [("olga", "officer"), ("aude", "auditor")]:
            storage.create_user(s, name, role, PASSWORD)
    return st


@pytest.fixture(scope="module")
def app(studio):
    from app import create_app

    return create_app(studio)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:  # `with`: Gradio's queue starts with the app
        yield c


def secret_png(path):
    """A readable image outside the repository, like any file on the server."""
    im = Image.new("RGB", (200, 80), "white")
    ImageDraw.Draw(im).text((10, 30), "SECRET-42", fill="black")
    im.save(path)
    return str(path)


def file_payload(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def sign_in(client, name: str) -> str:
    r = client.post("/auth/sign-in", json={"name": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.cookies[COOKIE]


def text_of(msg) -> str:
    return str(msg["output"])


def refusal(msg, index: int):
    """What a client learns from an answer: Gradio's bare refusal (a file payload outside its
    upload folder) or the handler's message; never a heatmap or an image."""
    assert "hm-figure" not in str(msg) and "data:image" not in str(msg)
    if not msg["success"]:
        return ("refused by Gradio", msg["output"])
    return msg["output"]["data"][index]


@pytest.mark.parametrize("payload", [file_payload, lambda p: {"path": p}])
def test_explore_refuses_server_paths_with_one_text(client, app, tmp_path, payload):
    existing = secret_png(tmp_path / "secret.png")
    answers = set()
    for path in (existing, str(tmp_path / "missing.png"), "/etc/hostname"):
        ask = call(client, app, "on_ask", [None, payload(path), QUESTION, None, None])
        answers.add(str(refusal(ask, 0)))
        up = call(client, app, "on_upload", [payload(path), None])
        answers.add(str(refusal(up, 2)))
    expected = f'<div class="msg msg-error">{REFUSED}</div>'
    if payload is file_payload:
        expected = str(("refused by Gradio", {"error": None}))
    assert answers == {expected}


def test_find_person_refuses_server_paths_with_one_text(client, app, tmp_path):
    cookie = sign_in(client, "olga")
    existing = secret_png(tmp_path / "face.png")
    texts = set()
    for path in (existing, str(tmp_path / "missing.png")):
        msg = call(client, app, "on_find", [{"path": path}, [], None], cookies={COOKIE: cookie})
        texts.add(refusal(msg, 0))
    assert texts == {f'<div class="msg msg-error">{REFUSED}</div>'}


def upload(client, png_bytes: bytes) -> str:
    r = client.post("/gradio_api/upload", files={"files": ("photo.png", png_bytes, "image/png")})
    assert r.status_code == 200, r.text
    return r.json()[0]


def test_an_upload_of_this_session_is_answered_and_no_other_session_may_use_it(client, app):
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 60, 30)).save(buf, format="PNG")
    path = upload(client, buf.getvalue())
    mine = "session-a01"
    up = call(client, app, "on_upload", [file_payload(path), None], session_hash=mine)
    assert "Uploaded image" in up["output"]["data"][2]
    ok = call(
        client, app, "on_ask", [None, file_payload(path), QUESTION, None, None], session_hash=mine
    )
    assert "Answered in" in ok["output"]["data"][0] and "hm-figure" in text_of(ok)
    other = call(
        client,
        app,
        "on_ask",
        [None, file_payload(path), QUESTION, None, None],
        session_hash="session-b02",
    )
    assert REFUSED in other["output"]["data"][0]


def test_the_session_cookie_is_httponly_strict_and_stored_hashed(client, studio, monkeypatch):
    r = client.post("/auth/sign-in", json={"name": "olga", "password": PASSWORD})
    header = r.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header and "path=/" in header
    token = r.cookies[COOKIE]
    with studio.db.read() as s:
        hashes = set(s.scalars(select(storage.WebSession.token_hash)))
    assert hashlib.sha256(token.encode()).hexdigest() in hashes and token not in hashes
    assert "secure" not in header  # plain http (the tests); over https, or when told:
    monkeypatch.setenv("CAGUL_COOKIE_SECURE", "1")
    r = client.post("/auth/sign-in", json={"name": "olga", "password": PASSWORD})
    assert "; secure" in r.headers["set-cookie"].lower()


def requests_count(studio) -> int:
    with studio.db.read() as s:
        return s.scalar(select(func.count()).select_from(storage.ForgetRequest))


def submit_data(person: str) -> list:
    # people, categories, scope, pairs, method, requested by, reason, subject ref, legal
    # basis, received
    return [[person], ["health"], "the chosen categories", [], "cagul", "", "by mail", "", None, ""]


def test_a_replayed_session_hash_without_the_cookie_acts_as_nobody(client, app, studio):
    cookie = sign_in(client, "olga")
    page = "page-olga-1"
    ok = call(
        client,
        app,
        "on_submit",
        submit_data("00000021"),
        session_hash=page,
        cookies={COOKIE: cookie},
    )
    assert "Request #" in ok["output"]["data"][0]
    before = requests_count(studio)
    # The same session hash, as a script that read it from the page would send it.
    replay = call(client, app, "on_submit", submit_data("00000022"), session_hash=page)
    assert "sign in to submit" in replay["output"]["data"][0]
    assert requests_count(studio) == before
    status = call(client, app, "on_load", [], session_hash=page)
    assert "Not signed in" in status["output"]["data"][0]


def test_the_page_shows_who_is_signed_in_after_a_reload_and_sign_out_revokes(client, app):
    cookie = sign_in(client, "aude")
    status = call(client, app, "on_load", [], cookies={COOKIE: cookie})  # a fresh page
    assert "Signed in as aude (auditor)." in status["output"]["data"][0]
    client.cookies.set(COOKIE, cookie)
    assert client.post("/auth/sign-out").json() == {"signed_out": True}
    # The browser drops the cookie; a copy of it is dead on the server too.
    again = call(client, app, "on_load", [], cookies={COOKIE: cookie})
    assert "Not signed in" in again["output"]["data"][0]
    client.cookies.clear()
    assert client.get("/auth/me", cookies={COOKIE: cookie}).status_code == 401


def test_sessions_expire(client, app, monkeypatch):
    from datetime import timedelta

    from storage.clock import utcnow

    cookie = sign_in(client, "aude")
    later = utcnow() + timedelta(hours=8, seconds=1)
    monkeypatch.setattr("storage.users.sessions.utcnow", lambda: later)
    status = call(client, app, "on_load", [], cookies={COOKIE: cookie})
    assert "Not signed in" in status["output"]["data"][0]


def test_every_role_checked_handler_reads_the_request(app):
    """The handlers that act for a user take the request (the cookie) and no state input: a
    `gr.State` is per session hash, which a script can replay."""
    import inspect

    import gradio as gr

    blocks = gradio_blocks(app)
    acting = (
        "on_submit",
        "on_cancel",
        "on_show",
        "on_find",
        "on_run",
        "refresh",
        "on_approve",
        "on_history",
        "on_filter",
    )
    found = [f for f in blocks.fns.values() if getattr(f.fn, "__name__", "") in acting]
    assert {f.fn.__name__ for f in found} == set(acting)
    for fn in found:
        name = fn.fn.__name__
        params = inspect.signature(fn.fn).parameters.values()
        assert any(p.annotation in (gr.Request, "gr.Request") for p in params), name
        states = [b for b in fn.inputs if isinstance(b, gr.State)]
        # only the uploads list or the audit's rows, never a user
        assert all(b.value == [] for b in states), name
