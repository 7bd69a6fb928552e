"""Forget requests: validate and store them, and find the active ones.

A request is refused, with a typed :class:`storage.errors.RequestRefused` and nothing stored,
when it names an unknown individual or category, gives an empty category (or pair) list, uses
an unknown method, or overlaps a request that is still active.

Overlap is decided on "targets": ``(individual, "category:<c>")`` for each requested category,
``(individual, "pair:<id>")`` for each requested pair, and ``(individual, "*")`` for a request
without categories (all of that person's pairs), which overlaps every target of that person.
A pair and a category of the same person are only compared when the pair id is given with
its category as ``"<category>/<pair>"``; otherwise storage cannot know the pair's category
and the dataset-aware caller must check.

Two officers submitting the same request at the same moment must not both succeed, so the check
and the insert happen under a lock: the ``BEGIN IMMEDIATE`` write lock on SQLite, a transaction
advisory lock on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Sequence

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from storage.audit import record_event
from storage.errors import (
    DuplicateActiveRequestError,
    EmptyCategoriesError,
    InvalidRequestError,
    UnknownCategoryError,
    UnknownIndividualError,
)
from storage.models import ACTIVE_REQUEST_STATUSES, ForgetRequest

# The unlearning methods of DESIGN §8 (`python -m cagul unlearn --method`).
METHODS = ("cagul", "ga", "ga_gd", "ga_kl", "po_gd", "retrain", "viker")
_PG_LOCK_KEY = 0x636167756C + 1  # "cagul"+1: the forget-request submission lock

Known = Container[str] | Callable[[str], bool]


def _is_known(known: Known, value: str) -> bool:
    return bool(known(value)) if callable(known) else value in known


def _clean_list(values: Iterable[str] | None, what: str) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        raise InvalidRequestError(f"{what} must be a list of strings, not a single string")
    cleaned: list[str] = []
    for value in values:
        value = str(value).strip()
        if value and value not in cleaned:
            cleaned.append(value)
    return cleaned


def request_targets(
    individual_ids: Sequence[str], categories: Sequence[str] | None, pair_ids: Sequence[str] | None
) -> set[tuple[str, str]]:
    """The (individual, target) pairs a request covers; see the module docstring."""
    targets: set[tuple[str, str]] = set()
    for person in individual_ids:
        if pair_ids:
            targets.update((person, f"pair:{p}") for p in pair_ids)
        elif categories is not None:
            targets.update((person, f"category:{c}") for c in categories)
        else:
            targets.add((person, "*"))
    return targets


def _overlap(a: set[tuple[str, str]], b: set[tuple[str, str]]) -> list[str]:
    found: set[str] = set()
    for person, target in a:
        for other_person, other in b:
            if person != other_person:
                continue
            same = target == other or "*" in (target, other)
            # "pair:<category>/<id>" lies inside "category:<category>".
            for t1, t2 in ((target, other), (other, target)):
                if t1.startswith("pair:") and t2.startswith("category:"):
                    same = same or t1[5:].split("/", 1)[0] == t2[9:]
            if same:
                found.add(f"{person}:{target if target != '*' else other}")
    return sorted(found)


def active_requests(session: Session) -> Sequence[ForgetRequest]:
    stmt = select(ForgetRequest).where(ForgetRequest.status.in_(ACTIVE_REQUEST_STATUSES))
    return session.scalars(stmt.order_by(ForgetRequest.id)).all()


def _lock_submissions(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    # SQLite: sessions begin IMMEDIATE (storage.engine), so we already hold the write lock.


def create_forget_request(
    session: Session,
    *,
    requester: str,
    individual_ids: Sequence[str],
    categories: Sequence[str] | None,
    known_individuals: Known,
    pair_ids: Sequence[str] | None = None,
    known_categories: Known | None = None,
    method: str = "cagul",
    submitted_by_id: int | None = None,
    note: str | None = None,
    actor: str = "system",
) -> ForgetRequest:
    """Validate and add a forget request (status "submitted"; flushed, not committed).

    ``categories=None`` means every pair of the individuals; ``known_individuals`` (and
    optionally ``known_categories``) is a set of ids or a predicate supplied by the caller who
    knows the dataset. Raises a :class:`RequestRefused` subclass before adding anything.
    """
    people = _clean_list(individual_ids, "individual_ids") or []
    cats = _clean_list(categories, "categories")
    pairs = _clean_list(pair_ids, "pair_ids")
    requester = (requester or "").strip()
    if not requester:
        raise InvalidRequestError("say who asked (requester)")
    if not people:
        raise InvalidRequestError("name at least one individual")
    if method not in METHODS:
        raise InvalidRequestError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if cats is not None and not cats:
        raise EmptyCategoriesError("the category list is empty: give categories, or none for all")
    if pairs is not None and not pairs:
        raise EmptyCategoriesError("the pair list is empty: give pairs, or none for all")
    unknown = [p for p in people if not _is_known(known_individuals, p)]
    if unknown:
        raise UnknownIndividualError(unknown)
    if cats and known_categories is not None:
        bad = [c for c in cats if not _is_known(known_categories, c)]
        if bad:
            raise UnknownCategoryError(bad)

    _lock_submissions(session)
    mine = request_targets(people, cats, pairs)
    for other in active_requests(session):
        overlap = _overlap(
            mine, request_targets(other.individual_ids, other.categories, other.pair_ids)
        )
        if overlap:
            raise DuplicateActiveRequestError(other.id, overlap)

    request = ForgetRequest(
        requester=requester,
        submitted_by_id=submitted_by_id,
        individual_ids=people,
        categories=cats,
        pair_ids=pairs,
        method=method,
        status="submitted",
        note=note,
    )
    session.add(request)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="request.created",
        target_type="request",
        target_id=request.id,
        details={
            "requester": requester,
            "individual_ids": people,
            "categories": cats,
            "pair_ids": pairs,
            "method": method,
        },
    )
    return request
