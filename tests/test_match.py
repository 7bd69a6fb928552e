"""An uploaded photo matched to a known person (cagul.match) on the shipped demo bundle: a
perturbed or re-posed photo of a person matches that person above the threshold, probe scenes
are refused, bad uploads fail with a clear message; through the Studio, only officers match."""

import glob

import pytest
from PIL import Image

from cagul import perturb
from cagul.data import load_dataset
from cagul.data.faces import FaceAttributes, render_face
from cagul.inputs import UserInputError
from cagul.match import MATCH_THRESHOLD, MatchError, PersonMatcher
from cagul.models import load_vlm
from cagul.paths import default_data_dir, default_model_dir

PEOPLE = ["00000000", "00000004", "00000017"]


@pytest.fixture(scope="module")
def matcher():
    ds = load_dataset(default_data_dir())
    return PersonMatcher(load_vlm(default_model_dir(), device="cpu"), ds)


def photo(matcher, unique_id) -> Image.Image:
    return Image.open(matcher.dataset.by_id(unique_id).image_file).convert("RGB")


@pytest.mark.parametrize("unique_id", PEOPLE)
def test_perturbed_photos_match_their_person_above_the_threshold(matcher, unique_id):
    img = photo(matcher, unique_id)
    copies = {**perturb.fixed_perturbations(img), **perturb.audit_perturbations(img)}
    ind = matcher.dataset.by_id(unique_id)
    copies["re-posed"] = render_face(FaceAttributes.from_json(ind.extra["face"]), 112, variant=2)
    for name, copy in copies.items():
        m = matcher.match(copy)
        assert m.matched and m.unique_id == unique_id, (name, m.candidates)
        assert m.best.score >= MATCH_THRESHOLD, name
        assert unique_id in m.message() and f"{m.best.score:.3f}" in m.message()


def test_probe_scenes_match_nobody(matcher):
    scenes = sorted(glob.glob(str(matcher.dataset.root / "probes" / "images" / "*.png")))
    assert scenes
    for path in scenes[::40]:
        m = matcher.match(path)
        assert not m.matched and m.unique_id is None, (path, m.candidates[:1])
        assert m.best.score < MATCH_THRESHOLD
        assert "nobody matches" in m.message() and "nobody was selected" in m.message()
    out = m.to_json()
    assert out["matched"] is False and out["unique_id"] is None and len(out["candidates"]) == 3


def test_bad_uploads_fail_with_a_clear_message(matcher, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(UserInputError, match="not a readable image"):
        matcher.match(str(broken))
    with pytest.raises(UserInputError, match="not a readable image"):
        matcher.match(b"garbage bytes")
    with pytest.raises(MatchError, match="upload a photo"):
        matcher.match(None)
    with pytest.raises(ValueError, match="threshold"):
        PersonMatcher(matcher.vlm, matcher.dataset, threshold=0.0)


def test_only_officers_match_photos_and_nothing_is_stored(tmp_path):
    import storage
    from webui import auth, requests
    from webui.studio import Studio

    st = Studio(database_url=f"sqlite:///{tmp_path / 'match.sqlite'}")
    with st.db.transaction() as s:
        storage.create_user(s, "olga", "officer", "correct horse battery")
        storage.create_user(s, "vic", "viewer", "correct horse battery")
    olga = auth.sign_in(st.db, "olga", "correct horse battery")
    vic = auth.sign_in(st.db, "vic", "correct horse battery")
    img = perturb.fixed_perturbations(Image.open(st.image_of("00000004")))["all"]
    with pytest.raises(auth.ForbiddenError):
        requests.match_photo(st, vic, img)
    out = requests.match_photo(st, olga, img)
    assert out["matched"] and out["unique_id"] == "00000004"
    assert out["candidates"][0]["label"].startswith("00000004 · ")
    assert out["warnings"] == [] and out["margin"] > requests.AMBIGUOUS_MARGIN
    with st.db.read() as s:
        assert s.query(storage.ForgetRequest).count() == 0
    # A person already in a request is named as such before anyone adds them again.
    made = requests.submit(st, olga, individual_ids=["00000004"], categories_=["health"])
    again = requests.match_photo(st, olga, img)
    assert again["warnings"] == [f"already in request #{made['id']} (queued)"]
    close = {**out, "ambiguous": True, "earlier_requests": []}
    close["candidates"] = [{"label": "a", "score": 0.818}, {"label": "b", "score": 0.813}]
    assert requests.match_warnings(close)[0].startswith("close call: a 0.818 vs b 0.813")
