"""Typed errors of the storage layer.

Every error derives from :class:`StorageError`, so the app and the CLI can catch one class and show
the message, while tests tell the causes apart. Errors about a forget request also derive from
:class:`RequestRefused` (a ``ValueError``): the request was not stored and the caller should show
the reason to the officer.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every storage problem."""


class InvalidValueError(StorageError, ValueError):
    """A value cannot be stored as given: not text, a NUL byte, longer than its limit
    (:mod:`storage.limits`); refused the same way on every backend."""


class NaiveDatetimeError(StorageError, ValueError):
    """A datetime without a time zone was given; every stored time is UTC and must say so."""


class RequestRefused(StorageError, ValueError):
    """A forget request was refused; nothing was stored."""


class UnknownIndividualError(RequestRefused):
    """The request names an individual the dataset does not know."""

    def __init__(self, unknown: list[str]):
        self.unknown = unknown
        super().__init__(f"unknown individual(s): {', '.join(unknown)}")


class EmptyCategoriesError(RequestRefused):
    """The request gives an explicit but empty list of categories (or pairs)."""


class UnknownCategoryError(RequestRefused):
    """The request names a category the dataset does not have."""

    def __init__(self, unknown: list[str]):
        self.unknown = unknown
        super().__init__(f"unknown categor(ies): {', '.join(unknown)}")


class DuplicateActiveRequestError(RequestRefused):
    """An active (not yet finished) request already covers some of the same pairs."""

    def __init__(self, request_id: int, overlap: list[str]):
        self.request_id = request_id
        self.overlap = overlap
        super().__init__(
            f"request {request_id} is still active for the same pairs: {', '.join(overlap)}"
        )


class InvalidRequestError(RequestRefused):
    """The request is malformed in another way (no individual, unknown method, a field over
    its limit or with a NUL byte, too many ids, ...)."""


class UserError(StorageError, ValueError):
    """A user could not be created or changed."""


class UserExistsError(UserError):
    """A user of that name already exists."""


class InvalidRoleError(UserError):
    """The role is not one of officer, auditor, viewer."""


class WeakPasswordError(UserError):
    """The password is too short (or blank) to be accepted."""


class InvalidUserValueError(UserError, InvalidValueError):
    """A user name or password that cannot be stored: not text, a NUL byte, too long."""


class AdapterIntegrityError(StorageError):
    """An adapter's files are missing or do not match the stored sha256 / base fingerprint."""


class MigrationError(StorageError):
    """The schema could not be brought to the current revision."""
