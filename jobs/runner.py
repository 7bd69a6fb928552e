"""The "unlearn" job: turn a forget request into a verified (or flagged) adapter.

Steps, each with an audit event: load the request -> clean what earlier attempts left ->
train + evaluate (``cagul.pipeline.run_unlearning``, imported only when a job runs, so the
queue and the app never import torch) -> hash the adapter and rename it into place -> store
Adapter + MetricReport and the verdict in one transaction -> request ``verified`` when every
forget bound and every keep bound holds (:mod:`jobs.verdict`, the one verdict the record, the
Audit tab and REST show too), else ``needs_review`` with the failing lines named.

Exactly-once: the final transaction first checks that this worker still owns the job (a reaped
worker that wakes up writes nothing); the Adapter row is unique per job; and a retry of a job
whose adapter is already stored returns that adapter instead of training again (the worker can
die between our commit and marking the job succeeded).

No half-written adapters: training writes into a temp dir beside the final one; a failure
removes it, and every attempt starts by removing temp dirs (and unreferenced final dirs) of
earlier attempts of the same job, which covers workers killed with SIGKILL.

The trainer is injectable (``make_unlearn_handler(trainer=...)``) so tests can use a fast fake.
Its contract: keyword arguments ``model_dir, data_dir, forget_ids, categories, method, out_dir,
progress(fraction, message), check_cancel()``; it writes ``adapter_config.json`` and
``adapter_model.safetensors`` into ``out_dir`` and returns ``{"report": <evaluation report>,
"base_fingerprint": str}``. Requests naming single pairs pass ``pair_ids=`` as well (the
default trainer forgets exactly those pairs, ``cagul.data.make_split``); trainers whose
signature takes neither ``pair_ids`` nor ``**kwargs`` refuse them permanently.

Paths: the model and data directories come from the job payload (``model_dir``, ``data_dir``),
else ``CAGUL_MODEL_DIR`` / ``CAGUL_DATA_DIR``, else the shipped demo bundle (located by
``cagul.paths``); payload paths must lie inside the input root (:mod:`jobs.paths`), else the
job fails permanently before training. Adapters go to ``$CAGUL_ARTIFACTS/adapters``
(default ``.cagul/artifacts/adapters``). A request that already has a verdict is not run again
unless the payload says ``"rerun": true``.

Permanent failures: errors that retrying the same payload cannot fix fail the job at once
instead of being retried (:func:`permanent_cause`): bad payload paths, and the trainer's
input errors (``ValueError`` and its kin, missing files, cagul's ``DataError`` and
``VLMError``, e.g. a model directory that does not exist or is not a supported VLM).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from jobs.context import JobContext
from jobs.errors import JobCancelled, JobLost, PermanentJobError
from jobs.paths import PAYLOAD_PATH_KEYS, checked_payload_path, input_roots
from jobs.publish import adapter_dir_name, clean_leftovers, discard, make_temp_dir, publish
from jobs.queue import lock_claim
from jobs.registry import add_kind
from jobs.verdict import BOUNDS, Bound, Verdict, verdict
from storage import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    FINAL_REQUEST_STATUSES,
    Adapter,
    ForgetRequest,
    add_metric_report,
    headline_metrics,
    record_event,
    sha256_file,
    utcnow,
)
from storage.config import REPO_ROOT

Trainer = Callable[..., dict[str, Any]]


def default_trainer(**kwargs: Any) -> dict[str, Any]:
    """`cagul.pipeline.run_unlearning`, dispatching on the request's method through the one
    registry; a method it does not hold can never run, so that is a permanent error."""
    from cagul.methods.registry import INFOS  # torch-free

    if kwargs.get("method") not in INFOS:
        raise PermanentJobError(f"method {kwargs.get('method')!r} is not registered")
    from cagul.pipeline import run_unlearning  # lazy: torch is imported only by running jobs

    if os.environ.get(QUICK_ENV) == "1" and kwargs["method"] == "cagul":
        kwargs.update(quick_cagul_settings())
    return run_unlearning(**kwargs)


# A demo / test setting: a few epochs and a small retain evaluation, so a request runs to its
# verdict in minutes on a CPU. Its adapter is real but weaker; never set it in production.
QUICK_ENV = "CAGUL_QUICK_UNLEARN"


def quick_cagul_settings() -> dict[str, Any]:
    from cagul.pipeline import method_config

    return {"config": method_config("cagul", disc_epochs=1, epochs=3), "max_retain": 16}


@dataclass(frozen=True)
class UnlearnSettings:
    """Where things are. None means: the job payload's value, else the environment, else the
    shipped demo bundle / the repo's .cagul folder."""

    artifacts_root: Path | None = None  # adapters go to <root>/adapters
    input_root: Path | None = None  # payload model/data dirs must lie inside it (jobs.paths)
    model_dir: str | None = None
    data_dir: str | None = None
    bounds: tuple[Bound, ...] = BOUNDS  # the verdict's bounds (jobs.verdict.bounds_with)

    def adapters_root(self) -> Path:
        root = self.artifacts_root or Path(
            os.environ.get("CAGUL_ARTIFACTS", REPO_ROOT / ".cagul" / "artifacts")
        )
        return Path(root) / "adapters"

    def model(self, payload: dict[str, Any]) -> str:
        return self._path(payload, "model_dir", self.model_dir, "CAGUL_MODEL_DIR")

    def data(self, payload: dict[str, Any]) -> str:
        return self._path(payload, "data_dir", self.data_dir, "CAGUL_DATA_DIR")

    def checked_paths(self, payload: dict[str, Any]) -> tuple[str, str]:
        """(model dir, data dir) for a job; a payload path outside the input root, not a
        string, or missing is a permanent error (configured paths are trusted)."""
        roots = input_roots(self.input_root)
        found = []
        for key in PAYLOAD_PATH_KEYS:
            if payload.get(key) is not None:
                found.append(checked_payload_path(payload[key], key, roots))
            else:
                found.append(self.model(payload) if key == "model_dir" else self.data(payload))
        return found[0], found[1]

    @staticmethod
    def _path(payload: dict[str, Any], key: str, configured: str | None, env: str) -> str:
        chosen = payload.get(key) or configured or os.environ.get(env)
        if chosen:
            return str(chosen)
        # The demo bundle's location is cagul's knowledge (cagul.paths imports no torch).
        from cagul import paths

        try:
            found = paths.default_model_dir() if key == "model_dir" else paths.default_data_dir()
        except FileNotFoundError as exc:  # retrying cannot build the bundle
            raise PermanentJobError(str(exc)) from exc
        return str(found)


def request_verdict(report: dict[str, Any], settings: UnlearnSettings) -> Verdict:
    """The verdict of a trained adapter's report under ``settings.bounds`` (jobs.verdict)."""
    return verdict(report, settings.bounds)


# Exceptions that say the input is wrong, not that the machine had a bad moment.
_PERMANENT_BUILTINS = (
    ValueError,
    TypeError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)
# cagul's input errors, looked up only when their module is loaded (the queue imports no torch;
# a trainer that raised one has loaded it).
_PERMANENT_CAGUL = (("cagul.data.errors", "DataError"), ("cagul.models.base", "VLMError"))


def permanent_cause(exc: BaseException) -> bool:
    """True when retrying the same job cannot succeed (see the module docstring)."""
    if isinstance(exc, PermanentJobError):
        return True
    if isinstance(exc, _PERMANENT_BUILTINS):
        return True
    for module, name in _PERMANENT_CAGUL:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return True
    return False


def _takes(trainer: Trainer, name: str) -> bool:
    """Whether `trainer` accepts the keyword `name` (by name, or through **kwargs)."""
    params = inspect.signature(trainer).parameters.values()
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _train(trainer: Trainer, **kwargs: Any) -> Any:
    """Run the trainer; its input errors become permanent (the cause is kept as __cause__)."""
    try:
        return trainer(**kwargs)
    except (JobCancelled, JobLost, PermanentJobError):
        raise
    except Exception as exc:
        if permanent_cause(exc):
            raise PermanentJobError(f"{type(exc).__name__}: {exc}") from exc
        raise


def _trainer_output(out: Any) -> tuple[dict[str, Any], str]:
    if not isinstance(out, dict):
        raise PermanentJobError(f"trainer returned {type(out).__name__}, not a dict")
    report, fingerprint = out.get("report"), out.get("base_fingerprint")
    if not isinstance(report, dict) or not isinstance(fingerprint, str) or not fingerprint:
        raise PermanentJobError("trainer output lacks a report dict or a base_fingerprint")
    return report, fingerprint


def _read_adapter_dir(tmp: Path) -> tuple[dict[str, Any], str, int]:
    weights, config_file = tmp / ADAPTER_WEIGHTS, tmp / ADAPTER_CONFIG
    for required in (weights, config_file):
        if not required.is_file():
            raise PermanentJobError(f"trainer did not write {required.name}")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PermanentJobError(f"{ADAPTER_CONFIG} is not valid JSON: {exc}") from exc
    return (
        (config if isinstance(config, dict) else {}),
        sha256_file(weights),
        weights.stat().st_size,
    )


@dataclass(frozen=True)
class _Request:
    id: int
    individual_ids: list[str]
    categories: list[str] | None
    pair_ids: list[str] | None
    method: str


def _load_request(ctx: JobContext) -> _Request | dict[str, Any]:
    """The request to work on, or the stored result when this job already finished it."""
    try:
        request_id = int(ctx.payload["request_id"])
    except (KeyError, TypeError, ValueError):
        raise PermanentJobError("payload needs an integer request_id") from None
    with ctx.db.read() as session:
        request = session.get(ForgetRequest, request_id)
        if request is None:
            raise PermanentJobError(f"forget request {request_id} does not exist")
        done = session.scalar(select(Adapter).where(Adapter.job_id == ctx.job_id))
        if done is not None:
            return {
                "request_id": request_id,
                "adapter_id": done.id,
                "status": request.status,
                "sha256": done.sha256,
                "path": done.path,
                "reused": True,
            }
        if request.status in FINAL_REQUEST_STATUSES and not ctx.payload.get("rerun"):
            raise PermanentJobError(f"request {request_id} is already {request.status}")
        return _Request(
            request.id,
            list(request.individual_ids),
            request.categories,
            request.pair_ids,
            request.method,
        )


def _store_results(
    ctx: JobContext,
    req: _Request,
    final: Path,
    config: dict[str, Any],
    digest: str,
    size: int,
    fingerprint: str,
    report: dict[str, Any],
    judged: Verdict,
) -> tuple[int, int]:
    """One transaction: Adapter, MetricReport, the request's verdict and their audit events,
    written only while this worker still owns the job. Returns (adapter id, report id)."""
    with ctx.db.transaction() as session:
        if not lock_claim(session, ctx.claim):
            raise JobLost(f"job {ctx.job_id} was reaped before its adapter was stored")
        adapter = Adapter(
            request_id=req.id,
            job_id=ctx.job_id,
            method=req.method,
            config=config,
            base_fingerprint=fingerprint,
            path=str(final),
            sha256=digest,
            size_bytes=size,
        )
        session.add(adapter)
        session.flush()
        status = judged.status
        metrics = add_metric_report(
            session,
            {**report, "verdict": judged.to_json()},  # the lines as judged, kept with the numbers
            adapter_id=adapter.id,
            request_id=req.id,
            job_id=ctx.job_id,
            method=req.method,
            passed=status == "verified",
        )
        request = session.get(ForgetRequest, req.id, with_for_update=True)
        if request is None:
            raise PermanentJobError(f"forget request {req.id} vanished")
        request.status = status
        request.completed_at = utcnow()

        def event(action: str, target_type: str, target_id: int, **details: Any) -> None:
            record_event(
                session,
                actor=ctx.actor,
                action=action,
                target_type=target_type,
                target_id=target_id,
                details={"job_id": ctx.job_id, **details},
            )

        event(
            "adapter.stored",
            "adapter",
            adapter.id,
            request_id=req.id,
            sha256=digest,
            size_bytes=size,
            path=str(final),
            base_fingerprint=fingerprint,
        )
        event("report.stored", "report", metrics.id, adapter_id=adapter.id)
        event(
            f"request.{status}",
            "request",
            req.id,
            adapter_id=adapter.id,
            report_id=metrics.id,
            reasons=judged.failing,
        )
        return adapter.id, metrics.id


def run_unlearn_job(ctx: JobContext, trainer: Trainer, settings: UnlearnSettings) -> dict[str, Any]:
    loaded = _load_request(ctx)
    if isinstance(loaded, dict):
        ctx.audit(
            "unlearn.already_done",
            target_type="request",
            target_id=loaded["request_id"],
            details={"adapter_id": loaded["adapter_id"]},
        )
        return loaded
    req = loaded
    extra: dict[str, Any] = {}
    if req.pair_ids:
        if not _takes(trainer, "pair_ids"):
            raise PermanentJobError("this trainer cannot forget single pairs (no pair_ids)")
        extra["pair_ids"] = req.pair_ids

    model_dir, data_dir = settings.checked_paths(ctx.payload)  # before anything is touched
    root = settings.adapters_root()
    name = adapter_dir_name(req.id, ctx.job_id)
    final = root / name
    # No Adapter row points at this job (checked above), so a final dir here is an orphan.
    removed = clean_leftovers(root, name, final_is_orphan=True)
    ctx.audit(
        "unlearn.started",
        target_type="request",
        target_id=req.id,
        details={
            "job_id": ctx.job_id,
            "method": req.method,
            "model_dir": model_dir,
            "data_dir": data_dir,
            "cleaned": [p.name for p in removed],
        },
    )
    tmp = make_temp_dir(root, name, ctx.attempt)
    published = committed = False
    try:
        ctx.progress(0.01, "training")
        out = _train(
            trainer,
            model_dir=model_dir,
            data_dir=data_dir,
            forget_ids=req.individual_ids,
            categories=req.categories,
            method=req.method,
            out_dir=str(tmp),
            progress=lambda p, m="": ctx.progress(0.02 + 0.93 * min(1.0, max(0.0, p)), m),
            check_cancel=ctx.check_cancel,
            **extra,
        )
        report, fingerprint = _trainer_output(out)
        judged = request_verdict(report, settings)
        ctx.audit(
            "unlearn.evaluated",
            target_type="request",
            target_id=req.id,
            details={
                "job_id": ctx.job_id,
                "headline": headline_metrics(report),
                "verdict": judged.status,
                "reasons": judged.failing,
            },
        )
        ctx.check_cancel()  # last chance before the result becomes visible
        ctx.progress(0.96, "publishing adapter")
        config, digest, size = _read_adapter_dir(tmp)
        publish(tmp, final)
        published = True
        adapter_id, report_id = _store_results(
            ctx, req, final, config, digest, size, fingerprint, report, judged
        )
        committed = True
        ctx.progress(1.0, f"done: {judged.status}")
        return {
            "request_id": req.id,
            "adapter_id": adapter_id,
            "report_id": report_id,
            "status": judged.status,
            "reasons": judged.failing,
            "sha256": digest,
            "path": str(final),
        }
    except BaseException as exc:
        discard(tmp)
        if published and not committed:
            discard(final)
        if not committed and not isinstance(exc, JobLost):
            action = "unlearn.cancelled" if isinstance(exc, JobCancelled) else "unlearn.failed"
            # The original error matters more than its audit line.
            with contextlib.suppress(Exception):
                ctx.audit(
                    action,
                    target_type="request",
                    target_id=req.id,
                    details={"job_id": ctx.job_id, "error": f"{type(exc).__name__}: {exc}"},
                )
        raise


def make_unlearn_handler(
    trainer: Trainer | None = None, settings: UnlearnSettings | None = None
) -> Callable[[JobContext], dict[str, Any]]:
    """A handler for the "unlearn" kind using ``trainer`` (default: cagul.pipeline)."""
    chosen_trainer = trainer or default_trainer
    chosen_settings = settings or UnlearnSettings()

    def handle_unlearn(ctx: JobContext) -> dict[str, Any]:
        return run_unlearn_job(ctx, chosen_trainer, chosen_settings)

    return handle_unlearn


unlearn_handler = make_unlearn_handler()
add_kind("unlearn", unlearn_handler, max_attempts=3)
