"""Loaders for the real POPE and MME benchmarks from local files (nothing is downloaded).

Both return :class:`cagul.data.probes.Probe` lists, the same type as the synthetic probes, so
the evaluation code treats them alike. Answers are normalised to lower case "yes"/"no".

POPE (https://github.com/AoiDragon/POPE) — ``load_pope(path, image_root)``:
  ``path`` is one file or a directory of files named like ``coco_pope_random.json``,
  ``coco_pope_popular.json``, ``coco_pope_adversarial.json`` (the subset is taken from the
  file name). Each file is JSON Lines (as released) or a JSON list of
  ``{"question_id": 1, "image": "COCO_val2014_000000310196.jpg",
  "text": "Is there a snowboard in the image?", "label": "yes"}``.
  Images are looked up under ``image_root`` (default: the file's folder), e.g. COCO val2014.

MME (https://github.com/BradyFU/Awesome-Multimodal-Large-Language-Models, Evaluation) —
``load_mme(root, subsets=None)``: ``root`` is the unpacked ``MME_Benchmark_release_version``
with one folder per subtask (``existence``, ``count``, ``position``, ``color``, ``OCR``,
``artwork`` …). A subtask folder holds either image files with a same-named ``.txt`` beside
each (``000000006040.jpg`` + ``000000006040.txt``), or ``images/`` plus
``questions_answers_YN/`` with the ``.txt`` files. Each ``.txt`` line is
``question<TAB>answer`` (two lines per image, answers "Yes"/"No"). ``subsets`` restricts the
subtasks (default: all found). A JSON/JSONL file of ``{"image", "question", "answer",
"category"}`` records (the Hugging Face export) is accepted as ``root`` too; its images are
resolved relative to the file's folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .errors import DatasetFileError, MissingImageError, SchemaError
from .probes import POPE_SUBSETS, Probe

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".PNG", ".JPEG")


def _records(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
        return raw if isinstance(raw, list) else [raw]
    except json.JSONDecodeError:
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise DatasetFileError(f"{path} is neither JSON nor JSON Lines: {exc}") from exc


def _yes_no(value: object, where: str) -> str:
    ans = str(value).strip().lower()
    if ans not in ("yes", "no"):
        raise SchemaError(f"{where}: answer must be yes or no, got {value!r}")
    return ans


def load_pope(
    path: str | Path, image_root: str | Path | None = None, *, check_images: bool = True
) -> list[Probe]:
    """Load POPE items (see the module docstring for the expected files)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl"))
    elif path.is_file():
        files = [path]
    else:
        raise DatasetFileError(f"{path} does not exist")
    if not files:
        raise DatasetFileError(f"no POPE .json/.jsonl files in {path}")
    items: list[Probe] = []
    for f in files:
        subset = next((s for s in POPE_SUBSETS if s in f.stem), f.stem)
        root = Path(image_root) if image_root is not None else f.parent
        for i, rec in enumerate(_records(f)):
            where = f"{f}[{i}]"
            try:
                image, question, label = rec["image"], rec["text"], rec["label"]
            except (KeyError, TypeError) as exc:
                raise SchemaError(f"{where}: needs image, text and label ({exc})") from exc
            img = root / image
            if check_images and not img.is_file():
                raise MissingImageError(f"{where}: image {img} not found")
            items.append(
                Probe(str(img), str(question), _yes_no(label, where), "pope", subset, str(image))
            )
    return items


def _find_image(folder: Path, stem: str) -> Path | None:
    for suffix in _IMAGE_SUFFIXES:
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


def _mme_subtask(folder: Path) -> list[Probe]:
    if (folder / "questions_answers_YN").is_dir():
        qa_dir, img_dir = folder / "questions_answers_YN", folder / "images"
    else:
        qa_dir, img_dir = folder, folder
    items: list[Probe] = []
    for txt in sorted(qa_dir.glob("*.txt")):
        img = _find_image(img_dir, txt.stem)
        if img is None:
            raise MissingImageError(f"{txt}: no image {txt.stem}.* in {img_dir}")
        for n, line in enumerate(txt.read_text(encoding="utf-8").splitlines()):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2:
                raise SchemaError(f"{txt}:{n + 1}: expected question<TAB>answer")
            where = f"{txt}:{n + 1}"
            items.append(
                Probe(
                    str(img),
                    parts[0].strip(),
                    _yes_no(parts[1], where),
                    "mme",
                    folder.name,
                    f"{folder.name}/{img.name}",
                )
            )
    return items


def load_mme(root: str | Path, subsets: Iterable[str] | None = None) -> list[Probe]:
    """Load MME items (see the module docstring for the expected layout)."""
    root = Path(root)
    wanted = set(subsets) if subsets is not None else None
    if root.is_file():
        items = []
        for i, rec in enumerate(_records(root)):
            where = f"{root}[{i}]"
            try:
                cat = str(rec["category"])
                image = root.parent / str(rec["image"])
                probe = Probe(
                    str(image),
                    str(rec["question"]),
                    _yes_no(rec["answer"], where),
                    "mme",
                    cat,
                    f"{cat}/{Path(str(rec['image'])).name}",
                )
            except (KeyError, TypeError) as exc:
                raise SchemaError(f"{where}: needs image, question, answer, category") from exc
            if wanted is None or cat in wanted:
                items.append(probe)
        return items
    if not root.is_dir():
        raise DatasetFileError(f"{root} does not exist")
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if wanted is None or folder.name in wanted:
            items += _mme_subtask(folder)
    if not items:
        raise DatasetFileError(f"no MME subtasks found in {root}")
    return items
