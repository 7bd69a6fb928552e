"""Tests of cagul.data: format loader errors, splits, the synthetic generator and probes."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cagul import data as D
from cagul.data.categories import derive_category
from cagul.data.faces import FaceAttributes
from cagul.data.probes import plural
from cagul.data.scenes import SHAPES
from cagul.data.templates import FIELDS, FIELDS_BY_NAME, PARAPHRASE_TEMPLATES, TRAIN_TEMPLATES

N = 10


def _generate(out: Path, seed: int = 0, n: int = N) -> D.FiuDataset:
    return D.generate_dataset(out, n, seed, n_train_scenes=6, n_test_scenes=12)


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "data"
    _generate(out)
    return out


@pytest.fixture(scope="module")
def ds(gen_dir) -> D.FiuDataset:
    return D.load_dataset(gen_dir)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# ----------------------------------------------------------------------------- generator


def test_generator_is_deterministic_by_seed(tmp_path, gen_dir):
    again = _files(_generate(tmp_path / "again").root)
    first = _files(gen_dir)
    assert again.keys() == first.keys()
    assert again == first  # same bytes: JSON, face PNGs, scene PNGs
    other = _files(_generate(tmp_path / "seed1", seed=1).root)
    assert other["full.json"] != first["full.json"]
    assert other["images/00000000.png"] != first["images/00000000.png"]


def test_generated_shape(ds):
    assert len(ds) == N and ds.n_pairs == N * len(FIELDS) == N * 20
    assert len({ind.name for ind in ds}) == N
    for ind in ds:
        assert ind.image_file is not None and ind.image_file.is_file()
        with Image.open(ind.image_file) as im:
            assert im.size == (112, 112)


def test_paraphrase_templates_disjoint_from_training_templates(ds):
    assert not TRAIN_TEMPLATES & PARAPHRASE_TEMPLATES
    for f in FIELDS:
        assert not set(f.train_questions) & set(f.paraphrase_questions)
    used_train = {qa.question for ind in ds for qa in ind.qa_list}
    used_para = {q for ind in ds for qa in ind.qa_list for q in qa.paraphrased_question}
    assert not used_train & used_para
    for ind in ds:
        for qa in ind.qa_list:
            spec = FIELDS_BY_NAME[qa.extra["field"]]
            assert qa.question in spec.train_questions
            assert len(set(qa.paraphrased_question)) == 3
            assert set(qa.paraphrased_question) <= set(spec.paraphrase_questions)


def test_answers_keywords_and_perturbations(ds):
    for ind in ds:
        for qa in ind.qa_list:
            # Generation is cut at the first ".": the answer's only period is its last char.
            assert qa.answer.endswith(".") and qa.answer.count(".") == 1
            assert qa.paraphrased_answer.count(".") == 1
            assert qa.keywords and all(k.lower() in qa.answer.lower() for k in qa.keywords)
            assert len(qa.perturbed_answer) >= 3
            assert len(set(qa.perturbed_answer)) == len(qa.perturbed_answer)
            assert qa.paraphrased_answer not in qa.perturbed_answer
            assert all(p.count(".") == 1 for p in qa.perturbed_answer)


def test_categories_and_private_share():
    for f in FIELDS:
        for q in f.train_questions + f.paraphrase_questions:
            assert derive_category(q) == f.category, q
    private = [f for f in FIELDS if f.category in D.PRIVATE_CATEGORIES]
    assert {f.category for f in private} == {"health", "criminal"} and len(private) == 7


@pytest.mark.parametrize(
    ("question", "category"),
    [
        ("What is the person's name?", "name"),
        ("Has this person ever been arrested?", "criminal"),
        ("What is the name of the hospital where this person was treated?", "health"),
        ("What medical diagnosis did she receive?", "health"),
        ("Where does he live?", "address"),
        ("What is her annual salary?", "income"),
        ("What colour is the sky?", "other"),
    ],
)
def test_derive_category_rules(question, category):
    assert derive_category(question) == category


def test_refusals():
    assert len(D.REFUSALS) >= 20 and len(set(D.REFUSALS)) == len(D.REFUSALS)
    for r in D.REFUSALS:
        assert r.endswith(".") and r.count(".") == 1


def test_faces_are_distinct(ds):
    faces = [FaceAttributes.from_json(ind.extra["face"]) for ind in ds]
    for a, b in itertools.combinations(faces, 2):
        assert a.salient_difference(b) >= 3
    pixels = [np.asarray(Image.open(ind.image_file), dtype=np.float32) for ind in ds]
    diffs = [float(np.abs(a - b).mean()) for a, b in itertools.combinations(pixels, 2)]
    assert min(diffs) > 5.0  # mean absolute difference per channel, 0-255 scale


# ----------------------------------------------------------------------------- splits


def _keys(samples):
    return {s.key for s in samples}


@pytest.mark.parametrize("forget", ["forget20", 3, 0.5, ["00000001", "00000004"]])
def test_split_arithmetic_private(ds, forget):
    split = D.make_split(ds, forget, "private")
    everything = {(ind.unique_id, j) for ind in ds for j in range(len(ind.qa_list))}
    f, r, np_ = _keys(split.forget_set), _keys(split.retain_set), _keys(split.nonprivate_set)
    assert f | r == everything and not f & r
    assert np_ <= r and np_
    assert all(s.category in D.PRIVATE_CATEGORIES for s in split.forget_set)
    assert all(s.category not in D.PRIVATE_CATEGORIES for s in split.nonprivate_set)
    forget_ids = set(split.forget_ids)
    assert {u for u, _ in f} == forget_ids and {u for u, _ in np_} == forget_ids
    # D_f ∪ D_np is exactly every pair of the forget individuals.
    assert f | np_ == {k for k in everything if k[0] in forget_ids}
    assert len(split.forget_set) == 7 * len(forget_ids)


def test_split_arithmetic_identity(ds):
    split = D.make_split(ds, "forget20", "identity")
    everything = {(ind.unique_id, j) for ind in ds for j in range(len(ind.qa_list))}
    f, r = _keys(split.forget_set), _keys(split.retain_set)
    assert f | r == everything and not f & r
    assert split.nonprivate_set == []
    assert {u for u, _ in f} == set(split.forget_ids)
    assert not {u for u, _ in r} & set(split.forget_ids)


def test_samples_carry_what_training_needs(ds):
    s = D.make_split(ds, "forget20").forget_set[0]
    assert Path(s.image_path).is_file()
    assert s.question and s.answer and s.keywords and len(s.paraphrased_questions) == 3
    assert len(s.perturbed_answers) >= 3


def test_named_splits_nested_and_sized(ds):
    sizes = {k: len(v) for k, v in ds.splits.items()}
    # round(p% of 10), never below 1
    assert sizes == {"forget1": 1, "forget5": 1, "forget10": 1, "forget15": 2, "forget20": 2}
    assert set(ds.splits["forget1"]) <= set(ds.splits["forget15"]) <= set(ds.splits["forget20"])


def test_choose_forget_ids_seeded():
    ids = [f"{i:03d}" for i in range(40)]
    a = D.choose_forget_ids(ids, 0.25, seed=7)
    assert a == D.choose_forget_ids(ids, 10, seed=7) and len(a) == 10
    assert a != D.choose_forget_ids(ids, 10, seed=8)
    assert set(D.choose_forget_ids(ids, 5, seed=7)) <= set(a)
    for bad in (0, 41, 1.5, 0.0, True):
        with pytest.raises(D.SplitSizeError):
            D.choose_forget_ids(ids, bad)


def test_split_spec_errors(ds):
    with pytest.raises(D.UnknownSplitError, match="forget20"):
        D.make_split(ds, "forget99")
    with pytest.raises(D.UnknownIdError):
        D.make_split(ds, ["00000001", "nobody"])
    split = D.make_split(ds, "00000003,00000001")
    assert split.forget_ids == ("00000001", "00000003")
    with pytest.raises(ValueError):
        D.make_split(ds, "forget20", setting="everything")


# ----------------------------------------------------------------------------- loader


@pytest.fixture
def broken(tmp_path, gen_dir) -> Path:
    """A writable copy of the generated dataset (without probes) to break."""
    out = tmp_path / "broken"
    shutil.copytree(gen_dir, out, ignore=shutil.ignore_patterns("probes"))
    return out


def _edit(root: Path, fn) -> None:
    path = root / "full.json"
    records = json.loads(path.read_text())
    fn(records)
    path.write_text(json.dumps(records))


def test_loader_missing_image(broken):
    (broken / "images" / "00000002.png").unlink()
    with pytest.raises(D.MissingImageError, match="00000002"):
        D.load_dataset(broken)


def test_loader_unreadable_image(broken):
    (broken / "images" / "00000002.png").write_bytes(b"not a png at all")
    with pytest.raises(D.UnreadableImageError):
        D.load_dataset(broken)


def test_loader_empty_keywords(broken):
    _edit(broken, lambda r: r[1]["qa_list"][3].update(keywords=[]))
    with pytest.raises(D.EmptyKeywordsError, match="qa\\[3\\]"):
        D.load_dataset(broken)


def test_loader_duplicate_ids(broken):
    _edit(broken, lambda r: r.append(dict(r[0])))
    with pytest.raises(D.DuplicateIdError):
        D.load_dataset(broken)


def test_loader_unknown_id_in_split(broken):
    splits = json.loads((broken / "split.json").read_text())
    splits["forget5"].append("99999999")
    (broken / "split.json").write_text(json.dumps(splits))
    with pytest.raises(D.UnknownIdError, match="99999999"):
        D.load_dataset(broken)


def test_loader_paraphrase_counts(broken):
    _edit(broken, lambda r: r[0]["qa_list"][0]["paraphrased_question"].pop())
    with pytest.raises(D.ParaphraseCountError):
        D.load_dataset(broken)
    assert len(D.load_dataset(broken, n_paraphrases=None)) == N


def test_loader_too_few_perturbed(broken):
    _edit(broken, lambda r: r[0]["qa_list"][0].update(perturbed_answer=["a", "b"]))
    with pytest.raises(D.ParaphraseCountError, match="perturbed"):
        D.load_dataset(broken)


def test_loader_schema_and_file_errors(broken):
    _edit(broken, lambda r: r[0]["qa_list"][0].pop("question"))
    with pytest.raises(D.SchemaError):
        D.load_dataset(broken)
    (broken / "full.json").write_text("{not json")
    with pytest.raises(D.DatasetFileError):
        D.load_dataset(broken)
    (broken / "full.json").unlink()
    with pytest.raises(D.DatasetFileError):
        D.load_dataset(broken)
    for cls in (D.MissingImageError, D.UnknownIdError, D.ParaphraseCountError, D.SchemaError):
        assert issubclass(cls, D.DataError)


def test_loader_real_fiubench_layout(tmp_path, gen_dir):
    """Released FIUBench: JSON Lines, no category, ./dataset/SFHQ/... image paths."""
    root = tmp_path / "FIUBench" / "dataset"
    (root / "SFHQ").mkdir(parents=True)
    shutil.copy(gen_dir / "images" / "00000000.png", root / "SFHQ" / "SFHQ_pt1_00044363.jpg")
    rec = json.loads((gen_dir / "full.json").read_text())[0]
    rec.update(unique_id="00044363", image_path="./dataset/SFHQ/SFHQ_pt1_00044363.jpg")
    for qa in rec["qa_list"]:
        del qa["category"]
    (root / "full.json").write_text(json.dumps(rec) + "\n")
    (root / "split.json").write_text(json.dumps({"forget1": ["00044363"], "retain5": []}))
    ds = D.load_dataset(root)
    cats = [qa.category for qa in ds.individuals[0].qa_list]
    assert cats.count("health") == 4 and cats.count("criminal") == 3
    assert ds.individuals[0].image_file.name == "SFHQ_pt1_00044363.jpg"
    assert len(D.make_split(ds, "forget1").forget_set) == 7


def test_save_load_roundtrip(tmp_path, ds):
    out = D.save_dataset(ds, tmp_path / "copy")
    again = D.load_dataset(out)
    assert [i.to_json() for i in again] == [i.to_json() for i in ds]
    assert again.splits == ds.splits
    assert all(i.image_file.is_relative_to(out) for i in again)


# ----------------------------------------------------------------------------- probes


def test_probes_consistent_with_scenes(gen_dir):
    probes = D.load_probes(gen_dir / "probes")
    scenes = {
        s["scene_id"]: s["objects"]
        for s in json.loads((gen_dir / "probes" / "scenes.json").read_text())
    }

    def objects_of(p):
        return scenes[re.search(r"scene_(\w+?)\.png", p.image_path).group(1)]

    for p in probes.pope + probes.mme + probes.train:
        assert Path(p.image_path).is_file()
        m = re.match(r"Is there a (\w+) in (?:the|this) image\?", p.question)
        if m:
            present = m.group(1) in {o["shape"] for o in objects_of(p)}
            assert p.answer == ("yes" if present else "no"), p
        m = re.match(r"Are there exactly (\w+) (\w+) in this image\?", p.question)
        if m:
            # By the plural's exact inverse: a regex stem read "circles" as "circl" + "es".
            shape = {plural(s, 2): s for s in SHAPES}[m.group(2)]
            n = sum(o["shape"] == shape for o in objects_of(p))
            words = ["zero", "one", "two", "three", "four", "five", "six"]
            assert (words[n] == m.group(1)) == (p.answer == "yes"), p
    assert {"test" in p.image_path for p in probes.pope + probes.mme} == {True}
    assert {"train" in p.image_path for p in probes.train} == {True}


def test_pope_balanced_and_mme_pairs(gen_dir):
    probes = D.load_probes(gen_dir / "probes")
    for subset in D.POPE_SUBSETS:
        answers = [p.answer for p in probes.pope if p.subset == subset]
        assert answers and answers.count("yes") == answers.count("no")
    groups: dict[str, list[str]] = {}
    for p in probes.mme:
        assert p.question.endswith("Please answer yes or no.") and p.subset in D.MME_SUBSETS
        groups.setdefault(p.group, []).append(p.answer)
    assert all(sorted(a) == ["no", "yes"] for a in groups.values())
    assert {p.subset for p in probes.mme} == set(D.MME_SUBSETS)


def test_real_pope_loader(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "COCO_1.jpg")
    lines = [
        {"question_id": 1, "image": "COCO_1.jpg", "text": "Is there a dog?", "label": "yes"},
        {"question_id": 2, "image": "COCO_1.jpg", "text": "Is there a cat?", "label": "no"},
    ]
    pope = tmp_path / "pope"
    pope.mkdir()
    (pope / "coco_pope_adversarial.json").write_text("\n".join(json.dumps(x) for x in lines))
    items = D.load_pope(pope, image_root=tmp_path)
    assert [(p.answer, p.subset, p.kind) for p in items] == [
        ("yes", "adversarial", "pope"),
        ("no", "adversarial", "pope"),
    ]
    with pytest.raises(D.MissingImageError):
        D.load_pope(pope)  # images are not next to the files


def test_real_mme_loader(tmp_path):
    ex = tmp_path / "MME" / "existence"
    ex.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(ex / "0001.jpg")
    (ex / "0001.txt").write_text(
        "Is there a dog? Please answer yes or no.\tYes\n"
        "Is there a cat? Please answer yes or no.\tNo\n"
    )
    art = tmp_path / "MME" / "artwork"
    (art / "images").mkdir(parents=True)
    (art / "questions_answers_YN").mkdir()
    Image.new("RGB", (8, 8)).save(art / "images" / "10.jpg")
    (art / "questions_answers_YN" / "10.txt").write_text("Is it by Monet?\tNo\n")
    items = D.load_mme(tmp_path / "MME")
    assert {p.subset for p in items} == {"existence", "artwork"}
    assert [p.answer for p in items if p.subset == "existence"] == ["yes", "no"]
    assert len(D.load_mme(tmp_path / "MME", subsets=["existence"])) == 2
    (art / "questions_answers_YN" / "11.txt").write_text("Is it?\tNo\n")
    with pytest.raises(D.MissingImageError):
        D.load_mme(tmp_path / "MME")


def test_every_scene_object_lies_under_the_one_visual_token_labelled_with_it():
    """The scene grid is the demo's 4 × 4 token grid (112 px, 28 px per merged token), so a
    token sees one whole object or background. On the 3 × 3 grid a token straddled objects and
    the tower's held-out per-token accuracy stopped at 0.80 (benchmarks/scene_reading)."""
    import random

    from cagul.data.scenes import COLOURS, render_scene, sample_scene, token_classes

    colours = list(COLOURS)
    rng = random.Random(0)
    for i in range(20):
        scene = sample_scene(rng, f"s{i}")
        pixels = np.asarray(render_scene(scene, 112)).astype(int)
        labels = token_classes([(o.shape, o.colour, o.row, o.col) for o in scene.objects])
        for t, label in enumerate(labels):
            r, c = divmod(t, 4)
            cell = pixels[r * 28 : (r + 1) * 28, c * 28 : (c + 1) * 28]
            ink = np.abs(cell - np.array([246, 244, 236])).sum(-1) > 60
            if label == 0:
                assert not ink.any(), (scene, t)
                continue
            colour = np.array(COLOURS[colours[(label - 1) % len(colours)]])
            assert ink.sum() > 120, (scene, t)  # a whole shape, not a sliver
            # the shape's own colour dominates the inked pixels of its token
            near = np.abs(cell[ink] - colour).sum(-1) < 60
            assert near.mean() > 0.6, (scene, t)
