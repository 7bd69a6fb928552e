"""Submitting and cancelling forget requests: the request row and its job in one transaction.

A request without its job would sit in "submitted" forever, so both are written together (the
app calls :func:`submit_forget_request` inside ``db.transaction()``). A ``model_dir`` or
``data_dir`` for the payload is checked first, as the runner will (:mod:`jobs.paths`), so a
path outside the input root refuses the request instead of queueing a job that must fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs.paths import PayloadPathError, checked_payload_path, input_roots
from jobs.queue import enqueue, request_cancel
from storage import FINAL_JOB_STATUSES, ForgetRequest, Job, create_forget_request, record_event
from storage.errors import InvalidRequestError
from storage.forget_requests import Known


def submit_forget_request(
    session: Session,
    *,
    requester: str,
    individual_ids: Sequence[str],
    categories: Sequence[str] | None,
    known_individuals: Known,
    pair_ids: Sequence[str] | None = None,
    known_categories: Known | None = None,
    known_pairs: Known | None = None,
    method: str = "cagul",
    submitted_by_id: int | None = None,
    note: str | None = None,
    actor: str = "system",
    priority: int = 0,
    min_gpu_mem_mb: int = 0,
    max_attempts: int | None = None,
    model_dir: str | None = None,
    data_dir: str | None = None,
) -> tuple[ForgetRequest, Job]:
    """Validate and store a forget request and queue its "unlearn" job (flushed; committed with
    the session). Raises :class:`storage.RequestRefused` subclasses, storing nothing."""
    for key, value in (("model_dir", model_dir), ("data_dir", data_dir)):
        if value:
            try:
                checked_payload_path(value, key, input_roots())
            except PayloadPathError as exc:
                raise InvalidRequestError(str(exc)) from None
    request = create_forget_request(
        session,
        requester=requester,
        individual_ids=individual_ids,
        categories=categories,
        known_individuals=known_individuals,
        pair_ids=pair_ids,
        known_categories=known_categories,
        known_pairs=known_pairs,
        method=method,
        submitted_by_id=submitted_by_id,
        note=note,
        actor=actor,
    )
    payload: dict[str, Any] = {"request_id": request.id}
    if model_dir:
        payload["model_dir"] = model_dir
    if data_dir:
        payload["data_dir"] = data_dir
    job = enqueue(
        session,
        "unlearn",
        payload,
        priority=priority,
        max_attempts=max_attempts,
        min_gpu_mem_mb=min_gpu_mem_mb,
        request_id=request.id,
        actor=actor,
    )
    request.status = "queued"
    return request, job


def cancel_forget_request(session: Session, request_id: int, *, actor: str = "system") -> str:
    """Cancel a request's unfinished job (queued: at once; running: at its next step).
    Returns the request's status afterwards (``running`` until the worker stops)."""
    request = session.get(ForgetRequest, request_id)
    if request is None:
        raise LookupError(f"forget request {request_id} does not exist")
    jobs = session.scalars(
        select(Job.id).where(Job.request_id == request_id, Job.status.not_in(FINAL_JOB_STATUSES))
    ).all()
    for job_id in jobs:
        request_cancel(session, job_id, actor=actor)
    if not jobs and request.status == "submitted":
        request.status = "cancelled"
        record_event(
            session,
            actor=actor,
            action="request.cancelled",
            target_type="request",
            target_id=request_id,
        )
    session.flush()
    session.refresh(request)
    return request.status
