"""The erasure-workflow fields of a forget request: who the data subject is in the officer's
own files (a reference, not the person's data), the legal basis of the request, when it was
received, the response deadline, and the approver's sign-off.

The deadline is one month after receipt (GDPR Art. 12(3): "without undue delay and in any
event within one month of receipt"): the same day of the next month, or that month's last day
when it has no such day (received 31 January: due 28/29 February). Extensions (Art. 12(3): by
two further months) are out of scope here: the officer records them in the note.

Every value is checked before anything is written (typed :class:`InvalidRequestError`), so a
bad field stores nothing, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime

from sqlalchemy.orm import Session

from storage.audit import record_event
from storage.clock import utcnow
from storage.errors import InvalidRequestError
from storage.limits import check_text
from storage.models import ForgetRequest

# GDPR Art. 17(1) grounds for erasure, plus "other" (described in the note).
LEGAL_BASES = (
    "art17-1a: no longer necessary",
    "art17-1b: consent withdrawn",
    "art17-1c: objection to processing",
    "art17-1d: unlawfully processed",
    "art17-1e: legal obligation",
    "art17-1f: child's data (information society service)",
    "other",
)
MAX_SUBJECT_REF_CHARS = 128
SIGN_OFF_STATUSES = ("verified", "needs_review")  # there is an outcome to approve


def one_month_after(day: datetime) -> datetime:
    """The same moment one calendar month later, clamped to the month's last day."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    last = calendar.monthrange(year, month)[1]
    return day.replace(year=year, month=month, day=min(day.day, last))


def _as_utc(value: datetime | date | str) -> datetime:
    """A received date as a UTC datetime: a date is its midnight, naive times are UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRequestError(f"received date {value!r} is not ISO 8601") from None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def checked_fields(
    *, subject_ref: str | None, legal_basis: str | None, received: datetime | date | str | None
) -> dict:
    """The column values for these fields, or InvalidRequestError (nothing is written)."""
    ref = None
    if subject_ref is not None:
        ref = (
            check_text(
                subject_ref,
                "data-subject reference",
                MAX_SUBJECT_REF_CHARS,
                error=InvalidRequestError,
            ).strip()
            or None
        )
    if legal_basis is not None and legal_basis not in LEGAL_BASES:
        raise InvalidRequestError(f"legal basis must be one of {', '.join(LEGAL_BASES)}")
    now = utcnow()
    got = _as_utc(received) if received not in (None, "") else now
    if got > now:
        raise InvalidRequestError("the request cannot be received in the future")
    return {
        "subject_ref": ref,
        "legal_basis": legal_basis,
        "received_at": got,
        "due_at": one_month_after(got),
    }


def set_erasure_fields(session: Session, request: ForgetRequest, fields: dict) -> None:
    """Write fields from :func:`checked_fields` on a request just stored (flushed)."""
    for key, value in fields.items():
        setattr(request, key, value)
    session.flush()


def sign_off(
    session: Session,
    request_id: int,
    *,
    approver: str,
    approver_id: int | None = None,
    note: str | None = None,
) -> ForgetRequest:
    """The approver's sign-off of a request's outcome (once; only when it has a verdict).

    Four eyes: the approver (user ``approver_id``) must be a different person from the
    request's submitter, or the sign-off would approve one's own work."""
    request = session.get(ForgetRequest, request_id, with_for_update=True)
    if request is None:
        raise InvalidRequestError(f"forget request {request_id} does not exist")
    if request.status not in SIGN_OFF_STATUSES:
        raise InvalidRequestError(
            f"request {request_id} is {request.status}: nothing to sign off yet"
        )
    if request.approved_by:
        raise InvalidRequestError(
            f"request {request_id} was already signed off by {request.approved_by}"
        )
    if approver_id is not None and approver_id == request.submitted_by_id:
        raise InvalidRequestError(
            f"request {request_id} was submitted by the same person: its outcome must be "
            "signed off by someone else"
        )
    check_text(approver, "approver", 128, error=InvalidRequestError)
    if note is not None:
        check_text(note, "sign-off note", 2000, error=InvalidRequestError)
    request.approved_by, request.approved_at = approver, utcnow()
    record_event(
        session,
        actor=approver,
        action="request.signed_off",
        target_type="request",
        target_id=request.id,
        details={"status": request.status, "note": note},
    )
    session.flush()
    return request
