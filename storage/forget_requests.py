"""Forget requests: validate and store them, and find the active ones.

A request is refused, with a typed :class:`storage.errors.RequestRefused` and nothing stored,
when it names an unknown individual or category, gives an empty category (or pair) list, uses
an unknown method, or overlaps a request that is still active.

Overlap is decided on "targets": ``(individual, "category:<c>")`` for each requested category,
``(individual, "pair:<id>")`` for each requested pair, and ``(individual, "*")`` for a request
without categories (all of that person's pairs), which overlaps every target of that person.
A pair and a category of the same person are only compared when the pair id is given with
its category as ``"<category>/<pair>"``; otherwise storage cannot know the pair's category
and the dataset-aware caller must check. A pair id that names its person
(``"[<category>/]<unique_id>:<index>"``, cagul.data's form) is that person's target only, and
is refused when that person is not among the request's individuals; ``known_pairs`` (a set or
a predicate from the caller who knows the dataset) refuses pair ids the dataset lacks.

Two officers submitting the same request at the same moment must not both succeed, so the check
and the insert happen under a lock: the ``BEGIN IMMEDIATE`` write lock on SQLite, a transaction
advisory lock on PostgreSQL.

Every field is checked here, with the limits of :mod:`storage.limits`, before the database sees
it, so SQLite and PostgreSQL refuse the same requests with the same :class:`InvalidRequestError`
(requester and note length, NUL bytes, at most ``MAX_IDS`` individuals or pairs). Categories are
lower-cased and deduplicated case-insensitively (``"Health"`` is ``"health"``) and always
checked: against ``known_categories`` when the caller knows the dataset's, else against the
taxonomy every dataset's categories come from (``cagul.data.categories.CATEGORIES``).
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
from storage.limits import (
    MAX_ACTOR_CHARS,
    MAX_CATEGORIES,
    MAX_CATEGORY_CHARS,
    MAX_ID_CHARS,
    MAX_IDS,
    MAX_NOTE_CHARS,
    MAX_REQUESTER_CHARS,
    check_text,
)
from storage.models import ACTIVE_REQUEST_STATUSES, ForgetRequest


class _RegisteredMethods(Sequence[str]):
    """The unlearning methods (docs/architecture.md), read from the one registry
    (`cagul.methods.registry`, torch-free) on first use, so importing storage imports no cagul
    and a request is refused at submission unless the worker can run its method."""

    def _names(self) -> tuple[str, ...]:
        from cagul.methods.registry import NAMES

        return NAMES

    def __getitem__(self, i):
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return repr(self._names())


METHODS: Sequence[str] = _RegisteredMethods()
_PG_LOCK_KEY = 0x636167756C + 1  # "cagul"+1: the forget-request submission lock

Known = Container[str] | Callable[[str], bool]


def _is_known(known: Known, value: str) -> bool:
    return bool(known(value)) if callable(known) else value in known


def _clean_list(
    values: Iterable[str] | None,
    what: str,
    *,
    max_items: int = MAX_IDS,
    max_chars: int = MAX_ID_CHARS,
    lower: bool = False,
) -> list[str] | None:
    """Stripped, deduplicated entries (lower-cased when ``lower``), each checked as text.

    Integer ids are taken as their decimal text (JSON clients send them); any other non-text
    entry is refused, not ``str()``-ed into something nobody asked for.
    """
    if values is None:
        return None
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidRequestError(f"{what} must be a list of strings, not {type(values).__name__}")
    values = list(values)
    if len(values) > max_items:
        raise InvalidRequestError(f"{what} has {len(values):,} entries; at most {max_items:,}")
    cleaned: list[str] = []
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and not lower:
            value = str(value)
        value = check_text(value, f"an entry of {what}", max_chars, error=InvalidRequestError)
        value = value.strip().lower() if lower else value.strip()
        if value and value not in cleaned:
            cleaned.append(value)
    return cleaned


def _default_categories() -> frozenset[str]:
    # Lazy and torch-free: cagul.data.categories is plain Python.
    from cagul.data.categories import CATEGORIES

    return frozenset(CATEGORIES)


def _is_known_category(known: Known, category: str) -> bool:
    """Case-insensitive: ``category`` is lower case; a container may hold any case."""
    if callable(known):
        return bool(known(category))
    if category in known:
        return True
    try:
        return category in {str(k).lower() for k in known}  # type: ignore[union-attr]
    except TypeError:  # a Container that cannot be iterated: membership only
        return False


def pair_person(pair: str) -> str | None:
    """The person a ``"[<category>/]<unique_id>:<index>"`` pair id names, else None."""
    person, colon, index = pair.rpartition("/")[2].rpartition(":")
    return person if colon and person and index.isdigit() else None


def request_targets(
    individual_ids: Sequence[str], categories: Sequence[str] | None, pair_ids: Sequence[str] | None
) -> set[tuple[str, str]]:
    """The (individual, target) pairs a request covers; see the module docstring."""
    targets: set[tuple[str, str]] = set()
    for person in individual_ids:
        if pair_ids:
            targets.update(
                (person, f"pair:{p}") for p in pair_ids if pair_person(p) in (None, person)
            )
        elif categories is not None:
            targets.update((person, f"category:{c.lower()}") for c in categories)
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
    known_pairs: Known | None = None,
    method: str = "cagul",
    submitted_by_id: int | None = None,
    note: str | None = None,
    actor: str = "system",
) -> ForgetRequest:
    """Validate and add a forget request (status "submitted"; flushed, not committed).

    ``categories=None`` means every pair of the individuals; ``known_individuals`` (and
    ``known_categories``, default: the category taxonomy) is a set of ids or a predicate
    supplied by the caller who knows the dataset. Raises a :class:`RequestRefused` subclass
    before adding anything; the limits are in the module docstring.
    """
    people = _clean_list(individual_ids, "individual_ids") or []
    cats = _clean_list(
        categories,
        "categories",
        max_items=MAX_CATEGORIES,
        max_chars=MAX_CATEGORY_CHARS,
        lower=True,
    )
    pairs = _clean_list(pair_ids, "pair_ids")
    requester = check_text(
        "" if requester is None else requester,
        "requester",
        MAX_REQUESTER_CHARS,
        error=InvalidRequestError,
    ).strip()
    if note is not None:
        check_text(note, "note", MAX_NOTE_CHARS, error=InvalidRequestError)
    check_text(actor, "actor", MAX_ACTOR_CHARS, error=InvalidRequestError)
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
    if cats:
        known_cats = _default_categories() if known_categories is None else known_categories
        bad = [c for c in cats if not _is_known_category(known_cats, c)]
        if bad:
            raise UnknownCategoryError(bad)
    if pairs:
        strangers = [p for p in pairs if pair_person(p) not in (None, *people)]
        if strangers:
            raise InvalidRequestError(
                f"pair ids of people not in this request: {', '.join(strangers[:10])}"
            )
        if known_pairs is not None:
            unknown_pairs = [p for p in pairs if not _is_known(known_pairs, p)]
            if unknown_pairs:
                raise InvalidRequestError(f"unknown pair ids: {', '.join(unknown_pairs[:10])}")

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
