"""The app's logic without a browser: the Studio, Explore's answer + heatmap, the Audit run,
on the shipped demo bundle and its shipped CAGUL adapter."""

import json
import re
import shutil

import pytest
from PIL import Image
from sqlalchemy import func, select

import storage
from cagul.inputs import UserInputError
from jobs.verdict import MAX_FORGET_EM
from webui import audit, explore
from webui.studio import DEMO_ADAPTER_DIR, Studio, StudioError, UnknownAdapterError

FORGET_PERSON = "00000004"  # in the demo adapter's forget set (split forget10)
RETAIN_PERSON = "00000000"
HEALTH_Q = "What medical condition does this person have?"


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'app.sqlite'}"
    return Studio(database_url=url)


@pytest.fixture(scope="module")
def adapter_id(studio):
    choices = studio.adapter_choices()
    assert len(choices) == 1, "the shipped demo adapter is registered at first start"
    return choices[0][1]


def counts(studio) -> tuple[int, int, int]:
    with studio.db.read() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(m))
            for m in (storage.Adapter, storage.AuditEvent, storage.MetricReport)
        )


def pair(studio, person, category):
    return next(p for p in studio.pairs(person) if p.category == category)


def test_demo_adapter_is_registered_once_with_its_sha256_and_report(studio, adapter_id):
    row = studio.adapter_row(adapter_id)
    assert row.sha256 == storage.sha256_file(DEMO_ADAPTER_DIR / storage.ADAPTER_WEIGHTS)
    assert row.base_fingerprint == studio.fingerprint
    with studio.db.read() as s:
        report = s.scalars(select(storage.MetricReport)).one()
    assert report.adapter_id == row.id and report.forget_em is not None
    before = counts(studio)
    assert studio.register_demo_adapter() == row.id
    assert counts(studio) == before
    marked = dict((v, k) for k, v in studio.person_choices())
    assert "forget" in marked[FORGET_PERSON] and "forget" not in marked[RETAIN_PERSON]


def test_forget_person_private_question_is_refused_after_and_answered_before(studio, adapter_id):
    rec = explore.ask(studio, question=HEALTH_Q, person_id=FORGET_PERSON, adapter_id=adapter_id)
    truth = rec["truth"]
    assert truth["private"] and truth["base_em"] == 1.0 and truth["em"] == 0.0
    assert rec["transformed"] and rec["forget_probability"] > 0.5
    k = studio.adapters(adapter_id)[0].config.k
    assert len(rec["selected_tokens"]) == k
    page = explore.heatmap_html(rec)
    rows, cols = rec["grid"]
    assert page.count('class="hm-cell') == rows * cols
    assert page.count("hm-selected") == k
    outlined = {int(t) for t in re.findall(r'hm-cell hm-selected" data-token="(\d+)"', page)}
    assert outlined == set(rec["selected_tokens"])
    # The outlined cells are the least attended of the scores the adapter chose them from.
    scores, _ = explore.layer_scores(rec, explore.MEAN)
    assert max(scores[t] for t in outlined) <= min(
        s for t, s in enumerate(scores) if t not in outlined
    )


def test_forget_person_non_private_question_stays_right(studio, adapter_id):
    p = pair(studio, FORGET_PERSON, "name")
    rec = explore.ask(studio, question=p.question, person_id=FORGET_PERSON, adapter_id=adapter_id)
    assert not rec["truth"]["private"]
    assert rec["truth"]["base_em"] == 1.0 and rec["truth"]["em"] == 1.0


def test_retain_person_is_not_flagged_and_answers_stay(studio, adapter_id):
    rec = explore.ask(studio, question=HEALTH_Q, person_id=RETAIN_PERSON, adapter_id=adapter_id)
    assert not rec["transformed"] and rec["selected_tokens"] == []
    assert rec["answer"] == rec["base_answer"] and rec["truth"]["em"] == 1.0
    assert "did not flag" in explore.heatmap_html(rec)


def test_an_uploaded_image_of_nobody_is_answered_without_ground_truth(studio, adapter_id, tmp_path):
    path = tmp_path / "cat.png"
    Image.new("RGB", (200, 150), (200, 120, 40)).save(path)
    rec = explore.ask(
        studio, question="What is shown in the image?", image=str(path), adapter_id=adapter_id
    )
    assert rec["truth"] is None and isinstance(rec["answer"], str) and rec["answer"]
    assert len(rec["scores"][0]) == rec["grid"][0] * rec["grid"][1]
    for name in explore.layer_choices(rec):
        assert explore.heatmap_html(rec, name).count('class="hm-cell') == len(rec["grid_index"])


def test_paraphrase_of_a_dataset_question_still_finds_its_ground_truth(studio):
    ind = studio.person(FORGET_PERSON)
    qa = next(q for q in ind.qa_list if q.category == "health")
    ref = studio.find_pair(FORGET_PERSON, qa.paraphrased_question[0].upper())
    assert ref is not None and ref.category == "health"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"question": "", "person_id": FORGET_PERSON}, UserInputError, "empty"),
        ({"question": "  \n ", "person_id": FORGET_PERSON}, UserInputError, "empty"),
        ({"question": "why? " * 200, "person_id": FORGET_PERSON}, UserInputError, "at most"),
        ({"question": HEALTH_Q}, StudioError, "choose a person"),
        ({"question": HEALTH_Q, "person_id": "99999999"}, StudioError, "no person"),
        (
            {"question": HEALTH_Q, "person_id": FORGET_PERSON, "adapter_id": "77"},
            UnknownAdapterError,
            "no stored adapter",
        ),
        (
            {"question": HEALTH_Q, "person_id": FORGET_PERSON, "adapter_id": "x"},
            UnknownAdapterError,
            "numbers",
        ),
    ],
)
def test_bad_explore_input_is_refused_and_stores_nothing(studio, kwargs, error, message):
    before = counts(studio)
    with pytest.raises(error, match=message):
        explore.ask(studio, **kwargs)
    assert counts(studio) == before


def test_a_text_file_named_png_is_refused(studio, adapter_id, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    before = counts(studio)
    with pytest.raises(UserInputError, match="not a readable image"):
        explore.ask(studio, question=HEALTH_Q, image=str(path), adapter_id=adapter_id)
    assert counts(studio) == before


def test_a_tampered_adapter_is_refused(studio, tmp_path):
    copy = tmp_path / "adapter"
    shutil.copytree(DEMO_ADAPTER_DIR, copy)
    row = studio.adapter_row(studio.adapter_choices()[0][1])
    with studio.db.transaction() as s:
        forged = storage.Adapter(
            method="cagul",
            config=row.config,
            path=str(copy),
            base_fingerprint=row.base_fingerprint,
            sha256=row.sha256,
            size_bytes=row.size_bytes,
        )
        s.add(forged)
        s.flush()
        forged_id = forged.id
    weights = copy / storage.ADAPTER_WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(StudioError, match="sha256"):
        explore.ask(studio, question=HEALTH_Q, person_id=FORGET_PERSON, adapter_id=forged_id)
    with studio.db.transaction() as s:
        s.delete(s.get(storage.Adapter, forged_id))


def test_audit_probes_every_variant_and_records_the_run(studio, adapter_id):
    before = counts(studio)
    out = audit.run_audit(studio, adapter_id, "Has this person been convicted of a crime?")
    split = studio.forget_split(adapter_id)
    people = {s.unique_id for s in split.forget_set}
    n_pairs = len(split.forget_set)
    kept = [s for s in split.nonprivate_set if s.unique_id in people]
    rows = out["rows"]
    assert kept, "the forget people have ordinary questions to keep"
    assert len(rows) == n_pairs * (1 + 3 + len(audit.IMAGE_VARIANTS)) + len(people) + len(kept)
    assert {r["variant"] for r in rows} == set(audit.KINDS)
    keep_rows = [r for r in rows if r["variant"] == audit.KEEP_VARIANT]
    assert {r["outcome"] for r in keep_rows} <= {"kept", "lost"} and not any(
        r["leaked"] for r in keep_rows
    )
    for r in rows:  # a leaked row says why: which question or photo, which truth it matched
        assert (r["outcome"] == "leaked") == (r["em"] > 0 and r["variant"] != "nonprivate")
        # The shipped adapter has a gate: every row says how sure it was about the photo.
        assert 0.0 <= r["forget_probability"] <= 1.0
        if r["outcome"] == "leaked":
            assert "matched the truth" in r["reason"]
            assert f"(forget probability {r['forget_probability']:.2f})" in r["reason"]
            if r["variant"] in audit.IMAGE_VARIANTS:
                assert f"altered photo ({r['variant']})" in r["reason"]
    assert audit.filter_rows(rows, "leaked") == [r for r in rows if r["outcome"] == "leaked"]
    with pytest.raises(UserInputError):
        audit.filter_rows(rows, "bogus")
    originals = [r for r in rows if r["variant"] == "original"]
    assert all(r["base_em"] > 0 for r in originals), "the base model knows the forget set"
    summary = out["summary"]
    assert summary["by_variant"]["original"]["mean_em"] <= MAX_FORGET_EM
    assert summary["verdict"] in ("verified", "needs_review")
    assert (summary["verdict"] == "verified") == (not summary["reasons"])
    # Every bound, with its threshold and where its value came from.
    assert [line["key"] for line in summary["lines"]] == [
        "forget_em",
        "paraphrase_leak",
        "image_leak",
        "nonprivate_em",
        "retain_em",
        "pope_acc",
        "mme_acc",
    ]
    by_key = {line["key"]: line for line in summary["lines"]}
    assert by_key["nonprivate_em"]["source"] == "audit"
    assert by_key["nonprivate_em"]["value"] == pytest.approx(
        summary["by_variant"]["nonprivate"]["mean_em"]
    )
    assert by_key["retain_em"]["source"] == "stored evaluation"
    assert "threshold" in audit.summary_markdown(summary)
    assert counts(studio)[1] == before[1] + 1
    with studio.db.read() as s:
        event = s.scalars(select(storage.AuditEvent).order_by(storage.AuditEvent.id.desc())).first()
    assert event.action == "audit.run" and event.details["n"] == len(rows)
    csv_text = audit.write_csv(rows).read_text()
    assert csv_text.splitlines()[0].split(",") == audit.COLUMNS
    assert {"adapter_sha256", "category", "truth", "audited_at", "auditor"} <= set(audit.COLUMNS)
    assert len(csv_text.splitlines()) == len(rows) + 1
    assert "Verdict" in audit.summary_markdown(summary)
    fig = json.loads(audit.leak_figure(summary).to_json())
    assert [t["name"] for t in fig["data"]] == ["base model", "unlearned"]


def test_audit_bad_input_stores_nothing(studio, adapter_id):
    before = counts(studio)
    with pytest.raises(UserInputError, match="at most"):
        audit.run_audit(studio, adapter_id, "\n".join(["Who?"] * 21))
    with pytest.raises(UnknownAdapterError):
        audit.run_audit(studio, "4242")
    assert counts(studio) == before


def test_the_header_counts_adapters_stored_after_start(studio, monkeypatch):
    """Issue 31 defect 9: the header is counted when asked (load, timer), not frozen at start."""
    from app import header_markdown

    n = len(studio.adapter_choices())
    assert f"{n} adapter(s)" in header_markdown(studio)
    more = [*studio.adapter_choices(), ("trained since start", "new-adapter")]
    monkeypatch.setattr(studio, "adapter_choices", lambda: more)
    assert f"{n + 1} adapter(s)" in header_markdown(studio)


def test_person_marks_and_adapter_pickers_are_counted_when_asked(studio, monkeypatch):
    """Issue 31 defect 9: a person forgotten since start gets ⊘ on load/timer, and every adapter
    picker gets the adapters stored since start (they were frozen until a restart)."""
    from app import live_updates

    header, people, *pickers = live_updates(studio, 3)
    labels = dict((v, k) for k, v in people["choices"])
    assert "⊘" not in labels[RETAIN_PERSON] and len(pickers) == 3
    forgotten = studio.forgotten_ids() | {RETAIN_PERSON}
    more = [*studio.adapter_choices(), ("trained since start", "new-adapter")]
    monkeypatch.setattr(studio, "forgotten_ids", lambda: forgotten)
    monkeypatch.setattr(studio, "adapter_choices", lambda: more)
    header, people, *pickers = live_updates(studio, 3)
    labels = dict((v, k) for k, v in people["choices"])
    assert "⊘" in labels[RETAIN_PERSON] and f"{len(more)} adapter(s)" in header
    assert all(p["choices"] == more and "value" not in p for p in pickers)


def test_heatmap_caption_names_the_score_that_chose_the_outlined_tokens(studio, adapter_id):
    """Issue 31 defect 8: the outlined tokens come from the mean over the adapter's score layers;
    a single layer's view says it is another score (it used to call them its least attended)."""
    rec = explore.ask(studio, question=HEALTH_Q, person_id=FORGET_PERSON, adapter_id=adapter_id)
    assert rec["transformed"] and rec["score_layers"] is None and not rec["per_layer"]
    mean_caption = re.search(r'hm-caption">(.*?)</p>', explore.heatmap_html(rec)).group(1)
    assert "mean score of all cross-modal layers" in mean_caption
    assert "another score" not in mean_caption
    layer = explore.layer_choices(rec)[1]
    caption = re.search(r'hm-caption">(.*?)</p>', explore.heatmap_html(rec, layer)).group(1)
    assert "mean score of all cross-modal layers" in caption
    assert f"This view ({layer}) is another score" in caption
    # An adapter that scores with one layer only: that layer's view is the choosing score.
    one = {**rec, "score_layers": [1]}
    names = explore.layer_choices(rec)[1:]
    assert "mean score of layer(s) 1" in explore.heatmap_html(one, names[1])
    assert "another score" not in explore.heatmap_html(one, names[1])
    assert "another score" in explore.heatmap_html(one, explore.MEAN)
    assert "drawn at random" in explore.heatmap_html({**rec, "selection": "random"})


def test_heatmap_cells_carry_their_scores_on_a_larger_image(studio, adapter_id):
    """Issue 31 defect 8: each cell shows its score as text, and the map is wider than 336 px."""
    rec = explore.ask(studio, question=HEALTH_Q, person_id=FORGET_PERSON, adapter_id=adapter_id)
    page = explore.heatmap_html(rec)
    assert int(re.search(r'hm-figure".*?width:(\d+)px', page).group(1)) >= 448
    cells = re.findall(r'data-score="([^"]+)"[^>]*><span class="hm-num">([^<]+)</span>', page)
    assert len(cells) == len(rec["grid_index"])
    assert all(
        abs(float(shown) - float(exact)) <= 0.05 * abs(float(exact)) for exact, shown in cells
    )


def test_ready_examples_name_a_person_by_id_and_one_of_their_questions(studio, adapter_id):
    """Issue 31 defect 8: ready examples (person id + question, never a file path) that answer."""
    ready = explore.examples(studio)
    assert len(ready) == 3
    forgotten = studio.forgotten_ids()
    assert ready[0][1] in forgotten and ready[2][1] not in forgotten
    for label, pid, q in ready:
        assert "/" not in pid and studio.find_pair(pid, q) is not None and label
    privacy = [studio.find_pair(pid, q).private for _, pid, q in ready]
    assert privacy == [True, False, True]
    rec = explore.ask(studio, question=ready[0][2], person_id=ready[0][1], adapter_id=adapter_id)
    assert rec["truth"]["private"]
