"""Storage: migrations, engine settings, forget-request validation, users, adapters, reports."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import StatementError

import storage
from jobs import submit_forget_request
from storage import (
    Adapter,
    AuditEvent,
    ForgetRequest,
    Job,
    MetricReport,
    User,
)

pytest_plugins = ["tests.dbutil"]

KNOWN = {"p1", "p2", "p3"}
TABLES = ("users", "forget_requests", "jobs", "adapters", "metric_reports", "audit_events")


def _counts(storage_db: storage.Database) -> dict[str, int]:
    with storage_db.read() as s:
        return {
            model.__tablename__: s.scalar(select(func.count()).select_from(model))
            for model in (User, ForgetRequest, Job, Adapter, MetricReport, AuditEvent)
        }


# -- migrations ------------------------------------------------------------------------------


def _check_fresh_upgrade(url: str) -> None:
    assert storage.current_revision(url) is None
    assert storage.upgrade(url) == storage.head_revision() == "0004"
    assert storage.upgrade(url) == "0004"  # a second start changes nothing
    engine = storage.make_engine(url)
    try:
        assert set(TABLES) <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), storage.Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
    finally:
        engine.dispose()


def test_sqlite_upgrade_from_empty(tmp_path):
    _check_fresh_upgrade(f"sqlite:///{tmp_path / 'sub' / 'new.sqlite'}")


@pytest.mark.postgres
def test_postgres_upgrade_from_empty(pg_fresh_url):
    _check_fresh_upgrade(pg_fresh_url)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_concurrent_upgrades_agree(backend, tmp_path, request):
    """Several processes start at once and all migrate; the lock makes that safe."""

    def run(url: str) -> None:
        results, errors = [], []

        def one() -> None:
            try:
                results.append(storage.upgrade(url))
            except Exception as exc:  # collected and reported below
                errors.append(exc)

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and results == ["0004"] * 4

    if backend == "sqlite":
        run(f"sqlite:///{tmp_path / 'race.sqlite'}")
    else:
        run(request.getfixturevalue("pg_fresh_url"))


def test_sqlite_connection_settings(tmp_path):
    storage_db = storage.connect(f"sqlite:///{tmp_path / 'x.sqlite'}", upgrade=True)
    with storage_db.engine.connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == storage.engine.SQLITE_BUSY_TIMEOUT_MS
    storage_db.dispose()


def test_url_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("CAGUL_DB", str(tmp_path / "a.sqlite"))
    assert storage.resolve_url() == f"sqlite:///{tmp_path / 'a.sqlite'}"
    monkeypatch.delenv("CAGUL_DB")
    assert storage.resolve_url().endswith(".cagul/cagul.sqlite")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h:5432/d")
    assert storage.resolve_url() == "postgresql+psycopg://u@h:5432/d"
    assert storage.resolve_url("postgresql://x/y") == "postgresql+psycopg://x/y"


def test_times_are_utc_and_db_clock_works(storage_db):
    with storage_db.transaction() as s:
        now, later = s.execute(select(storage.db_now(), storage.db_now(60))).one()
        assert now.tzinfo is not None and timedelta(seconds=59) < later - now < timedelta(61)
        with pytest.raises(StatementError) as info:
            s.add(AuditEvent(actor="t", action="x", target_type="t", at=datetime(2020, 1, 1)))
            s.flush()
        assert isinstance(info.value.orig, storage.NaiveDatetimeError)


# -- forget requests -------------------------------------------------------------------------


def _submit(s, **kw):
    args = dict(
        requester="Jane Doe", individual_ids=["p1"], categories=["health"], known_individuals=KNOWN
    )
    args.update(kw)
    return storage.create_forget_request(s, **args)


def test_request_is_stored_with_audit_event(storage_db):
    with storage_db.transaction() as s:
        req = _submit(s, individual_ids=["p1", " p2 ", "p1"], categories=["health", "criminal"])
    with storage_db.read() as s:
        stored = s.get(ForgetRequest, req.id)
        assert stored.individual_ids == ["p1", "p2"]
        assert stored.categories == ["health", "criminal"]
        assert stored.status == "submitted" and stored.created_at.tzinfo is not None
        (event,) = storage.events_for(s, "request", req.id)
        assert event.action == "request.created" and event.details["requester"] == "Jane Doe"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"individual_ids": ["p1", "nobody"]}, storage.UnknownIndividualError),
        ({"categories": []}, storage.EmptyCategoriesError),
        ({"pair_ids": []}, storage.EmptyCategoriesError),
        ({"individual_ids": []}, storage.InvalidRequestError),
        ({"requester": "  "}, storage.InvalidRequestError),
        ({"method": "magic"}, storage.InvalidRequestError),
        (
            {"categories": ["astrology"], "known_categories": {"health"}},
            storage.UnknownCategoryError,
        ),
        ({"known_individuals": lambda i: i.startswith("q")}, storage.UnknownIndividualError),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_stored(storage_db, kwargs, error):
    before = _counts(storage_db)
    for submit in (
        _submit,
        lambda s, **kw: submit_forget_request(
            s,
            **{
                "requester": "Jane Doe",
                "individual_ids": ["p1"],
                "categories": ["health"],
                "known_individuals": KNOWN,
                **kw,
            },
        ),
    ):
        with pytest.raises(error) as info, storage_db.transaction() as s:
            submit(s, **kwargs)
        assert isinstance(info.value, storage.RequestRefused) and str(info.value)
    assert _counts(storage_db) == before


def test_duplicate_active_request_is_refused(storage_db):
    with storage_db.transaction() as s:
        first = _submit(s, individual_ids=["p1", "p2"], categories=["health", "criminal"])
    before = _counts(storage_db)
    for kwargs in (
        {"individual_ids": ["p2"], "categories": ["criminal"]},  # same pair
        {"individual_ids": ["p1"], "categories": None},  # all of p1 covers p1's health
        {"individual_ids": ["p2"], "pair_ids": ["health/q3"]},  # a pair inside a category
    ):
        with (
            pytest.raises(storage.DuplicateActiveRequestError) as info,
            storage_db.transaction() as s,
        ):
            _submit(s, **kwargs)
        assert info.value.request_id == first.id
    assert _counts(storage_db) == before
    with storage_db.transaction() as s:  # other pairs are fine
        _submit(s, individual_ids=["p3"], categories=None)
        _submit(s, individual_ids=["p1"], pair_ids=["q9"], categories=None)
    with (
        storage_db.transaction() as s
    ):  # once the first request has its verdict, it no longer blocks
        s.get(ForgetRequest, first.id).status = "verified"
    with storage_db.transaction() as s:
        _submit(s, individual_ids=["p2"], categories=["criminal"])


# -- users -----------------------------------------------------------------------------------


def test_users_passwords_and_tokens(storage_db):
    with storage_db.transaction() as s:
        user = storage.create_user(s, "alice", "officer", "correct horse")
        token = storage.issue_token(s, user)
        for bad, error in (
            (("alice", "viewer", "another pw"), storage.UserExistsError),
            (("bob", "superuser", "another pw"), storage.InvalidRoleError),
            (("bob", "viewer", "short"), storage.WeakPasswordError),
        ):
            with pytest.raises(error):
                storage.create_user(s, *bad)
    with storage_db.transaction() as s:
        stored = s.get(User, user.id)
        assert stored.password_hash.startswith("$argon2id$")
        assert token not in stored.token_hash and len(stored.token_hash) == 64
        assert storage.authenticate(s, "alice", "correct horse").id == user.id
        assert storage.authenticate(s, "alice", "wrong") is None
        assert storage.authenticate(s, "nobody", "correct horse") is None
        assert storage.user_for_token(s, token).name == "alice"
        assert storage.user_for_token(s, token + "x") is None
        stored.disabled = True
        assert storage.user_for_token(s, token) is None


# -- adapters and reports --------------------------------------------------------------------


def test_verify_adapter_detects_tampering(tmp_path):
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / storage.ADAPTER_CONFIG).write_text("{}")
    weights = folder / storage.ADAPTER_WEIGHTS
    weights.write_bytes(b"weights")
    adapter = Adapter(
        id=1,
        path=str(folder),
        sha256=storage.sha256_file(weights),
        size_bytes=7,
        base_fingerprint="base-a",
    )
    assert storage.verify_adapter(adapter, base_fingerprint="base-a") == folder
    with pytest.raises(storage.AdapterIntegrityError, match="trained on base"):
        storage.verify_adapter(adapter, base_fingerprint="base-b")
    weights.write_bytes(b"Weights")
    with pytest.raises(storage.AdapterIntegrityError, match="sha256"):
        storage.verify_adapter(adapter)
    weights.unlink()
    with pytest.raises(storage.AdapterIntegrityError, match="missing"):
        storage.verify_adapter(adapter)


def test_metric_report_headline_columns(storage_db):
    report = {
        "forget": {"em": 0.04, "ape": 0.08, "rouge_l": float("nan")},
        "retain": {"rouge_l": 0.9},
        "general": {"pope_acc": True},
    }
    with storage_db.transaction() as s:
        row = storage.add_metric_report(s, report, method="cagul", passed=True)
    with storage_db.read() as s:
        row = s.get(MetricReport, row.id)
        assert (row.forget_em, row.forget_ape, row.retain_rouge_l) == (0.04, 0.08, 0.9)
        assert row.forget_rouge_l is None and row.pope_acc is None and row.mme_acc is None
        assert row.report["forget"]["em"] == 0.04
