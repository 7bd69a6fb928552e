"""Users and roles: create, authenticate by password, issue and check API tokens.

Roles (DESIGN §6): officer (submits requests, sees their status), auditor (runs leak checks,
reads reports), viewer (demo). The app decides what each role may do; this module only keeps
identities and secrets.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.audit import record_event
from storage.clock import utcnow
from storage.errors import InvalidRoleError, UserExistsError, WeakPasswordError
from storage.models import ROLES, User
from storage.security import (
    hash_password,
    hash_token,
    needs_rehash,
    new_token,
    verify_password,
)

MIN_PASSWORD_LENGTH = 8


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")


def create_user(
    session: Session, name: str, role: str, password: str, *, actor: str = "system"
) -> User:
    """Add a user (flushed, not committed). Raises InvalidRoleError, WeakPasswordError,
    UserExistsError."""
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


def user_for_token(session: Session, token: str) -> User | None:
    """The enabled user owning this API token, else None."""
    if not token:
        return None
    user = session.scalar(select(User).where(User.token_hash == hash_token(token)))
    return None if user is None or user.disabled else user


@cache
def _dummy_hash() -> str:
    # Lazy: hashing costs ~0.1 s and 64 MiB, which workers importing storage should not pay.
    return hash_password("not-a-real-password")
