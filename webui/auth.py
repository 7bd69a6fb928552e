"""Who may do what in the app, checked on the server for every action.

A page signs in with a name and password and gets a `SignedIn` (kept in Gradio's server-side
session state, never in the browser) that expires after `CAGUL_SESSION_HOURS` (default 8);
REST calls carry a bearer API token (`python -m storage.users token NAME`). Every action checks
the role with `require` before doing anything, so hiding a tab is a convenience, not the guard.

Roles: officers submit, see and cancel their own requests; auditors run audits, read reports and
every request; viewers only explore; the first-run admin may do what officers and auditors do.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import storage
from storage.clock import utcnow

ACCESS = {
    "submit": ("officer", "admin"),
    "cancel": ("officer", "admin"),
    "requests": ("officer", "auditor", "admin"),
    "all_requests": ("auditor", "admin"),
    "audit": ("auditor", "admin"),
    "reports": ("officer", "auditor", "admin"),
}
WHAT = {
    "submit": "submit forget requests",
    "cancel": "cancel forget requests",
    "requests": "see forget requests",
    "all_requests": "see every forget request",
    "audit": "run audits",
    "reports": "read reports",
}


class AuthError(PermissionError):
    """Not signed in, signed in too long ago, or a role that may not do this."""


class NotSignedInError(AuthError):
    pass


class ForbiddenError(AuthError):
    pass


@dataclass(frozen=True)
class SignedIn:
    user_id: int
    name: str
    role: str
    expires_at: datetime

    @property
    def actor(self) -> str:
        return f"user:{self.name}"


def session_lifetime() -> timedelta:
    return timedelta(hours=float(os.environ.get("CAGUL_SESSION_HOURS", "8")))


def _attempt(db: storage.Database, name, password) -> SignedIn | None:
    """Check the password; every attempt, failed or not, is an audit event."""
    if not isinstance(name, str) or not isinstance(password, str) or not name.strip():
        raise NotSignedInError("enter a user name and a password")
    with db.transaction() as s:
        user = storage.authenticate(s, name, password)
        ok = user is not None
        storage.record_event(s, actor=f"user:{name.strip()[:100]}",
                             action="user.signed_in" if ok else "user.sign_in_failed",
                             target_type="user", target_id=user.id if ok else None)  # fmt: skip
        if not ok:
            return None  # the failure event commits; the caller raises
        return SignedIn(user.id, user.name, user.role, utcnow() + session_lifetime())


def sign_in(db: storage.Database, name, password) -> SignedIn:
    """A session for this user and password, or NotSignedInError (the same message whether
    the name or the password was wrong)."""
    who = _attempt(db, name, password)
    if who is None:
        raise NotSignedInError("wrong user name or password")
    return who


def require(who: SignedIn | None, action: str) -> SignedIn:
    """`who`, when signed in, not expired and allowed `action`; else AuthError."""
    if who is None:
        raise NotSignedInError(f"sign in to {WHAT[action]}")
    if utcnow() >= who.expires_at:
        raise NotSignedInError("your session expired: sign in again")
    if who.role not in ACCESS[action]:
        roles = " or ".join(r for r in ACCESS[action] if r != "admin")
        raise ForbiddenError(f"{who.role}s may not {WHAT[action]}: this needs the {roles} role")
    return who


def user_for_api_token(db: storage.Database, token: str | None) -> SignedIn | None:
    if not token:
        return None
    with db.read() as s:
        user = storage.user_for_token(s, token)
        if user is None:
            return None
        return SignedIn(user.id, user.name, user.role, utcnow() + timedelta(minutes=5))


def ensure_admin(db: storage.Database) -> str | None:
    """On first run (no users at all), create "admin" with `CAGUL_ADMIN_PASSWORD`, else with a
    random password that is returned to be printed once. None when users exist already."""
    from sqlalchemy import func, select

    with db.transaction() as s:
        if s.scalar(select(func.count()).select_from(storage.User)):
            return None
        given = os.environ.get("CAGUL_ADMIN_PASSWORD")
        password = given or secrets.token_urlsafe(12)
        storage.create_user(s, "admin", "admin", password, actor="system")
    return None if given else password
