"""Users and roles: create, authenticate by password, issue and check API tokens.

Roles (docs/architecture.md): officer (submits requests, sees their status), auditor (runs leak checks,
reads reports), viewer (demo). The app decides what each role may do; this module only keeps
identities and secrets.

Passwords need ``MIN_PASSWORD_LENGTH`` characters that are not all blank (eight spaces are
refused) and at most ``MAX_PASSWORD_CHARS``. API tokens expire ``CAGUL_TOKEN_DAYS`` days
(default 30, read on every check so operators can shorten it without a restart) after they
were issued (``users.token_created_at``, so no schema change was needed), and
:func:`revoke_token` ends one at once. A user keeps one token: issuing a new one revokes the
old one.
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.audit import record_event
from storage.clock import utcnow
from storage.errors import (
    InvalidRoleError,
    InvalidUserValueError,
    UserError,
    UserExistsError,
    WeakPasswordError,
)
from storage.limits import (
    MAX_PASSWORD_CHARS,
    MAX_USER_NAME_CHARS,
    MIN_PASSWORD_CHARS,
    check_text,
)
from storage.models import ROLES, User
from storage.security import (
    hash_password,
    hash_token,
    needs_rehash,
    new_token,
    verify_password,
)

MIN_PASSWORD_LENGTH = MIN_PASSWORD_CHARS
TOKEN_DAYS_ENV = "CAGUL_TOKEN_DAYS"
DEFAULT_TOKEN_DAYS = 30.0
# A real token is "cgl_" + 43 characters; anything far longer is not one and is not hashed.
_MAX_TOKEN_CHARS = 256


def _check_password(password: str) -> None:
    check_text(password, "the password", MAX_PASSWORD_CHARS, error=InvalidUserValueError)
    if not password.strip():
        raise WeakPasswordError("the password is blank")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")


def token_lifetime() -> timedelta:
    """How long an API token stays valid: ``CAGUL_TOKEN_DAYS`` (a positive number of days)."""
    raw = os.environ.get(TOKEN_DAYS_ENV, "").strip()
    if not raw:
        return timedelta(days=DEFAULT_TOKEN_DAYS)
    try:
        days = float(raw)
    except ValueError:
        days = -1.0
    if not 0 < days <= 3650:
        raise UserError(f"{TOKEN_DAYS_ENV} must be a number of days in (0, 3650], not {raw!r}")
    return timedelta(days=days)


def create_user(
    session: Session, name: str, role: str, password: str, *, actor: str = "system"
) -> User:
    """Add a user (flushed, not committed). Raises InvalidRoleError, WeakPasswordError,
    UserExistsError."""
    name = check_text(name, "the user name", MAX_USER_NAME_CHARS, error=InvalidUserValueError)
    name = name.strip()
    if role not in ROLES:
        raise InvalidRoleError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name:
        raise UserExistsError("a user needs a name")
    _check_password(password)
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise UserExistsError(f"user {name!r} already exists")
    user = User(name=name, role=role, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="user.created",
        target_type="user",
        target_id=user.id,
        details={"name": name, "role": role},
    )
    return user


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The enabled user with this name and password, else None. Upgrades an outdated hash."""
    if not isinstance(name, str) or not isinstance(password, str) or "\x00" in name:
        return None
    if len(name) > MAX_USER_NAME_CHARS or len(password) > MAX_PASSWORD_CHARS:
        return None  # cannot exist: no query, no hashing of a huge input
    user = session.scalar(select(User).where(User.name == name.strip()))
    if user is None:
        # Spend the same time as a real check, so response time does not reveal user names.
        verify_password(_dummy_hash(), password)
        return None
    if user.disabled or not verify_password(user.password_hash, password):
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def set_password(session: Session, user: User, password: str, *, actor: str = "system") -> None:
    _check_password(password)
    user.password_hash = hash_password(password)
    record_event(
        session, actor=actor, action="user.password_set", target_type="user", target_id=user.id
    )


def issue_token(session: Session, user: User, *, actor: str = "system") -> str:
    """A new API token for ``user`` (replacing any old one). Show it once: only its hash is kept."""
    token = new_token()
    user.token_hash = hash_token(token)
    user.token_created_at = utcnow()
    record_event(
        session, actor=actor, action="user.token_issued", target_type="user", target_id=user.id
    )
    return token


def revoke_token(session: Session, user: User, *, actor: str = "system") -> bool:
    """End ``user``'s API token now. False when there was none to revoke."""
    had = user.token_hash is not None
    user.token_hash = None
    user.token_created_at = None
    if had:
        record_event(
            session,
            actor=actor,
            action="user.token_revoked",
            target_type="user",
            target_id=user.id,
        )
    return had


def token_expired(user: User) -> bool:
    """True when ``user``'s token was issued longer than :func:`token_lifetime` ago."""
    issued = user.token_created_at
    return issued is None or utcnow() - issued > token_lifetime()


def user_for_token(session: Session, token: str) -> User | None:
    """The enabled user owning this API token, else None (also when it expired or was
    revoked)."""
    if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_CHARS:
        return None
    try:
        digest = hash_token(token)
    except UnicodeEncodeError:  # an unpaired surrogate: no token has one
        return None
    user = session.scalar(select(User).where(User.token_hash == digest))
    if user is None or user.disabled or token_expired(user):
        return None
    return user


@cache
def _dummy_hash() -> str:
    # Lazy: hashing costs ~0.1 s and 64 MiB, which workers importing storage should not pay.
    return hash_password("not-a-real-password")
