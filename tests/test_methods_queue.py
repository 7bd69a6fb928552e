"""A forget request stored with each registered method runs through the job queue (the real
runner, the real pipeline, a tiny model with the smallest settings) to a verdict, with its
artifact stored, verified and loadable; an unregistered method is refused at submission, and
one stored behind validation's back fails permanently in the default trainer."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select

import storage
from cagul.data import generate_dataset, load_dataset
from cagul.methods import METHODS, load_unlearned
from cagul.pipeline import run_unlearning
from jobs import UnlearnSettings, WorkerConfig, make_unlearn_handler, submit_forget_request
from jobs.worker import Worker
from storage import Adapter, ForgetRequest, Job, MetricReport
from storage.errors import InvalidRequestError
from tests.test_methods import fast_config

FAST = WorkerConfig(
    heartbeat_s=0.1, stale_after_s=5.0, poll_s=0.05, backoff_s=0.0, progress_every_s=0.0
)


@pytest.fixture
def storage_db(tmp_path):
    """A migrated SQLite database (the backends are compared in tests/test_jobs_runner.py)."""
    database = storage.connect(f"sqlite:///{tmp_path / 'methods.sqlite'}", upgrade=True)
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("queue_data")
    generate_dataset(out, n_individuals=4, seed=2, n_train_scenes=2, n_test_scenes=2)
    shutil.rmtree(out / "probes")  # no general probes: the smallest evaluation
    return out


def _fast_trainer(model_dir: str):
    """The real pipeline with each method's smallest settings and a short evaluation."""

    def trainer(**kwargs):
        return run_unlearning(
            **kwargs, config=fast_config(kwargs["method"], model_dir), max_retain=2
        )

    return trainer


def _worker(db, root, model_dir, data_dir, trainer=None) -> Worker:
    settings = UnlearnSettings(artifacts_root=root, model_dir=model_dir, data_dir=str(data_dir))
    handler = make_unlearn_handler(trainer=trainer, settings=settings)
    return Worker(db, FAST, gpu_mem_mb=0, handlers={"unlearn": handler})


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_a_request_of_each_method_runs_to_a_verdict(
    method, storage_db, tmp_path, tiny_dirs, tiny_vlms, data_dir
):
    ds = load_dataset(data_dir)
    person = ds.ids[0]
    model_dir = tiny_dirs["qwen2_5_vl"]
    with storage_db.transaction() as s:
        request, job = submit_forget_request(
            s,
            requester="Privacy Officer",
            individual_ids=[person],
            categories=["health", "criminal"],
            known_individuals=set(ds.ids),
            method=method,
        )
        request_id, job_id = request.id, job.id
    with _worker(storage_db, tmp_path, model_dir, data_dir, _fast_trainer(model_dir)) as w:
        outcome = w.run_one()
    assert outcome.status == "succeeded", outcome.error
    with storage_db.read() as s:
        req = s.get(ForgetRequest, request_id)
        adapter = s.scalar(select(Adapter).where(Adapter.request_id == request_id))
        report = s.scalar(select(MetricReport).where(MetricReport.request_id == request_id))
        assert s.get(Job, job_id).status == "succeeded"
    assert req.status in ("verified", "needs_review")
    assert adapter.method == method == report.method and adapter.config["method"] == method
    assert report.report["forget"]["em"] is not None
    directory = storage.verify_adapter(adapter, base_fingerprint=adapter.base_fingerprint)
    unlearned = load_unlearned(tiny_vlms["qwen2_5_vl"], directory)
    assert unlearned.method == method


def test_an_unregistered_method_is_refused_at_submission(storage_db):
    with storage_db.transaction() as s, pytest.raises(InvalidRequestError, match="method"):
        submit_forget_request(
            s,
            requester="Privacy Officer",
            individual_ids=["p1"],
            categories=["health"],
            known_individuals={"p1"},
            method="gradient_magic",
        )
    with storage_db.read() as s:
        assert s.scalar(select(ForgetRequest)) is None


def test_a_stored_unknown_method_fails_permanently_in_the_default_trainer(
    storage_db, tmp_path, data_dir
):
    with storage_db.transaction() as s:
        request, _ = submit_forget_request(
            s,
            requester="Privacy Officer",
            individual_ids=["p1"],
            categories=["health"],
            known_individuals={"p1"},
        )
        request.method = "gradient_magic"  # e.g. written by an older or newer release
        request_id = request.id
    with _worker(storage_db, tmp_path, "unused-model", data_dir) as w:
        outcome = w.run_one()
    assert outcome.status == "failed" and "not registered" in outcome.error
    with storage_db.read() as s:
        assert s.get(ForgetRequest, request_id).status == "failed"


def _pick_pairs(ds, person):
    """Two pairs of `person`: one health pair (given with its category) and one non-private
    pair (given without), so the forget set is neither a category nor a whole person."""
    from cagul.data import pair_id

    ind = ds.by_id(person)
    health = next(j for j, qa in enumerate(ind.qa_list) if qa.category == "health")
    other = next(j for j, qa in enumerate(ind.qa_list) if qa.category not in ("health", "criminal"))
    return [pair_id(ind, health), f"{person}:{other}"], {(person, health), (person, other)}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["cagul", "ga"])
def test_a_single_pair_request_runs_to_a_verdict_on_exactly_those_pairs(
    method, storage_db, tmp_path, tiny_dirs, tiny_vlms, data_dir, monkeypatch
):
    """cagul: the default trainer with CAGUL_QUICK_UNLEARN=1 (1 + 3 epochs, 16 retain pairs);
    ga: the smallest LoRA settings. The split the method trains on is recorded by spying on
    cagul.pipeline.make_split."""
    import cagul.pipeline
    from cagul.data import pair_id

    ds = load_dataset(data_dir)
    person = ds.ids[1]
    given, keys = _pick_pairs(ds, person)
    ind = ds.by_id(person)
    canonical = sorted(pair_id(ind, j) for _, j in keys)
    made = []
    real = cagul.pipeline.make_split
    monkeypatch.setattr(
        cagul.pipeline, "make_split", lambda *a, **kw: made.append(real(*a, **kw)) or made[-1]
    )
    model_dir = tiny_dirs["qwen2_5_vl"]
    trainer = None  # the default trainer (cagul.pipeline.run_unlearning)
    if method == "cagul":
        monkeypatch.setenv("CAGUL_QUICK_UNLEARN", "1")
    else:
        trainer = _fast_trainer(model_dir)
    with storage_db.transaction() as s:
        request, _ = submit_forget_request(
            s,
            requester="Privacy Officer",
            individual_ids=[person],
            categories=None,
            pair_ids=given,
            known_individuals=set(ds.ids),
            method=method,
        )
        request_id = request.id
    with _worker(storage_db, tmp_path, model_dir, data_dir, trainer) as w:
        outcome = w.run_one()
    assert outcome.status == "succeeded", outcome.error
    (split,) = made
    assert {smp.key for smp in split.forget_set} == keys and sorted(split.pair_ids) == canonical
    rest = {(person, j) for j in range(len(ind.qa_list))} - keys
    assert {smp.key for smp in split.nonprivate_set} == rest
    assert {smp.key for smp in split.retain_set} >= rest
    assert not {smp.key for smp in split.retain_set} & keys
    with storage_db.read() as s:
        req = s.get(ForgetRequest, request_id)
        adapter = s.scalar(select(Adapter).where(Adapter.request_id == request_id))
        report = s.scalar(select(MetricReport).where(MetricReport.request_id == request_id))
    assert req.status in ("verified", "needs_review")
    assert sorted(adapter.config["pair_ids"]) == canonical
    assert adapter.config["forget_ids"] == [person] and adapter.config["categories"] == []
    assert report.report["forget"]["em"] is not None
    directory = storage.verify_adapter(adapter, base_fingerprint=adapter.base_fingerprint)
    assert load_unlearned(tiny_vlms["qwen2_5_vl"], directory).method == method


def test_pair_ids_of_people_not_in_the_request_or_malformed_are_refused(storage_db, data_dir):
    from cagul.data import UnknownPairError, make_split

    ds = load_dataset(data_dir)
    a, b = ds.ids[0], ds.ids[1]
    with storage_db.transaction() as s, pytest.raises(InvalidRequestError, match="not in this"):
        submit_forget_request(
            s,
            requester="P",
            individual_ids=[a],
            categories=None,
            pair_ids=[f"{b}:0"],
            known_individuals=set(ds.ids),
        )
    with storage_db.transaction() as s, pytest.raises(InvalidRequestError, match="unknown pair"):
        submit_forget_request(
            s,
            requester="P",
            individual_ids=[a],
            categories=None,
            pair_ids=[f"{a}:0", f"{a}:999"],
            known_individuals=set(ds.ids),
            known_pairs={f"{a}:0"},
        )
    with storage_db.read() as s:
        assert s.scalar(select(ForgetRequest)) is None and s.scalar(select(Job)) is None
    n = len(ds.by_id(a).qa_list)
    for bad, words in [
        ([f"{b}:0"], "not among the people"),
        ([f"{a}:{n}"], f"has {n} pairs"),
        ([f"{a}"], "is not '<unique_id>:<pair index>'"),
        ([], "empty"),
        ([f"bogus/{a}:0"], "not bogus"),
    ]:
        with pytest.raises(UnknownPairError, match=words):
            make_split(ds, [a], "private", pair_ids=bad)
    with pytest.raises(ValueError, match="private setting"):
        make_split(ds, [a], "identity", pair_ids=[f"{a}:0"])
