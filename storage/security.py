"""Password hashing (argon2id) and API tokens (random, stored as sha256).

Passwords use argon2-cffi's defaults (argon2id, RFC 9106 low-memory profile); hashes carry their
parameters, and :func:`needs_rehash` tells when a stored hash is older than today's parameters.
API tokens are 256 random bits: a fast sha256 is enough to store them (no brute force can
search that space) and lets us look a token up by its hash with an index.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TOKEN_PREFIX = "cgl_"  # makes leaked tokens easy to spot by secret scanners
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches; False on mismatch or an unreadable hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
