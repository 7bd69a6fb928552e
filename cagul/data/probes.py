"""Synthetic general-ability probes in POPE and MME form, drawn on :mod:`cagul.data.scenes`.

Layout written by :func:`write_probes` under ``<dataset>/probes/``::

    images/scene_train_0000.png ...   scene images (train and test scenes are disjoint)
    scenes.json                       the objects of every scene
    train.json                        general VQA training items on the *train* scenes
    pope.json                         POPE items on the *test* scenes
    mme.json                          MME items on the *test* scenes

Every item is a :class:`Probe` ``{image_path, question, answer, kind, subset, group}`` with
``image_path`` relative to the probes directory in JSON (absolute after loading):

- POPE (``kind="pope"``): "Is there a {shape} in the image?"; per scene up to 3 present shapes
  (answer "yes") and as many absent ones (answer "no") chosen three ways, giving the subsets
  ``random`` (uniform), ``popular`` (most frequent shapes over the test scenes) and
  ``adversarial`` (shapes co-occurring most often with the present ones).
- MME (``kind="mme"``): each test scene gets one subset of ``existence``, ``count``,
  ``position``, ``color`` (round robin over what the scene supports) and two yes/no questions
  on it, one "yes" and one "no", ending in "Please answer yes or no." as MME does; ``group``
  names the image so acc+ (both questions right) is defined.
- Training items (``kind="vqa"``) on the train scenes: the same yes/no forms (MME and POPE
  wording) plus open
  questions ("How many stars are there?" → "two", "What colour is the heart?" → "red").

Answers are lower case without a final period ("yes", "no", "two", "red"); a trainer that
teaches the "answer ends at the first period" convention appends it itself.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .errors import DatasetFileError, SchemaError, UnsafePathError
from .scenes import COLOURS, SHAPES, Scene, SceneObject, render_scene, sample_scene

POPE_SUBSETS: tuple[str, ...] = ("random", "popular", "adversarial")
MME_SUBSETS: tuple[str, ...] = ("existence", "count", "position", "color")
MME_SUFFIX = " Please answer yes or no."
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six")


@dataclass(frozen=True)
class Probe:
    """One general-ability question about an image."""

    image_path: str
    question: str
    answer: str
    kind: str  # "pope" | "mme" | "vqa"
    subset: str
    group: str  # items sharing a group share an image (MME acc+ is computed per group)

    def to_json(self) -> dict[str, str]:
        """Plain dict for the probe files."""
        return asdict(self)


@dataclass
class ProbeSet:
    """The three probe lists of a dataset."""

    train: list[Probe]
    pope: list[Probe]
    mme: list[Probe]


def plural(shape: str, n: int) -> str:
    """`shape` in the plural when `n` is not 1 ("boxes", "circles")."""
    return shape if n == 1 else shape + "es" if shape.endswith(("ss", "x", "sh")) else shape + "s"


def _count_question(shape: str, n: int) -> str:
    if n == 1:
        return f"Is there exactly one {shape} in this image?"
    return f"Are there exactly {_NUMBERS[n]} {plural(shape, n)} in this image?"


def _name(scene: Scene, obj: SceneObject) -> str | None:
    """A unique description of ``obj`` in ``scene`` ("star" or "red star"), if one exists."""
    if scene.count(obj.shape) == 1:
        return obj.shape
    same = [o for o in scene.objects if o.shape == obj.shape and o.colour == obj.colour]
    return f"{obj.colour} {obj.shape}" if len(same) == 1 else None


def _position_pair(scene: Scene, rng: random.Random) -> tuple[str, str, str, str] | None:
    """(a, b, true relation, false relation) for two uniquely named objects, if possible."""
    named = [(o, n) for o in scene.objects if (n := _name(scene, o)) is not None]
    pairs = [(a, b) for a in named for b in named if a[0] != b[0]]
    rng.shuffle(pairs)
    for (a, na), (b, nb) in pairs:
        if a.col < b.col:
            return na, nb, "to the left of", "to the right of"
        if a.row < b.row:
            return na, nb, "above", "below"
    return None


def _mme_pair(scene: Scene, subset: str, rng: random.Random) -> tuple[str, str] | None:
    """(yes question, no question) of ``subset`` for ``scene``, or None if unsupported."""
    present = sorted(scene.shapes)
    absent = [s for s in SHAPES if s not in scene.shapes]
    if subset == "existence":
        return (
            f"Is there a {rng.choice(present)} in this image?",
            f"Is there a {rng.choice(absent)} in this image?",
        )
    if subset == "count":
        shape = rng.choice(present)
        n = scene.count(shape)
        wrong = n + 1 if n == 1 or rng.random() < 0.5 else n - 1
        return _count_question(shape, n), _count_question(shape, wrong)
    if subset == "position":
        pair = _position_pair(scene, rng)
        if pair is None:
            return None
        a, b, yes_rel, no_rel = pair
        return f"Is the {a} {yes_rel} the {b}?", f"Is the {a} {no_rel} the {b}?"
    if subset == "color":
        unique = [o for o in scene.objects if scene.count(o.shape) == 1]
        if not unique:
            return None
        obj = rng.choice(unique)
        other = rng.choice([c for c in COLOURS if c != obj.colour])
        return f"Is the {obj.shape} {obj.colour}?", f"Is the {obj.shape} {other}?"
    raise ValueError(f"unknown MME subset {subset!r}")


def make_mme(scenes: list[Scene], paths: dict[str, str], rng: random.Random) -> list[Probe]:
    """Two MME questions per scene, subsets assigned round robin over what each scene allows."""
    items: list[Probe] = []
    turn = 0
    for scene in scenes:
        for k in range(len(MME_SUBSETS)):
            subset = MME_SUBSETS[(turn + k) % len(MME_SUBSETS)]
            pair = _mme_pair(scene, subset, rng)
            if pair is not None:
                break
        else:  # existence always works, so this is unreachable; keep the invariant explicit
            raise RuntimeError(f"scene {scene.scene_id} supports no MME subset")
        turn = (MME_SUBSETS.index(subset) + 1) % len(MME_SUBSETS)
        qa = [(pair[0] + MME_SUFFIX, "yes"), (pair[1] + MME_SUFFIX, "no")]
        rng.shuffle(qa)  # the order of the two answers must not be a cue
        group = f"{scene.scene_id}/{subset}"
        items += [Probe(paths[scene.scene_id], q, a, "mme", subset, group) for q, a in qa]
    return items


def make_pope(scenes: list[Scene], paths: dict[str, str], rng: random.Random) -> list[Probe]:
    """POPE items: same positives for the three subsets, negatives chosen three ways."""
    freq = Counter(s for sc in scenes for s in sc.shapes)
    co = Counter((a, b) for sc in scenes for a in sc.shapes for b in sc.shapes if a != b)
    order = {s: i for i, s in enumerate(SHAPES)}  # deterministic tie-break
    items: list[Probe] = []
    for scene in scenes:
        present = sorted(scene.shapes)
        positives = rng.sample(present, min(3, len(present)))
        absent = [s for s in SHAPES if s not in scene.shapes]
        k = min(len(positives), len(absent))
        negatives = {
            "random": rng.sample(absent, k),
            "popular": sorted(absent, key=lambda s: (-freq[s], order[s]))[:k],
            "adversarial": sorted(
                absent, key=lambda s: (-sum(co[(p, s)] for p in present), -freq[s], order[s])
            )[:k],
        }
        for subset in POPE_SUBSETS:
            qa = [(s, "yes") for s in positives] + [(s, "no") for s in negatives[subset]]
            for shape, answer in qa:
                items.append(
                    Probe(
                        paths[scene.scene_id],
                        f"Is there a {shape} in the image?",
                        answer,
                        "pope",
                        subset,
                        scene.scene_id,
                    )
                )
    return items


def make_train_vqa(scenes: list[Scene], paths: dict[str, str], rng: random.Random) -> list[Probe]:
    """General VQA training items on the train scenes (yes/no and open questions)."""
    items: list[Probe] = []
    for scene in scenes:
        path, group = paths[scene.scene_id], scene.scene_id
        for subset in MME_SUBSETS:
            pair = _mme_pair(scene, subset, rng)
            if pair is not None:
                items.append(Probe(path, pair[0], "yes", "vqa", subset, group))
                items.append(Probe(path, pair[1], "no", "vqa", subset, group))
        # POPE phrasing too, so the evaluation wording is not new to the model.
        absent = [s for s in SHAPES if s not in scene.shapes]
        for shape, answer in (
            (rng.choice(sorted(scene.shapes)), "yes"),
            (rng.choice(absent), "no"),
        ):
            items.append(
                Probe(path, f"Is there a {shape} in the image?", answer, "vqa", "existence", group)
            )
        shape = rng.choice(sorted(scene.shapes))
        n = scene.count(shape)
        items.append(
            Probe(
                path, f"How many {plural(shape, 2)} are there?", _NUMBERS[n], "vqa", "count", group
            )
        )
        unique = [o for o in scene.objects if scene.count(o.shape) == 1]
        if unique:
            obj = rng.choice(unique)
            items.append(
                Probe(path, f"What colour is the {obj.shape}?", obj.colour, "vqa", "color", group)
            )
    return items


def write_probes(
    out_dir: str | Path,
    seed: int = 0,
    n_train_scenes: int = 200,
    n_test_scenes: int = 60,
    image_size: int = 112,
) -> ProbeSet:
    """Draw train and test scenes, write images and the probe files, return the items."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"scenes:{seed}")
    train = [sample_scene(rng, f"train_{i:04d}") for i in range(n_train_scenes)]
    test = [sample_scene(rng, f"test_{i:04d}") for i in range(n_test_scenes)]
    paths = {}
    for scene in train + test:
        rel = f"images/scene_{scene.scene_id}.png"
        render_scene(scene, image_size).save(out / rel, format="PNG")
        paths[scene.scene_id] = rel
    q_rng = random.Random(f"probes:{seed}")
    probes = ProbeSet(
        train=make_train_vqa(train, paths, q_rng),
        pope=make_pope(test, paths, q_rng),
        mme=make_mme(test, paths, q_rng),
    )
    _dump(out / "scenes.json", [s.to_json() for s in train + test])
    for name in ("train", "pope", "mme"):
        _dump(out / f"{name}.json", [p.to_json() for p in getattr(probes, name)])
    return _absolute(probes, out)


def _dump(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _absolute(probes: ProbeSet, root: Path) -> ProbeSet:
    def fix(items: list[Probe]) -> list[Probe]:
        return [replace(p, image_path=str((root / p.image_path).resolve())) for p in items]

    return ProbeSet(fix(probes.train), fix(probes.pope), fix(probes.mme))


def load_probe_file(path: str | Path) -> list[Probe]:
    """Read one probe file; image paths become absolute (relative to the file's folder)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetFileError(f"{path} does not exist")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetFileError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, list):
        raise DatasetFileError(f"{path} must hold a list of probes")
    items = []
    for i, obj in enumerate(raw):
        try:
            p = Probe(**{k: str(obj[k]) for k in Probe.__dataclass_fields__})
        except (KeyError, TypeError) as exc:
            raise SchemaError(f"{path}[{i}]: not a probe record ({exc})") from exc
        items.append(replace(p, image_path=_inside(path.parent, p.image_path, f"{path}[{i}]")))
    return items


def _inside(root: Path, image_path: str, where: str) -> str:
    """``root / image_path`` resolved, refused when it leaves ``root`` (``..``, absolute)."""
    lexical = Path(os.path.normpath(os.path.abspath(root / image_path)))
    if "\x00" in image_path or not lexical.is_relative_to(os.path.abspath(root)):
        raise UnsafePathError(f"{where}: image path {image_path!r} lies outside {root}")
    return str((root / image_path).resolve())


def load_probes(directory: str | Path) -> ProbeSet:
    """Load ``train.json``, ``pope.json`` and ``mme.json`` of a probes directory."""
    d = Path(directory)
    return ProbeSet(*(load_probe_file(d / f"{n}.json") for n in ("train", "pope", "mme")))
