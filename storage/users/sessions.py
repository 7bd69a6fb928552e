"""Server-side web sessions and the sign-in throttle (tables of migration 0003).

A session is a 256-bit random token handed to the browser in an HttpOnly cookie; only its
sha256 is stored (like API tokens), so a copy of the database signs nobody in. A session ends
at its expiry or when it is revoked (sign-out, or the user disabled).

The throttle counts consecutive failed sign-ins per key (the typed account name, hashed so
unknown names get no row of their own that differs from a real one, and the client address).
After ``threshold`` failures the key is locked for ``BASE_LOCK_S`` seconds, doubling with each
further failure up to ``MAX_LOCK_S``; a successful sign-in clears the account's and the
address's counts.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.clock import utcnow
from storage.models import SignInThrottle, User, WebSession
from storage.security import hash_token

SESSION_PREFIX = "cgs_"
_MAX_SESSION_TOKEN_CHARS = 128
BASE_LOCK_S = 30.0
MAX_LOCK_S = 15 * 60.0
ACCOUNT_THRESHOLD = 5  # failures per account name before it locks
CLIENT_THRESHOLD = 20  # per address: several people may share one (an office behind NAT)


def start_session(session: Session, user: User, lifetime: timedelta) -> tuple[str, WebSession]:
    """A new session for ``user``: the token (give it to the browser once) and its row."""
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    row = WebSession(user_id=user.id, token_hash=hash_token(token), expires_at=utcnow() + lifetime)
    session.add(row)
    session.flush()
    return token, row


def session_user(session: Session, token: str | None) -> tuple[User, WebSession] | None:
    """The enabled user and live session of ``token``; None when unknown, expired or revoked."""
    if not isinstance(token, str) or not token or len(token) > _MAX_SESSION_TOKEN_CHARS:
        return None
    try:
        digest = hash_token(token)
    except UnicodeEncodeError:
        return None
    row = session.scalar(select(WebSession).where(WebSession.token_hash == digest))
    if row is None or row.revoked_at is not None or utcnow() >= row.expires_at:
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    return user, row


def end_session(session: Session, token: str | None) -> bool:
    """Revoke the session of ``token`` now; False when there was no live one."""
    found = session_user(session, token)
    if found is None:
        return False
    found[1].revoked_at = utcnow()
    return True


def revoke_user_sessions(session: Session, user_id: int) -> int:
    """Revoke every live session of a user (disabled, password changed); how many."""
    result = session.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount or 0


def account_key(name: str) -> str:
    """The throttle key of a typed account name (case- and blank-insensitive)."""
    return "name:" + hashlib.sha256(name.strip().lower().encode("utf-8", "replace")).hexdigest()


def client_key(address: str) -> str:
    return "client:" + hashlib.sha256(address.encode("utf-8", "replace")).hexdigest()


def locked_until(session: Session, keys: list[str]) -> datetime | None:
    """The latest lock end among ``keys`` still in the future, else None."""
    now = utcnow()
    ends = [
        r.locked_until
        for r in session.scalars(select(SignInThrottle).where(SignInThrottle.key.in_(keys)))
        if r.locked_until
    ]
    later = [e for e in ends if e > now]
    return max(later) if later else None


def record_failure(session: Session, key: str, threshold: int) -> datetime | None:
    """Count one failure for ``key``; the lock end when it is now locked, else None."""
    row = session.get(SignInThrottle, key)
    if row is None:
        row = SignInThrottle(key=key, failures=0)
        session.add(row)
    row.failures += 1
    row.updated_at = utcnow()
    over = row.failures - threshold
    if over >= 0:
        seconds = min(BASE_LOCK_S * 2**over, MAX_LOCK_S)
        row.locked_until = utcnow() + timedelta(seconds=seconds)
    session.flush()
    return row.locked_until if over >= 0 else None


def clear_failures(session: Session, keys: list[str]) -> None:
    for key in keys:
        row = session.get(SignInThrottle, key)
        if row is not None:
            session.delete(row)
