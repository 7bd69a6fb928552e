"""Who may do what in the app, checked on the server for every action.

A page signs in through `POST /auth/sign-in` (`webui.session_routes`): a server-side session
(random token, stored as sha256, expiring after `CAGUL_SESSION_HOURS`, default 8, revoked at
sign-out) whose token travels only in an HttpOnly, SameSite=Strict cookie that page scripts
cannot read. Every page handler and REST route resolves the user from the request on each call
(`from_request`), never from Gradio's session hash or state. REST calls carry a bearer API token
(`python -m storage.users token NAME`). Every action checks the role with `require` before
doing anything, so hiding a tab is a convenience, not the guard.

Sign-in is throttled per account name and per client address (`storage.users.sessions`):
after 5 failures for a name (20 for an address) it is locked for 30 s, doubling with each
further failure up to 15 min. Failed attempts are logged against the account when it exists,
as "unknown-user" otherwise (what was typed is not stored: it may be a password).

Roles: officers submit, see and cancel their own requests; auditors run audits, read reports and
every request; viewers only explore; the first-run admin may do what officers and auditors do.
"""

from __future__ import annotations

import math
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

import storage
from storage.clock import utcnow
from storage.users import sessions

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


class ThrottledError(NotSignedInError):
    """Too many failed sign-ins for this account name or client address: locked for now."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


COOKIE = "cagul_session"


@dataclass(frozen=True)
class SignedIn:
    user_id: int
    name: str
    role: str
    expires_at: datetime
    session_id: int | None = None

    @property
    def actor(self) -> str:
        return f"user:{self.name}"


def session_lifetime() -> timedelta:
    return timedelta(hours=float(os.environ.get("CAGUL_SESSION_HOURS", "8")))


def _locked_message(until: datetime) -> tuple[str, int]:
    wait = max(1, math.ceil((until - utcnow()).total_seconds()))
    return f"too many failed sign-ins: try again in {wait} s", wait


def _attempt(db: storage.Database, name, password, client: str | None) -> SignedIn:
    """Check throttle and password; every checked attempt is an audit event. Returns the
    user, or raises NotSignedInError / ThrottledError (the failure is committed first)."""
    if not isinstance(name, str) or not isinstance(password, str) or not name.strip():
        raise NotSignedInError("enter a user name and a password")
    keys = [sessions.account_key(name)] + ([sessions.client_key(client)] if client else [])
    locked = None
    with db.transaction() as s:
        until = sessions.locked_until(s, keys)
        if until is not None:  # not checked, not logged: a locked key costs no argon2 run
            locked = _locked_message(until)
        else:
            user = storage.authenticate(s, name, password)
            if user is not None:
                sessions.clear_failures(s, keys)
                storage.record_event(
                    s,
                    actor=f"user:{user.name}",
                    action="user.signed_in",
                    target_type="user",
                    target_id=user.id,
                )
                return SignedIn(user.id, user.name, user.role, utcnow() + session_lifetime())
            known = s.scalar(select(storage.User).where(storage.User.name == name.strip()[:128]))
            storage.record_event(
                s,
                actor=f"user:{known.name}" if known else "unknown-user",
                action="user.sign_in_failed",
                target_type="user",
                target_id=known.id if known else None,
            )
            ends = [sessions.record_failure(s, keys[0], sessions.ACCOUNT_THRESHOLD)]
            if client:
                ends.append(sessions.record_failure(s, keys[1], sessions.CLIENT_THRESHOLD))
            ends = [e for e in ends if e is not None]
            if ends:
                locked = _locked_message(max(ends))
    if locked is not None:
        raise ThrottledError(*locked)
    raise NotSignedInError("wrong user name or password")


def sign_in(db: storage.Database, name, password, *, client: str | None = None) -> SignedIn:
    """The user of this name and password, or NotSignedInError (the same message whether
    the name or the password was wrong), or ThrottledError while the name or `client` (the
    caller's address) is locked after repeated failures."""
    return _attempt(db, name, password, client)


def open_session(db: storage.Database, who: SignedIn) -> str:
    """A server-side session for a signed-in user; the token for the cookie (shown once)."""
    with db.transaction() as s:
        user = s.get(storage.User, who.user_id)
        token, _ = sessions.start_session(s, user, session_lifetime())
    return token


def user_for_session(db: storage.Database, token: str | None) -> SignedIn | None:
    """The signed-in user of a session token, or None (unknown, expired, revoked, disabled)."""
    if not token:
        return None
    with db.read() as s:
        found = sessions.session_user(s, token)
        if found is None:
            return None
        user, row = found
        return SignedIn(user.id, user.name, user.role, row.expires_at, session_id=row.id)


def sign_out(db: storage.Database, token: str | None) -> SignedIn | None:
    """Revoke the session of `token`; who it was (None when there was no live one)."""
    who = user_for_session(db, token)
    if who is None:
        return None
    with db.transaction() as s:
        sessions.end_session(s, token)
        storage.record_event(
            s, actor=who.actor, action="user.signed_out", target_type="user", target_id=who.user_id
        )
    return who


def from_request(db: storage.Database, request) -> SignedIn | None:
    """The user whose session cookie `request` carries (a Starlette request or a
    `gr.Request`), resolved in the database on this call; None when there is none."""
    if request is None:
        return None
    cookies = getattr(request, "cookies", None) or {}
    return user_for_session(db, cookies.get(COOKIE))


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
