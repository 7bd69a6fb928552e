"""Issue 31: the outcome of a forget request is signed off by a different person from its
submitter (four eyes); a self sign-off is a typed error and stores nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

import storage
from storage import AuditEvent, ForgetRequest
from storage.erasure import sign_off

pytest_plugins = ["tests.dbutil"]


def _verified_request(db) -> tuple[int, int, int]:
    """A verified request submitted by officer olga; returns (request, olga, admin ada) ids."""
    with db.transaction() as s:
        olga = storage.create_user(s, "olga", "officer", "olga-password-1")
        ada = storage.create_user(s, "ada", "admin", "ada-password-12")
        req = storage.create_forget_request(
            s,
            requester="Jane Doe",
            individual_ids=["p1"],
            categories=["health"],
            known_individuals={"p1"},
            submitted_by_id=olga.id,
        )
        req.status = "verified"
        return req.id, olga.id, ada.id


def test_the_submitter_cannot_sign_off_their_own_request(storage_db):
    rid, olga, ada = _verified_request(storage_db)
    with storage_db.read() as s:
        events = s.scalar(select(func.count()).select_from(AuditEvent))
    with (
        pytest.raises(storage.InvalidRequestError, match="signed off by someone else"),
        storage_db.transaction() as s,
    ):
        sign_off(s, rid, approver="user:olga", approver_id=olga)
    with storage_db.read() as s:
        assert s.get(ForgetRequest, rid).approved_by is None  # nothing stored
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == events
    with storage_db.transaction() as s:
        sign_off(s, rid, approver="user:ada", approver_id=ada, note="checked the verdict")
    with storage_db.read() as s:
        assert s.get(ForgetRequest, rid).approved_by == "user:ada"
