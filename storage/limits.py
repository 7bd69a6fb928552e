"""The limits storage enforces itself, the same on every backend, before anything is written.

Without them the backend decided: a 300-character requester or a NUL byte was stored on SQLite
and raised a raw ``sqlalchemy.exc.DataError`` on PostgreSQL (whose ``varchar(n)`` is strict
and whose text and JSONB types refuse NUL). Now every value that enters the schema from a
caller is checked here first and refused with a typed error and a one-line message; the column
sizes below are the schema's (``storage/models.py``), the others are product limits:

=====================  ===========  ==========================================================
value                  limit        why
=====================  ===========  ==========================================================
requester              256 chars    ``forget_requests.requester`` is ``varchar(256)``
actor (audit log)      128 chars    ``audit_events.actor`` is ``varchar(128)``
user name              128 chars    ``users.name`` is ``varchar(128)``
note                   10,000       a paragraph or two of context, not a document store
ids per request        1,000        individuals (or pairs): more is a data-deletion project
one id                 128 chars    dataset ids are short keys
categories             64 of them,  a taxonomy, lower-cased, at most 64 characters each
                       64 chars
password               8 to 1,024   at least 8 non-blank characters; the upper bound keeps
                                    argon2 from hashing megabytes on a login form
=====================  ===========  ==========================================================

Every text must be a ``str`` with no NUL byte and no unpaired surrogate (neither encodes to
UTF-8, so PostgreSQL cannot store them). Free text that storage writes on its own behalf (job
errors and progress messages, audit details) is made storable with :func:`storable_text`
rather than refused, because refusing a traceback would lose the failure it reports.
"""

from __future__ import annotations

from storage.errors import InvalidValueError

MAX_REQUESTER_CHARS = 256
MAX_ACTOR_CHARS = 128
MAX_USER_NAME_CHARS = 128
MAX_NOTE_CHARS = 10_000
MAX_IDS = 1000
MAX_ID_CHARS = 128
MAX_CATEGORIES = 64
MAX_CATEGORY_CHARS = 64
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
# audit_events.action / target_type / target_id: set by code, checked all the same.
MAX_ACTION_CHARS = 64
MAX_TARGET_TYPE_CHARS = 32
MAX_TARGET_ID_CHARS = 64


def check_text(
    value: object,
    what: str,
    max_chars: int,
    *,
    error: type[Exception] = InvalidValueError,
) -> str:
    """``value`` if it is storable text of at most ``max_chars`` characters, else ``error``."""
    if not isinstance(value, str):
        raise error(f"{what} must be text, not {type(value).__name__}")
    if "\x00" in value:
        raise error(f"{what} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise error(f"{what} is not valid Unicode (unpaired surrogate)") from None
    if len(value) > max_chars:
        raise error(f"{what} has {len(value):,} characters; at most {max_chars:,} are allowed")
    return value


def storable_text(value: str | None, max_chars: int | None = None) -> str | None:
    """``value`` with NUL bytes replaced (U+FFFD), unpaired surrogates as ``?`` and, when
    ``max_chars`` is given, cut to its last ``max_chars`` characters (a traceback's end is
    what says why)."""
    if value is None:
        return None
    text = str(value).replace("\x00", "\ufffd")
    text = text.encode("utf-8", "replace").decode("utf-8")
    if max_chars is not None and len(text) > max_chars:
        text = text[-max_chars:]
    return text
