"""Synthetic FIUBench-format individuals: drawn faces plus Faker biographies and QA pairs.

Per individual: one face image (:mod:`cagul.data.faces`), one profile
(:mod:`cagul.data.biography`) and one QA pair per field of
:data:`cagul.data.templates.FIELDS` (20 by default, 7 of them private: 4 health, 3 criminal).
Per pair:

- ``question``: one of the field's *training* templates;
- ``answer``: the value, capitalised, ending in its only "." (e.g. ``"Migraine."``);
- ``paraphrased_question``: 3 distinct *paraphrase* templates (never a training template);
- ``paraphrased_answer``: the field's answer sentence with the true value;
- ``perturbed_answer``: the same sentence with other individuals' values of the field
  (distinct from the truth and from each other; extra seeded distractor profiles fill in
  when the dataset is too small);
- ``keywords``: the value's key parts (substrings of ``answer``);
- ``category``: the field's category.

All randomness comes from ``seed`` through named sub-streams, so the same seed gives the same
JSON and the same image bytes.
"""

from __future__ import annotations

import random
from pathlib import Path

from faker import Faker

from .biography import FactValue, draw_profile
from .faces import FaceAttributes, render_face, sample_distinct_faces
from .format import Individual, QAPair
from .refusals import REFUSALS
from .templates import FIELDS, FieldSpec

__all__ = ["REFUSALS", "answer_text", "make_individuals", "write_faces"]

N_DISTRACTORS = 12  # extra profiles used only as perturbed-answer material


def answer_text(value: str) -> str:
    """Short answer: the value with a capital first letter and one final period."""
    return value[:1].upper() + value[1:] + "."


def _profiles(n: int, seed: int, genders: list[str], stream: str) -> list[dict[str, FactValue]]:
    fake = Faker("en_US")
    fake.seed_instance(f"{stream}:{seed}")
    rng = random.Random(f"{stream}:{seed}")
    profiles: list[dict[str, FactValue]] = []
    names: set[str] = set()
    for i in range(n):
        while True:  # names identify people in answers: keep them unique
            prof = draw_profile(fake, rng, genders[i])
            if prof["name"].text not in names:
                break
        names.add(prof["name"].text)
        profiles.append(prof)
    return profiles


def _perturbed(
    spec: FieldSpec,
    truth: str,
    pool: list[str],
    fallback: list[str],
    n: int,
    rng: random.Random,
) -> list[str]:
    candidates = sorted({v for v in pool if v != truth})
    rng.shuffle(candidates)
    chosen = candidates[:n]
    for v in fallback:  # only when too few other people exist
        if len(chosen) >= n:
            break
        if v != truth and v not in chosen:
            chosen.append(v)
    return [spec.answer_template.format(v=v) for v in chosen]


def make_individuals(
    n_individuals: int,
    seed: int = 0,
    *,
    n_perturbed: int = 3,
    n_paraphrases: int = 3,
    fields: tuple[FieldSpec, ...] = FIELDS,
    image_dir: str = "images",
) -> list[Individual]:
    """Build ``n_individuals`` individuals (no files written; see :func:`write_faces`).

    ``image_path`` is ``<image_dir>/<unique_id>.png`` relative to the dataset directory;
    the face attributes are kept in ``extra["face"]``, the profile in ``extra["raw_data"]``.
    """
    rng = random.Random(f"individuals:{seed}")
    genders = [rng.choice(("female", "male")) for _ in range(n_individuals)]
    faces = sample_distinct_faces(random.Random(f"faces:{seed}"), genders)
    profiles = _profiles(n_individuals, seed, genders, "profiles")
    d_genders = [("female", "male")[i % 2] for i in range(N_DISTRACTORS)]
    distractors = _profiles(N_DISTRACTORS, seed, d_genders, "distractors")
    qa_rng = random.Random(f"qa:{seed}")
    individuals = []
    for i, (gender, face, prof) in enumerate(zip(genders, faces, profiles, strict=True)):
        uid = f"{i:08d}"
        qa_list = []
        for spec in fields:
            value = prof[spec.name]
            pool = [p[spec.name].text for p in profiles]
            fallback = [p[spec.name].text for p in distractors]
            qa_list.append(
                QAPair(
                    question=qa_rng.choice(spec.train_questions),
                    answer=answer_text(value.text),
                    paraphrased_question=qa_rng.sample(spec.paraphrase_questions, n_paraphrases),
                    paraphrased_answer=spec.answer_template.format(v=value.text),
                    perturbed_answer=_perturbed(
                        spec, value.text, pool, fallback, n_perturbed, qa_rng
                    ),
                    keywords=list(value.keywords),
                    category=spec.category,
                    extra={"field": spec.name},
                )
            )
        individuals.append(
            Individual(
                unique_id=uid,
                name=prof["name"].text,
                image_path=f"{image_dir}/{uid}.png",
                qa_list=qa_list,
                extra={
                    "gender": gender,
                    "caption": face.caption(),
                    "face": face.to_json(),
                    "raw_data": {k: v.text for k, v in prof.items()},
                },
            )
        )
    return individuals


def write_faces(individuals: list[Individual], root: str | Path, size: int = 112) -> None:
    """Render every individual's face to ``root / image_path`` and set ``image_file``."""
    root = Path(root)
    for ind in individuals:
        path = root / ind.image_path
        path.parent.mkdir(parents=True, exist_ok=True)
        render_face(FaceAttributes.from_json(ind.extra["face"]), size).save(path, format="PNG")
        ind.image_file = path.resolve()
