"""Sign-in throttling: a name (and a client address) locks after repeated failures, with a
growing lock, a clear message and a 429 on the route; failures are logged against the real
account when it exists and as an unknown name otherwise."""

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

import storage
from storage.clock import utcnow
from storage.users import sessions
from webui import auth
from webui.auth import NotSignedInError, ThrottledError

PASSWORD = "correct horse battery"


@pytest.fixture
def db(tmp_path):
    database = storage.connect(f"sqlite:///{tmp_path / 'throttle.sqlite'}", upgrade=True)
    with database.transaction() as s:
        for name in ("tess", "tom"):
            storage.create_user(s, name, "officer", PASSWORD)
    yield database
    database.dispose()


def fail(db, name, client="10.0.0.1"):
    with pytest.raises(NotSignedInError) as caught:
        auth.sign_in(db, name, "wrong password!", client=client)
    return caught.value


def unlock(db):
    """Let every lock run out (as time passing would)."""
    with db.transaction() as s:
        s.execute(update(storage.SignInThrottle).values(locked_until=utcnow() - timedelta(1)))


def test_an_account_locks_after_five_failures_even_for_the_right_password(db):
    for _ in range(4):
        assert not isinstance(fail(db, "tess"), ThrottledError)
    fifth = fail(db, "tess")
    assert isinstance(fifth, ThrottledError) and "too many failed sign-ins" in str(fifth)
    assert 1 <= fifth.retry_after_s <= sessions.BASE_LOCK_S
    with pytest.raises(ThrottledError, match="try again in"):
        auth.sign_in(db, "tess", PASSWORD, client="10.0.0.2")  # another address: still locked
    assert auth.sign_in(db, "tom", PASSWORD, client="10.0.0.1").name == "tom"  # others are not


def test_the_lock_grows_and_a_success_clears_it(db):
    for _ in range(5):
        fail(db, "tess")
    unlock(db)
    sixth = fail(db, "tess")  # one more failure after the lock: twice as long
    assert isinstance(sixth, ThrottledError)
    assert sessions.BASE_LOCK_S < sixth.retry_after_s <= 2 * sessions.BASE_LOCK_S
    unlock(db)
    assert auth.sign_in(db, "tess", PASSWORD, client="10.0.0.1").name == "tess"
    with db.read() as s:
        assert s.get(storage.SignInThrottle, sessions.account_key("tess")) is None
    assert not isinstance(fail(db, "tess"), ThrottledError)  # counting starts again


def test_one_address_trying_many_names_is_locked(db):
    for i in range(sessions.CLIENT_THRESHOLD - 1):
        assert not isinstance(fail(db, f"guess{i}", client="10.9.9.9"), ThrottledError)
    assert isinstance(fail(db, "guess-last", client="10.9.9.9"), ThrottledError)
    with pytest.raises(ThrottledError):
        auth.sign_in(db, "tom", PASSWORD, client="10.9.9.9")
    assert auth.sign_in(db, "tom", PASSWORD, client="10.1.1.1").name == "tom"


def test_failures_are_logged_against_the_real_account_or_as_unknown(db):
    fail(db, "tess")
    fail(db, "my-secret-password-typed-as-name")
    with db.read() as s:
        events = s.scalars(
            select(storage.AuditEvent).where(storage.AuditEvent.action == "user.sign_in_failed")
        ).all()
        tess = s.scalar(select(storage.User).where(storage.User.name == "tess"))
        actors = [(e.actor, e.target_id) for e in events]
        keys = list(s.scalars(select(storage.SignInThrottle.key)))
    assert actors == [("user:tess", str(tess.id)), ("unknown-user", None)]
    assert not any("secret" in k for k in keys)  # typed names are stored hashed only


def test_the_sign_in_route_answers_429_with_retry_after(tmp_path):
    from app import create_app
    from webui.studio import Studio

    studio = Studio(database_url=f"sqlite:///{tmp_path / 'route.sqlite'}")
    with studio.db.transaction() as s:
        storage.create_user(s, "tess", "officer", PASSWORD)
    client = TestClient(create_app(studio))
    codes = [
        client.post("/auth/sign-in", json={"name": "tess", "password": "nope-nope"})
        for _ in range(5)
    ]
    assert [r.status_code for r in codes] == [401] * 4 + [429]
    locked = client.post("/auth/sign-in", json={"name": "tess", "password": PASSWORD})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    assert locked.json()["error"]["code"] == "too_many_attempts"
    assert "too many failed sign-ins" in locked.json()["error"]["message"]
    assert "set-cookie" not in locked.headers
