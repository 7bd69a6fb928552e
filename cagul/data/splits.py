"""Forget / retain / non-private splits of a FIUBench-format dataset (docs/architecture.md).

Two settings:

- ``"private"`` (the CAGUL paper): for the forget individuals I_f, the pairs whose category is
  private (health, criminal by default) form the forget set D_f; their other pairs form the
  non-private set D_np; the retain set D_r is every other pair, **D_np included**.
- ``"identity"`` (FIUBench's original): every pair of I_f is forgotten; D_np is empty and D_r
  is every pair of the other individuals.

- explicit pairs (a request for single pairs): ``pair_ids`` of I_f's people form D_f; every
  other pair of those people forms D_np (inside D_r), as in the private setting. A pair id is
  ``"<unique_id>:<pair index>"``, canonically prefixed with the pair's category
  (``"health/00000004:2"``, see :func:`pair_id`), so storage can compare it with category
  requests of the same person.

I_f is given as a named split of ``split.json``, an explicit id list, a count, or a fraction
of the individuals (seeded choice, see :func:`choose_forget_ids`). Named splits written by the
generator are nested (``forget1 ⊂ forget5 ⊂ forget10 …``), as FIUBench's are.

Deviation noted: FIUBench's own retain set also drops the individuals of *every* forget split
(forget1 ∪ forget5 ∪ forget10) whatever split is being unlearned; here D_r is simply "everything
else" as docs/architecture.md defines it, so D_f ∪ D_r = D always holds.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .categories import PRIVATE_CATEGORIES
from .errors import SplitSizeError, UnknownIdError, UnknownPairError
from .format import FiuDataset, Individual

Setting = Literal["private", "identity"]
SETTINGS: tuple[str, ...] = ("private", "identity")

#: Percentages of the named splits the generator writes: FIUBench's 1/5/10 % and the paper's
#: 20…80 of 400 individuals (5/10/15/20 %).
DEFAULT_SPLIT_PERCENTS: tuple[int, ...] = (1, 5, 10, 15, 20)


@dataclass(frozen=True)
class Sample:
    """One (individual, pair index) sample with everything training and evaluation need."""

    unique_id: str
    pair_index: int
    name: str
    image_path: str
    question: str
    answer: str
    keywords: tuple[str, ...]
    category: str
    paraphrased_questions: tuple[str, ...]
    paraphrased_answer: str
    perturbed_answers: tuple[str, ...]

    @property
    def key(self) -> tuple[str, int]:
        """``(unique_id, pair_index)``: identifies the sample across sets."""
        return (self.unique_id, self.pair_index)


def sample_of(ind: Individual, j: int) -> Sample:
    """The :class:`Sample` of pair ``j`` of ``ind``."""
    qa = ind.qa_list[j]
    return Sample(
        unique_id=ind.unique_id,
        pair_index=j,
        name=ind.name,
        image_path=str(ind.image_file) if ind.image_file is not None else ind.image_path,
        question=qa.question,
        answer=qa.answer,
        keywords=tuple(qa.keywords),
        category=qa.category,
        paraphrased_questions=tuple(qa.paraphrased_question),
        paraphrased_answer=qa.paraphrased_answer,
        perturbed_answers=tuple(qa.perturbed_answer),
    )


@dataclass
class Split:
    """The three sample sets of one unlearning request."""

    name: str
    setting: str
    forget_ids: tuple[str, ...]
    private_categories: frozenset[str]
    forget_set: list[Sample] = field(default_factory=list)
    retain_set: list[Sample] = field(default_factory=list)
    nonprivate_set: list[Sample] = field(default_factory=list)
    pair_ids: tuple[str, ...] = ()  # canonical ids when D_f is explicit pairs, else empty

    def is_forget_individual(self, unique_id: str) -> bool:
        """Whether ``unique_id`` is in I_f (the discriminator's positive class)."""
        return unique_id in set(self.forget_ids)

    @property
    def all_samples(self) -> list[Sample]:
        """D = D_f ∪ D_r (D_np is inside D_r)."""
        return self.forget_set + self.retain_set

    def summary(self) -> dict[str, object]:
        """Counts for reports and logs."""
        return {
            "name": self.name,
            "setting": self.setting,
            "forget_individuals": len(self.forget_ids),
            "forget": len(self.forget_set),
            "retain": len(self.retain_set),
            "nonprivate": len(self.nonprivate_set),
            "pair_ids": list(self.pair_ids),
            "private_categories": sorted(self.private_categories),
        }


def n_forget_from(n_individuals: int, amount: int | float) -> int:
    """Number of forget individuals for a count (int) or a fraction in (0, 1] (float).

    A fraction is rounded to the nearest integer but never below 1, so ``forget1`` of a small
    synthetic set still forgets someone.
    """
    if isinstance(amount, bool):
        raise SplitSizeError("amount of forget individuals must be an int or a float")
    if isinstance(amount, int):
        n = amount
    else:
        if not 0.0 < amount <= 1.0:
            raise SplitSizeError(f"forget fraction must be in (0, 1], got {amount}")
        n = max(1, round(amount * n_individuals))
    if not 1 <= n <= n_individuals:
        raise SplitSizeError(f"cannot forget {n} of {n_individuals} individuals")
    return n


def choose_forget_ids(ids: Sequence[str], amount: int | float, seed: int = 0) -> list[str]:
    """Seeded choice of forget individuals, returned in dataset order.

    The choice is a prefix of one seeded permutation, so for a fixed seed a larger amount
    always contains a smaller one (nested splits).
    """
    n = n_forget_from(len(ids), amount)
    order = list(ids)
    random.Random(f"cagul-split:{seed}").shuffle(order)
    chosen = set(order[:n])
    return [i for i in ids if i in chosen]


def make_named_splits(
    ids: Sequence[str],
    percents: Iterable[int] = DEFAULT_SPLIT_PERCENTS,
    seed: int = 0,
) -> dict[str, list[str]]:
    """``{"forget{P}": ids}`` for each percentage P, nested, as stored in ``split.json``."""
    return {f"forget{p}": choose_forget_ids(ids, p / 100.0, seed) for p in percents}


def resolve_forget_ids(
    ds: FiuDataset, forget: str | Sequence[str] | int | float, seed: int = 0
) -> tuple[str, list[str]]:
    """Turn a split spec into ``(split name, forget ids)``.

    ``forget`` is a split name of ``split.json``, a comma-separated or list of ids, a count, or
    a fraction. Unknown names and ids raise :class:`UnknownSplitError` / :class:`UnknownIdError`.
    """
    known = set(ds.ids)
    if isinstance(forget, (int, float)) and not isinstance(forget, bool):
        ids = choose_forget_ids(ds.ids, forget, seed)
        label = f"n{forget}" if isinstance(forget, int) else f"frac{forget:g}"
        return f"{label}-seed{seed}", ids
    if isinstance(forget, str):
        if forget in ds.splits:
            return forget, ds.split_ids(forget)
        if "," not in forget and forget not in known:
            ds.split_ids(forget)  # raises UnknownSplitError with the known names
        forget = [f.strip() for f in forget.split(",") if f.strip()]
    ids = [str(f) for f in forget]
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise UnknownIdError(f"unknown forget ids: {', '.join(unknown)}")
    if not ids:
        raise SplitSizeError("the forget list is empty")
    wanted = set(ids)
    return "custom", [i for i in ds.ids if i in wanted]


def pair_id(ind: Individual, j: int) -> str:
    """The canonical id of pair ``j`` of ``ind``: ``"<category>/<unique_id>:<j>"``."""
    return f"{ind.qa_list[j].category}/{ind.unique_id}:{j}"


def parse_pair_id(text: object) -> tuple[str | None, str, int]:
    """``(category or None, unique_id, pair index)`` of ``"[<category>/]<unique_id>:<j>"``."""
    if not isinstance(text, str):
        raise UnknownPairError(f"a pair id must be a string, not {type(text).__name__}")
    category, sep, rest = text.strip().rpartition("/")
    uid, colon, index = rest.rpartition(":")
    if not colon or not uid or not index.isdigit() or (sep and not category):
        raise UnknownPairError(
            f"pair id {text!r} is not '<unique_id>:<pair index>' (e.g. '00000004:2', "
            "optionally after its category: 'health/00000004:2')"
        )
    return (category.lower() if sep else None), uid, int(index)


def resolve_pair_ids(
    ds: FiuDataset, forget_ids: Sequence[str], pair_ids: Iterable[object]
) -> list[str]:
    """The canonical ids (:func:`pair_id`, deduplicated, in the order given) of ``pair_ids``,
    each a pair of one of ``forget_ids``; :class:`UnknownPairError` names every bad one."""
    wanted = {str(i) for i in forget_ids}
    out: list[str] = []
    bad: list[str] = []
    for raw in pair_ids:
        category, uid, j = parse_pair_id(raw)
        if uid not in wanted:
            bad.append(f"{raw!r} (a pair of {uid!r}, who is not among the people to forget)")
            continue
        try:
            ind = ds.by_id(uid)
        except UnknownIdError:
            bad.append(f"{raw!r} (no person {uid!r})")
            continue
        if j >= len(ind.qa_list):
            bad.append(f"{raw!r} ({uid} has {len(ind.qa_list)} pairs, numbered from 0)")
        elif category is not None and category != ind.qa_list[j].category.lower():
            bad.append(f"{raw!r} (pair {j} of {uid} is {ind.qa_list[j].category}, not {category})")
        elif pair_id(ind, j) not in out:
            out.append(pair_id(ind, j))
    if bad:
        raise UnknownPairError("unknown pair ids: " + "; ".join(bad))
    if not out:
        raise UnknownPairError("the pair list is empty")
    return out


def make_split(
    ds: FiuDataset,
    forget: str | Sequence[str] | int | float,
    setting: str = "private",
    *,
    seed: int = 0,
    private_categories: Iterable[str] = PRIVATE_CATEGORIES,
    pair_ids: Iterable[str] | None = None,
) -> Split:
    """Build the forget / retain / non-private sets of ``ds`` for ``forget`` in ``setting``.

    With ``pair_ids`` (pairs of the forget people, see :func:`resolve_pair_ids`), D_f is
    exactly those pairs and the people's other pairs are D_np; the setting must be
    ``"private"`` and ``private_categories`` is ignored (the split's is empty: no category is
    forgotten as a whole).
    """
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    name, ids = resolve_forget_ids(ds, forget, seed)
    pairs: set[tuple[str, int]] | None = None
    chosen: list[str] = []
    if pair_ids is not None:
        if setting != "private":
            raise ValueError("single pairs are forgotten in the private setting only")
        chosen = resolve_pair_ids(ds, ids, pair_ids)
        pairs = {(uid, j) for _, uid, j in map(parse_pair_id, chosen)}
        private_categories = ()
    private = frozenset(private_categories)
    split = Split(
        name=name,
        setting=setting,
        forget_ids=tuple(ids),
        private_categories=private,
        pair_ids=tuple(chosen),
    )
    forget_set = set(ids)
    for ind in ds.individuals:
        for j, qa in enumerate(ind.qa_list):
            s = sample_of(ind, j)
            if ind.unique_id not in forget_set:
                split.retain_set.append(s)
            elif (
                (ind.unique_id, j) in pairs
                if pairs is not None
                else setting == "identity" or qa.category in private
            ):
                split.forget_set.append(s)
            else:
                split.nonprivate_set.append(s)
                split.retain_set.append(s)
    return split
