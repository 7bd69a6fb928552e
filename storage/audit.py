"""The audit log: one append-only row per step taken on a request, job, adapter or user.

Events are added to the caller's session, so an event commits together with the change it
describes (or not at all). ``actor``, ``action``, ``target_type`` and ``target_id`` are checked
against their column sizes (:mod:`storage.limits`) first, so an over-long actor is the same
:class:`storage.errors.InvalidValueError` on SQLite and PostgreSQL; ``details`` are made
storable (:func:`storage.jsonsafe.json_safe`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.jsonsafe import json_safe
from storage.limits import (
    MAX_ACTION_CHARS,
    MAX_ACTOR_CHARS,
    MAX_TARGET_ID_CHARS,
    MAX_TARGET_TYPE_CHARS,
    check_text,
)
from storage.models import AuditEvent


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: object = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event (``actor`` like "user:alice" / "worker:host-12" / "system",
    ``action`` like "request.created") to ``session``; it commits with the session."""
    target = None if target_id is None else str(target_id)
    check_text(actor, "actor", MAX_ACTOR_CHARS)
    check_text(action, "action", MAX_ACTION_CHARS)
    check_text(target_type, "target_type", MAX_TARGET_TYPE_CHARS)
    if target is not None:
        check_text(target, "target_id", MAX_TARGET_ID_CHARS)
    event = AuditEvent(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target,
        details=json_safe(dict(details or {})),
    )
    session.add(event)
    return event


def events_for(session: Session, target_type: str, target_id: object) -> Sequence[AuditEvent]:
    """Every event about one object, oldest first."""
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.target_type == target_type, AuditEvent.target_id == str(target_id))
        .order_by(AuditEvent.id)
    )
    return session.scalars(stmt).all()
