"""The FIUBench data format: dataclasses, a validating loader and a writer.

A dataset directory holds

- ``full.json``: a JSON list (JSON Lines is also accepted, as FIUBench's own loader does) of
  individuals ``{"unique_id", "name", "image_path", "qa_list": [QA, ...], ...}``; every QA is
  ``{"question", "answer", "paraphrased_question": [3 strings], "paraphrased_answer",
  "perturbed_answer": [>= 3 strings], "keywords": [...], "category"}``. Keys this module does
  not know (FIUBench's ``gender``, ``caption``, ``raw_data``; the generator's ``face``) are kept
  in ``extra`` and written back unchanged.
- the images, referenced by ``image_path``;
- ``split.json``: ``{split name: [unique_id, ...]}`` (FIUBench ships ``forget1``,
  ``forget5``, ``forget10``, ``retain5``, ``retain15``; the generator writes ``forgetP`` for
  several percentages P).

Where the released data differ from the clean format, the loader adapts and says so here:

- ``category`` missing → derived from the question (:mod:`cagul.data.categories`).
- ``image_path`` is resolved, in order, as: absolute; relative to the dataset directory;
  relative to its parent (FIUBench writes ``./dataset/SFHQ/...`` relative to the repository
  root that contains ``dataset/``); ``<dir>/<basename>``; ``<dir>/images/<basename>``.
  Whichever candidate is found must lie inside the dataset directory (the *root* of a
  dataset's images): ``..`` and absolute paths are normalised first, so ``../../etc/x.png``
  or an absolute path elsewhere is an :class:`UnsafePathError`, not a file read. Symlinks
  inside the dataset directory are followed (whoever can place them owns the folder).
- ``paraphrased_answer`` given as a one-element list is unwrapped; ``paraphrased_question``
  given as a single string counts as one paraphrase (and then fails the count check).
- ``name`` missing → ``unique_id`` is used as the name.
- blank keywords are dropped (``"" in pred`` is always true); none left is an error.

Validation raises the typed errors of :mod:`cagul.data.errors`: missing or unreadable image,
empty keywords, duplicate ids, unknown ids in a split, wrong paraphrase counts, schema errors,
unsafe paths. ``save_dataset`` writes copied images as ``images/<unique_id><suffix>`` and so
refuses a ``unique_id`` that is not a plain file name (a path separator, ``..``, NUL).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from .categories import derive_category
from .errors import (
    DatasetFileError,
    DuplicateIdError,
    EmptyKeywordsError,
    MissingImageError,
    ParaphraseCountError,
    SchemaError,
    UnknownIdError,
    UnknownSplitError,
    UnreadableImageError,
    UnsafePathError,
)

FULL_JSON = "full.json"
SPLIT_JSON = "split.json"
N_PARAPHRASES = 3
MIN_PERTURBED = 3

_QA_KEYS = (
    "question",
    "answer",
    "paraphrased_question",
    "paraphrased_answer",
    "perturbed_answer",
    "keywords",
    "category",
)
_INDIVIDUAL_KEYS = ("unique_id", "name", "image_path", "qa_list")


@dataclass
class QAPair:
    """One question/answer pair about an individual, with its evaluation variants."""

    question: str
    answer: str
    paraphrased_question: list[str]
    paraphrased_answer: str
    perturbed_answer: list[str]
    keywords: list[str]
    category: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The FIUBench JSON object of this pair (known keys first, then ``extra``)."""
        out: dict[str, Any] = {
            "question": self.question,
            "answer": self.answer,
            "paraphrased_question": list(self.paraphrased_question),
            "paraphrased_answer": self.paraphrased_answer,
            "perturbed_answer": list(self.perturbed_answer),
            "keywords": list(self.keywords),
            "category": self.category,
        }
        out.update(self.extra)
        return out


@dataclass
class Individual:
    """One person: an image and their QA pairs.

    ``image_path`` is the string stored in ``full.json``; ``image_file`` is the resolved
    absolute path (set by the loader or the generator, never written to JSON).
    """

    unique_id: str
    name: str
    image_path: str
    qa_list: list[QAPair]
    extra: dict[str, Any] = field(default_factory=dict)
    image_file: Path | None = None

    def to_json(self) -> dict[str, Any]:
        """The FIUBench JSON object of this individual."""
        out: dict[str, Any] = {
            "unique_id": self.unique_id,
            "name": self.name,
            "image_path": self.image_path,
            "qa_list": [qa.to_json() for qa in self.qa_list],
        }
        out.update(self.extra)
        return out


@dataclass
class FiuDataset:
    """A loaded dataset: individuals in file order plus the named splits of ``split.json``."""

    root: Path
    individuals: list[Individual]
    splits: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.individuals)

    def __iter__(self) -> Iterator[Individual]:
        return iter(self.individuals)

    @property
    def ids(self) -> list[str]:
        """All ``unique_id`` values in file order."""
        return [ind.unique_id for ind in self.individuals]

    @property
    def n_pairs(self) -> int:
        """Total number of QA pairs (|D|)."""
        return sum(len(ind.qa_list) for ind in self.individuals)

    def by_id(self, unique_id: str) -> Individual:
        """The individual with ``unique_id``; :class:`UnknownIdError` if absent."""
        index = self._index()
        if unique_id not in index:
            raise UnknownIdError(f"no individual with unique_id {unique_id!r} in {self.root}")
        return self.individuals[index[unique_id]]

    def split_ids(self, name: str) -> list[str]:
        """The ids of a named split; :class:`UnknownSplitError` lists the known names."""
        if name not in self.splits:
            known = ", ".join(sorted(self.splits)) or "none"
            raise UnknownSplitError(
                f"split {name!r} not in {self.root / SPLIT_JSON} (known: {known})"
            )
        return list(self.splits[name])

    def _index(self) -> dict[str, int]:
        return {ind.unique_id: i for i, ind in enumerate(self.individuals)}


# ----------------------------------------------------------------------------- reading


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DatasetFileError(f"{path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DatasetFileError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as first:
        # FIUBench's own loader accepts JSON Lines as well; do the same.
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:
            raise DatasetFileError(f"{path} is neither JSON nor JSON Lines: {first}") from None


def _str(obj: dict, key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise SchemaError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def _str_list(obj: dict, key: str, where: str) -> list[str]:
    value = obj.get(key)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SchemaError(f"{where}: field {key!r} must be a list of strings")
    return list(value)


def _parse_qa(obj: Any, where: str, n_paraphrases: int | None, min_perturbed: int) -> QAPair:
    if not isinstance(obj, dict):
        raise SchemaError(f"{where}: a QA pair must be an object")
    question = _str(obj, "question", where)
    answer = _str(obj, "answer", where)
    para_q = _str_list(obj, "paraphrased_question", where)
    para_a = obj.get("paraphrased_answer")
    if isinstance(para_a, list) and len(para_a) == 1 and isinstance(para_a[0], str):
        para_a = para_a[0]
    if not isinstance(para_a, str):
        raise SchemaError(f"{where}: field 'paraphrased_answer' must be a string")
    perturbed = _str_list(obj, "perturbed_answer", where)
    keywords = _str_list(obj, "keywords", where)
    if n_paraphrases is not None and len(para_q) != n_paraphrases:
        raise ParaphraseCountError(
            f"{where}: {len(para_q)} paraphrased questions, expected {n_paraphrases}"
        )
    if len(perturbed) < min_perturbed:
        raise ParaphraseCountError(
            f"{where}: {len(perturbed)} perturbed answers, expected at least {min_perturbed}"
        )
    keywords = [k for k in keywords if k.strip()]  # a blank keyword would match any answer
    if not keywords:
        raise EmptyKeywordsError(f"{where}: no keywords (question {question!r})")
    category = obj.get("category")
    if category is None:
        category = derive_category(question)
    elif not isinstance(category, str):
        raise SchemaError(f"{where}: field 'category' must be a string")
    extra = {k: v for k, v in obj.items() if k not in _QA_KEYS}
    return QAPair(question, answer, para_q, para_a, perturbed, keywords, category, extra)


def _normalised(path: Path) -> Path:
    """``path`` made absolute with ``.`` and ``..`` folded away lexically (no symlinks)."""
    return Path(os.path.normpath(os.path.abspath(path)))


def resolve_image(root: Path, image_path: str) -> Path | None:
    """Find ``image_path`` by the rules in the module docstring; ``None`` if nowhere.

    Raises :class:`UnsafePathError` when the path it names lies outside ``root``.
    """
    if "\x00" in image_path:
        raise UnsafePathError(f"image path {image_path!r} contains a NUL character")
    base = _normalised(root)
    p = Path(image_path)
    name = p.name
    candidates = [p] if p.is_absolute() else [root / p, root.parent / p]
    candidates += [root / name, root / "images" / name]
    outside = None
    for c in candidates:
        if not _normalised(c).is_relative_to(base):
            outside = outside or c
            continue
        if c.is_file():
            return c.resolve()
    if outside is not None and _normalised(outside).exists():
        raise UnsafePathError(f"image path {image_path!r} lies outside the dataset {root}")
    return None


def _check_image(path: Path, where: str) -> None:
    try:
        with Image.open(path) as im:
            im.verify()  # decodes the structure without loading all pixels
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImageError(f"{where}: image {path} cannot be read: {exc}") from exc


def _parse_individual(
    obj: Any,
    where: str,
    root: Path,
    n_paraphrases: int | None,
    min_perturbed: int,
    check_images: bool,
) -> Individual:
    if not isinstance(obj, dict):
        raise SchemaError(f"{where}: an individual must be an object")
    uid = obj.get("unique_id")
    if isinstance(uid, int):
        uid = str(uid)
    if not isinstance(uid, str) or not uid:
        raise SchemaError(f"{where}: field 'unique_id' must be a non-empty string")
    where = f"{where} (unique_id {uid})"
    name = obj.get("name", uid)
    if not isinstance(name, str):
        raise SchemaError(f"{where}: field 'name' must be a string")
    image_path = _str(obj, "image_path", where)
    qa_raw = obj.get("qa_list")
    if not isinstance(qa_raw, list) or not qa_raw:
        raise SchemaError(f"{where}: field 'qa_list' must be a non-empty list")
    qa_list = [
        _parse_qa(qa, f"{where} qa[{j}]", n_paraphrases, min_perturbed)
        for j, qa in enumerate(qa_raw)
    ]
    image_file = resolve_image(root, image_path)
    if image_file is None:
        raise MissingImageError(f"{where}: image {image_path!r} not found under {root}")
    if check_images:
        _check_image(image_file, where)
    extra = {k: v for k, v in obj.items() if k not in _INDIVIDUAL_KEYS}
    return Individual(uid, name, image_path, qa_list, extra, image_file)


def _parse_splits(raw: Any, path: Path, known: set[str]) -> dict[str, list[str]]:
    if not isinstance(raw, dict):
        raise DatasetFileError(f"{path} must be an object {{split name: [unique_id, ...]}}")
    splits: dict[str, list[str]] = {}
    for name, ids in raw.items():
        if not isinstance(ids, list):
            raise DatasetFileError(f"{path}: split {name!r} must be a list of ids")
        ids = [str(i) for i in ids]
        unknown = [i for i in ids if i not in known]
        if unknown:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise UnknownIdError(f"{path}: split {name!r} names unknown ids: {shown}")
        splits[name] = ids
    return splits


def load_dataset(
    directory: str | Path,
    *,
    n_paraphrases: int | None = N_PARAPHRASES,
    min_perturbed: int = MIN_PERTURBED,
    check_images: bool = True,
    limit: int | None = None,
) -> FiuDataset:
    """Load and validate a FIUBench-format directory.

    ``n_paraphrases=None`` accepts any number of paraphrased questions. ``check_images``
    decodes every image header (cheap; turn off only for huge sets you trust). ``limit`` keeps
    the first N individuals (FIUBench evaluates its first 400); split lists are then filtered
    to the kept ids instead of failing on them. A missing ``split.json`` means no named splits.
    """
    root = Path(directory).resolve()
    raw = _read_json(root / FULL_JSON)
    if isinstance(raw, dict) and "qa_list" in raw:
        raw = [raw]  # JSON Lines with a single line parses as one object
    if not isinstance(raw, list):
        raise DatasetFileError(f"{root / FULL_JSON} must hold a list of individuals")
    if limit is not None:
        raw = raw[:limit]
    individuals: list[Individual] = []
    seen: dict[str, int] = {}
    for i, obj in enumerate(raw):
        ind = _parse_individual(
            obj, f"{FULL_JSON}[{i}]", root, n_paraphrases, min_perturbed, check_images
        )
        if ind.unique_id in seen:
            raise DuplicateIdError(
                f"{FULL_JSON}: unique_id {ind.unique_id!r} at entries {seen[ind.unique_id]} and {i}"
            )
        seen[ind.unique_id] = i
        individuals.append(ind)
    splits: dict[str, list[str]] = {}
    split_path = root / SPLIT_JSON
    if split_path.is_file():
        split_raw = _read_json(split_path)
        if limit is not None and isinstance(split_raw, dict):
            split_raw = {
                k: [str(x) for x in v if str(x) in seen] if isinstance(v, list) else v
                for k, v in split_raw.items()
            }
        splits = _parse_splits(split_raw, split_path, set(seen))
    return FiuDataset(root, individuals, splits)


# ----------------------------------------------------------------------------- writing


def _write_json(path: Path, obj: Any) -> None:
    # Fixed formatting so the same dataset always gives the same bytes.
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _check_file_name(unique_id: str) -> None:
    """``unique_id`` names a file in ``images/``: no separator, no ``..``, nothing hidden."""
    bad = (
        not unique_id
        or unique_id in (".", "..")
        or any(sep in unique_id for sep in ("/", "\\", "\x00"))
        or unique_id.startswith(".")
    )
    if bad:
        raise UnsafePathError(
            f"unique_id {unique_id!r} cannot name an image file (no path separators, '..', "
            "leading dot or NUL)"
        )


def save_dataset(ds: FiuDataset, directory: str | Path) -> Path:
    """Write ``ds`` as a FIUBench-format directory and return its path.

    Images already inside ``directory`` are referenced by their relative path; others are
    copied to ``images/<unique_id><suffix>``. ``ds`` is not modified. Every id is checked
    before anything is written.
    """
    out = Path(directory).resolve()
    for ind in ds.individuals:
        _check_file_name(ind.unique_id)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for ind in ds.individuals:
        src = ind.image_file or resolve_image(ds.root, ind.image_path)
        if src is None:
            raise MissingImageError(
                f"unique_id {ind.unique_id}: image {ind.image_path!r} not found"
            )
        src = src.resolve()
        if src.is_relative_to(out):
            rel = src.relative_to(out).as_posix()
        else:
            (out / "images").mkdir(exist_ok=True)
            rel = f"images/{ind.unique_id}{src.suffix}"
            shutil.copyfile(src, out / rel)
        rec = ind.to_json()
        rec["image_path"] = rel
        records.append(rec)
    _write_json(out / FULL_JSON, records)
    _write_json(out / SPLIT_JSON, {k: list(v) for k, v in ds.splits.items()})
    return out
