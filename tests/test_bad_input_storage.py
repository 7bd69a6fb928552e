"""Issue 24, storage and queue side: the same typed error on SQLite and PostgreSQL, nothing
stored; categories always checked; tokens expire and can be revoked; blank passwords refused;
errors that cannot succeed on a retry fail the job at once; payload paths stay in their root."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

import storage
from jobs import UnlearnSettings, WorkerConfig, make_unlearn_handler, submit_forget_request
from jobs.paths import PayloadPathError
from jobs.runner import permanent_cause
from jobs.worker import Worker
from storage import AuditEvent, ForgetRequest, Job, User
from storage.limits import (
    MAX_ACTOR_CHARS,
    MAX_IDS,
    MAX_NOTE_CHARS,
    MAX_REQUESTER_CHARS,
    storable_text,
)
from tests.jobkinds import FakeTrainer

pytest_plugins = ["tests.dbutil"]

KNOWN = {"p1", "p2", "p3"}
FAST = WorkerConfig(
    heartbeat_s=0.1, stale_after_s=1.0, poll_s=0.05, backoff_s=0.0, progress_every_s=0.0
)


def _counts(db) -> tuple[int, ...]:
    with db.read() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(m)) for m in (ForgetRequest, Job, AuditEvent)
        )


def _request(**kw) -> dict:
    args = dict(
        requester="Jane Doe", individual_ids=["p1"], categories=["health"], known_individuals=KNOWN
    )
    args.update(kw)
    return args


# ---- item 4: the same limits on every backend ---------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requester": "x" * (MAX_REQUESTER_CHARS + 1)}, "requester has 257 characters"),
        ({"requester": "Jane\x00Doe"}, "requester contains a NUL"),
        ({"requester": "Jane \ud800"}, "not valid Unicode"),
        ({"requester": 42}, "requester must be text"),
        ({"actor": "a" * (MAX_ACTOR_CHARS + 1)}, "actor has 129 characters"),
        ({"actor": "user:\x00"}, "actor contains a NUL"),
        ({"note": "n" * (MAX_NOTE_CHARS + 1)}, "note has 10,001 characters"),
        ({"note": "a\x00b"}, "note contains a NUL"),
        ({"individual_ids": [f"p{i}" for i in range(10_000)]}, "at most 1,000"),
        ({"individual_ids": ["p1\x00"]}, "NUL"),
        ({"individual_ids": ["p" * 129]}, "at most 128"),
        ({"individual_ids": [["p1"]]}, "must be text, not list"),
        ({"individual_ids": "p1"}, "must be a list of strings"),
        ({"pair_ids": [f"q{i}" for i in range(MAX_IDS + 1)]}, "pair_ids has 1,001 entries"),
        ({"categories": [3]}, "must be text"),
        ({"categories": ["health\x00"]}, "NUL"),
    ],
)
def test_limits_are_the_same_on_every_backend(storage_db, kwargs, message):
    before = _counts(storage_db)
    for submit in (storage.create_forget_request, submit_forget_request):
        with (
            pytest.raises(storage.InvalidRequestError, match=message),
            storage_db.transaction() as s,
        ):
            submit(s, **_request(**kwargs))
    assert _counts(storage_db) == before


def test_values_at_the_limits_are_stored(storage_db):
    with storage_db.transaction() as s:
        req = storage.create_forget_request(
            s,
            **_request(
                requester="r" * MAX_REQUESTER_CHARS,
                note="n" * MAX_NOTE_CHARS,
                actor="a" * MAX_ACTOR_CHARS,
                individual_ids=[7, "p2"],
                known_individuals={"7", "p2"},
            ),
        )
    with storage_db.read() as s:
        stored = s.get(ForgetRequest, req.id)
        assert len(stored.requester) == MAX_REQUESTER_CHARS and len(stored.note) == MAX_NOTE_CHARS
        assert stored.individual_ids == ["7", "p2"]


def test_audit_events_check_their_columns(storage_db):
    before = _counts(storage_db)
    for kwargs, message in (
        ({"actor": "a" * 200}, "actor has 200"),
        ({"action": "x" * 65}, "action has 65"),
        ({"target_type": "t" * 33}, "target_type has 33"),
        ({"target_id": "i" * 65}, "target_id has 65"),
    ):
        args = {"actor": "system", "action": "x.y", "target_type": "t", "target_id": 1, **kwargs}
        with pytest.raises(storage.InvalidValueError, match=message), storage_db.transaction() as s:
            storage.record_event(s, **args)
    assert _counts(storage_db) == before


def test_nul_bytes_in_json_details_and_job_errors_are_stored_the_same(storage_db):
    with storage_db.transaction() as s:
        event = storage.record_event(
            s, actor="system", action="x.y", target_type="t", details={"k\x00": "v\x00"}
        )
    with storage_db.read() as s:
        assert s.get(AuditEvent, event.id).details == {"k\ufffd": "v\ufffd"}
    assert storable_text("a\x00b\ud800", 3) == "\ufffdb?"


# ---- item 5: categories are always checked, case-insensitively -----------------------------


@pytest.mark.parametrize("known", [None, {"health", "criminal"}, {"Health", "Criminal"}])
def test_unknown_categories_are_refused_with_or_without_known_categories(storage_db, known):
    before = _counts(storage_db)
    with pytest.raises(storage.UnknownCategoryError, match="bogus"), storage_db.transaction() as s:
        submit_forget_request(s, **_request(categories=["bogus"], known_categories=known))
    assert _counts(storage_db) == before


def test_categories_are_lower_cased_and_deduplicated(storage_db):
    with storage_db.transaction() as s:
        req = storage.create_forget_request(
            s, **_request(categories=["Health", "health", " HEALTH ", "Criminal"])
        )
    with storage_db.read() as s:
        assert s.get(ForgetRequest, req.id).categories == ["health", "criminal"]
    before = _counts(storage_db)
    # "Health" is "health": the duplicate check sees the same pair.
    with pytest.raises(storage.DuplicateActiveRequestError), storage_db.transaction() as s:
        storage.create_forget_request(s, **_request(categories=["HEALTH"]))
    assert _counts(storage_db) == before


def test_a_predicate_for_known_categories_gets_lower_case(storage_db):
    seen = []
    with storage_db.transaction() as s:
        storage.create_forget_request(
            s, **_request(categories=["Health"], known_categories=lambda c: seen.append(c) or True)
        )
    assert seen == ["health"]


# ---- item 10: passwords and tokens -----------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "error", "message"),
    [
        (" " * 8, storage.WeakPasswordError, "blank"),
        ("\t\n " * 4, storage.WeakPasswordError, "blank"),
        ("short", storage.WeakPasswordError, "at least 8"),
        ("x" * 1025, storage.InvalidUserValueError, "at most 1,024"),
        ("password\x00", storage.InvalidUserValueError, "NUL"),
        (12345678, storage.InvalidUserValueError, "must be text"),
    ],
)
def test_bad_passwords_are_refused(storage_db, password, error, message):
    with pytest.raises(error, match=message), storage_db.transaction() as s:
        storage.create_user(s, "bob", "viewer", password)
    with storage_db.read() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 0


def test_user_names_are_checked_on_every_backend(storage_db):
    for name, message in (("n" * 129, "at most 128"), ("bo\x00b", "NUL")):
        with (
            pytest.raises(storage.InvalidUserValueError, match=message),
            storage_db.transaction() as s,
        ):
            storage.create_user(s, name, "viewer", "long enough")
    with storage_db.transaction() as s:
        assert storage.authenticate(s, "n" * 5000, "long enough") is None
        assert storage.authenticate(s, "bo\x00b", "long enough") is None


def test_tokens_expire_and_can_be_revoked(storage_db, monkeypatch):
    with storage_db.transaction() as s:
        user = storage.create_user(s, "alice", "officer", "correct horse")
        token = storage.issue_token(s, user)
    with storage_db.transaction() as s:
        assert storage.user_for_token(s, token).name == "alice"
        s.get(User, user.id).token_created_at -= timedelta(days=31)  # default lifetime: 30 days
    with storage_db.transaction() as s:
        assert storage.user_for_token(s, token) is None
        monkeypatch.setenv("CAGUL_TOKEN_DAYS", "60")
        assert storage.token_lifetime() == timedelta(days=60)
        assert storage.user_for_token(s, token).name == "alice"
        assert storage.revoke_token(s, s.get(User, user.id), actor="user:alice") is True
    with storage_db.transaction() as s:
        assert storage.user_for_token(s, token) is None
        assert storage.revoke_token(s, s.get(User, user.id)) is False
        actions = [e.action for e in storage.events_for(s, "user", user.id)]
    assert actions[-1] == "user.token_revoked"
    for junk in ("", None, 42, "x" * 10_000, "cgl_\x00", "cgl_\ud800"):
        with storage_db.read() as s:
            assert storage.user_for_token(s, junk) is None


@pytest.mark.parametrize("days", ["0", "-1", "soon", "99999"])
def test_a_bad_token_lifetime_setting_is_an_error(monkeypatch, days):
    monkeypatch.setenv("CAGUL_TOKEN_DAYS", days)
    with pytest.raises(storage.UserError, match="CAGUL_TOKEN_DAYS"):
        storage.token_lifetime()


# ---- item 6: errors that cannot succeed on a retry are permanent --------------------------


class RaisingTrainer(FakeTrainer):
    def __init__(self, exc: BaseException):
        super().__init__(steps=1, step_s=0.0)
        self.exc = exc
        self.calls = 0

    def __call__(self, **kw):
        self.calls += 1
        raise self.exc


def _run_job(storage_db, tmp_path, trainer, payload_dirs=None, **settings):
    with storage_db.transaction() as s:
        request, job = submit_forget_request(s, **_request(), **(payload_dirs or {}))
    settings = UnlearnSettings(
        artifacts_root=tmp_path / "art", model_dir="m", data_dir="d", **settings
    )
    handler = make_unlearn_handler(trainer=trainer, settings=settings)
    with Worker(storage_db, FAST, gpu_mem_mb=0, handlers={"unlearn": handler}) as worker:
        outcome = worker.run_one()
    with storage_db.read() as s:
        return outcome, s.get(Job, job.id), s.get(ForgetRequest, request.id)


def test_a_missing_model_fails_the_job_at_once(storage_db, tmp_path):
    from cagul.models.base import UnsupportedModelError

    trainer = RaisingTrainer(UnsupportedModelError("/nowhere is not a directory"))
    outcome, job, request = _run_job(storage_db, tmp_path, trainer)
    assert (outcome.status, job.status, job.attempts, trainer.calls) == ("failed", "failed", 1, 1)
    assert "not a directory" in job.error and request.status == "failed"


def test_a_transient_error_is_still_retried(storage_db, tmp_path):
    outcome, job, _ = _run_job(storage_db, tmp_path, RaisingTrainer(RuntimeError("CUDA hiccup")))
    assert (outcome.status, job.status) == ("queued", "queued")


@pytest.mark.parametrize(
    ("exc", "permanent"),
    [
        (ValueError("no individuals"), True),
        (FileNotFoundError("x"), True),
        (RuntimeError("out of memory"), False),
        (ConnectionError("db"), False),
    ],
)
def test_permanent_cause(exc, permanent):
    assert permanent_cause(exc) is permanent


def test_data_errors_are_permanent():
    from cagul.data import SchemaError

    assert permanent_cause(SchemaError("bad full.json"))


# ---- item 7: payload paths stay inside the input root ---------------------------------------


def test_payload_paths_outside_the_root_are_refused_at_submission(
    storage_db, tmp_path, monkeypatch
):
    monkeypatch.setenv("CAGUL_INPUT_ROOT", str(tmp_path / "root"))
    (tmp_path / "root" / "models" / "m").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    before = _counts(storage_db)
    for dirs, message in (
        ({"model_dir": "../elsewhere"}, "outside the input root"),
        ({"model_dir": str(tmp_path / "elsewhere")}, "outside the input root"),
        ({"data_dir": "models/none"}, "not a directory"),
    ):
        with (
            pytest.raises(storage.InvalidRequestError, match=message),
            storage_db.transaction() as s,
        ):
            submit_forget_request(s, **_request(), **dirs)
    assert _counts(storage_db) == before
    with storage_db.transaction() as s:
        submit_forget_request(s, **_request(), model_dir="models/m")


def test_a_forged_payload_path_fails_the_job_before_training(storage_db, tmp_path):
    root = tmp_path / "root"
    (root / "m").mkdir(parents=True)
    trainer = RaisingTrainer(AssertionError("must not train"))
    with storage_db.transaction() as s:
        request, job = submit_forget_request(s, **_request())
        s.get(Job, job.id).payload = {"request_id": request.id, "model_dir": "../../etc"}
    settings = UnlearnSettings(artifacts_root=tmp_path / "art", input_root=root)
    handler = make_unlearn_handler(trainer=trainer, settings=settings)
    with Worker(storage_db, FAST, gpu_mem_mb=0, handlers={"unlearn": handler}) as worker:
        outcome = worker.run_one()
    assert outcome.status == "failed" and trainer.calls == 0
    assert "outside the input root" in outcome.error
    assert not (tmp_path / "art" / "adapters").exists() or not any(
        (tmp_path / "art" / "adapters").iterdir()
    )


def test_checked_paths_resolve_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "m").mkdir(parents=True)
    (root / "d").mkdir()
    settings = UnlearnSettings(input_root=root, model_dir="configured")
    assert settings.checked_paths({"data_dir": "d"}) == ("configured", str((root / "d").resolve()))
    (root / "link").symlink_to(tmp_path)
    for bad in ("link", "/", ["m"], "", "m\x00"):
        with pytest.raises(PayloadPathError):
            settings.checked_paths({"model_dir": bad})


def test_a_worker_id_the_audit_log_cannot_hold_is_refused_at_start(storage_db):
    from jobs import WorkerConfigError

    for bad in ("w" * 101, "w\x00"):
        with pytest.raises(WorkerConfigError, match="worker id"):
            Worker(storage_db, FAST, worker_id=bad, gpu_mem_mb=0, handlers={})


def test_several_input_roots_may_be_configured(tmp_path, monkeypatch):
    import os

    from jobs.paths import checked_payload_path, input_roots

    (tmp_path / "models" / "m").mkdir(parents=True)
    (tmp_path / "data" / "d").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    monkeypatch.setenv("CAGUL_INPUT_ROOT", f"{tmp_path / 'models'}{os.pathsep}{tmp_path / 'data'}")
    roots = input_roots()
    assert checked_payload_path(str(tmp_path / "data" / "d"), "data_dir", roots)
    assert checked_payload_path("m", "model_dir", roots) == str(tmp_path / "models" / "m")
    with pytest.raises(PayloadPathError, match="set CAGUL_INPUT_ROOT"):
        checked_payload_path(str(tmp_path / "other"), "model_dir", roots)
