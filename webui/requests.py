"""The Forget requests tab's logic: submit a request (stored with its job in one
transaction), list the queue with progress, cancel, a request's history and its outcome.

Every function takes the signed-in user and checks the role first (`webui.auth.require`):
officers see and cancel their own requests, auditors and the admin see every request.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

import storage
from cagul.data import DataError, pair_id, resolve_pair_ids
from jobs.submit import cancel_forget_request, submit_forget_request
from jobs.verdict import stored_verdict
from storage.clock import utcnow
from storage.erasure import checked_fields, set_erasure_fields
from storage.erasure import sign_off as store_sign_off
from webui.auth import SignedIn, require
from webui.public import scrub
from webui.studio import Studio, StudioError

MAX_REASON_CHARS = 2000


class RequestNotFoundError(StudioError):
    """No forget request with this id (or not one this user may see)."""


class UnknownPairError(StudioError):
    """A pair id names no pair of the dataset, or a pair of someone not in the request."""


def categories(studio: Studio) -> list[str]:
    """The dataset's categories, in first-seen order."""
    seen: dict[str, None] = {}
    for ind in studio.dataset.individuals:
        for qa in ind.qa_list:
            seen.setdefault(qa.category, None)
    return list(seen)


def match_photo(studio: Studio, who: SignedIn | None, image) -> dict:
    """The known person most similar to an uploaded photo (`cagul.match`): the best
    candidates with their scores, and `unique_id` only when the best reaches the threshold.
    A corrupt or missing image raises `cagul.match.MatchError` / `UserInputError`."""
    require(who, "submit")
    out = studio.matcher().match(image).to_json()
    for c in out["candidates"]:
        c["label"] = f"{c['unique_id']} · {c['name']}"
    scores = [c["score"] for c in out["candidates"]]
    out["margin"] = scores[0] - scores[1] if len(scores) > 1 else None
    # A runner-up within AMBIGUOUS_MARGIN: the officer must choose, the page adds nobody itself.
    out["ambiguous"] = bool(
        out["matched"] and out["margin"] is not None and out["margin"] < AMBIGUOUS_MARGIN
    )
    out["earlier_requests"] = _requests_for(studio, out["unique_id"]) if out["unique_id"] else []
    out["warnings"] = match_warnings(out)
    return out


AMBIGUOUS_MARGIN = 0.02


def _requests_for(studio: Studio, unique_id: str) -> list[dict]:
    """Stored requests naming this person that are open or were forgotten (not failed or
    cancelled): {id, status}."""
    keep = (*storage.ACTIVE_REQUEST_STATUSES, "verified", "needs_review")
    with studio.db.read() as s:
        found = s.scalars(
            select(storage.ForgetRequest)
            .where(storage.ForgetRequest.status.in_(keep))
            .order_by(storage.ForgetRequest.id)
        ).all()
    return [{"id": r.id, "status": r.status} for r in found if unique_id in r.individual_ids]


def match_warnings(out: dict) -> list[str]:
    """What the officer must know before adding a matched person."""
    warn = []
    if out.get("ambiguous"):
        a, b = out["candidates"][0], out["candidates"][1]
        warn.append(
            f"close call: {a['label']} {a['score']:.3f} vs {b['label']} {b['score']:.3f}"
            " — check the photo before adding"
        )
    for r in out.get("earlier_requests", []):
        warn.append(f"already in request #{r['id']} ({r['status']})")
    return warn


def submit(
    studio: Studio,
    who: SignedIn | None,
    *,
    individual_ids: list[str],
    categories_: list[str] | None,
    method: str = "cagul",
    reason: str = "",
    requester: str | None = None,
    pair_ids: list[str] | None = None,
    subject_ref: str | None = None,
    legal_basis: str | None = None,
    received=None,
) -> dict:
    """Store a forget request and queue its job; refused (nothing stored) on bad input.

    `subject_ref`, `legal_basis` and `received` (a date, default now) are the erasure fields
    (`storage.erasure`); the response deadline is one month after `received`.

    `pair_ids` (instead of categories) forgets single pairs of the chosen people: ids as
    `cagul.data.pair_id` writes them ("health/00000004:2"; the category may be left out), stored
    in that canonical form so storage compares them with category requests."""
    who = require(who, "submit")
    if not individual_ids:
        raise StudioError("choose at least one person to forget")
    if pair_ids is not None:
        if categories_:
            raise StudioError("give categories or single pairs, not both")
        if not pair_ids:
            raise StudioError("choose at least one pair (or forget by category)")
        for i in individual_ids:
            studio.person(i)  # an unknown person is named as such, not as a bad pair
        try:
            pair_ids = resolve_pair_ids(studio.dataset, individual_ids, pair_ids)
        except DataError as e:
            raise UnknownPairError(str(e)) from e
        categories_ = None
    elif categories_ is not None and not categories_:
        raise StudioError("choose at least one category (or every pair)")
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON_CHARS:
        raise StudioError(f"the reason has {len(reason)} characters; at most {MAX_REASON_CHARS}")
    names = [studio.person(i).name for i in individual_ids]
    erasure = checked_fields(
        subject_ref=subject_ref, legal_basis=legal_basis or None, received=received
    )
    with studio.db.transaction() as s:
        request, job = submit_forget_request(
            s,
            requester=(requester or ", ".join(names))[:256],
            individual_ids=individual_ids,
            categories=categories_,
            known_individuals=set(studio.dataset.ids),
            known_categories=set(categories(studio)),
            method=method,
            pair_ids=pair_ids,
            known_pairs={
                pair_id(p, j)
                for p in map(studio.person, individual_ids)
                for j in range(len(p.qa_list))
            },
            submitted_by_id=who.user_id,
            note=reason or None,
            actor=who.actor,
            model_dir=str(studio.model_dir),
            data_dir=str(studio.data_dir),
        )
        set_erasure_fields(s, request, erasure)
        return {"id": request.id, "status": request.status, "job_id": job.id}


def may(who: SignedIn | None, action: str) -> bool:
    """Whether `who` may do `action` now (for showing a form; the handlers still check)."""
    try:
        require(who, action)
    except PermissionError:
        return False
    return True


def visible_request(studio: Studio, who: SignedIn, request_id) -> storage.ForgetRequest:
    """The request, when `who` may see it (officers: only their own; a foreign one reads as
    missing, so ids of other officers' requests reveal nothing)."""
    req = studio.row(storage.ForgetRequest, request_id, RequestNotFoundError, "forget request")
    if who.role == "officer" and req.submitted_by_id != who.user_id:
        raise RequestNotFoundError(f"no stored forget request with id {req.id}")
    return req


def _eta(job: storage.Job | None) -> str:
    left = _eta_seconds(job)
    if left is None:
        return ""
    return f"{left / 60:.0f} min" if left >= 90 else f"{left:.0f} s"


def job_message(job: storage.Job | None) -> str:
    """What the queue says of a job: its error when it failed, the failing verdict lines when
    its adapter needs review (the runner's result), else its last progress note."""
    if job is None:
        return ""
    failing = (job.result or {}).get("reasons") if isinstance(job.result, dict) else None
    if job.status == "succeeded" and failing:
        return "needs review: " + "; ".join(map(str, failing))
    return scrub(job.error or job.message or "")


def _bar(progress: float) -> str:
    filled = round(progress * 10)
    return "█" * filled + "░" * (10 - filled) + f" {progress:.0%}"


def request_rows(studio: Studio, who: SignedIn | None) -> list[dict]:
    """The queue as the table shows it: one row per request, newest first."""
    who = require(who, "requests")
    with studio.db.read() as s:
        q = select(storage.ForgetRequest).order_by(storage.ForgetRequest.id.desc())
        if who.role == "officer":
            q = q.where(storage.ForgetRequest.submitted_by_id == who.user_id)
        reqs = s.scalars(q.limit(200)).all()
        jobs = {
            j.request_id: j
            for j in s.scalars(
                select(storage.Job)
                .where(storage.Job.request_id.in_([r.id for r in reqs]))
                .order_by(storage.Job.id)
            ).all()
        }
        adapters = {
            a.request_id: a
            for a in s.scalars(
                select(storage.Adapter).where(storage.Adapter.request_id.in_([r.id for r in reqs]))
            )
        }
    rows = []
    for r in reqs:
        job = jobs.get(r.id)
        rows.append(
            {
                "id": r.id,
                "people": ", ".join(f"{i} · {_name(studio, i)}" for i in r.individual_ids),
                "categories": _what(r.categories, r.pair_ids),
                "method": r.method,
                "status": r.status,
                "progress": _bar(job.progress if job else 0.0),
                "message": job_message(job),
                "eta": _eta(job),
                "attempts": job.attempts if job else 0,
                "worker": (job.worker_id or "") if job else "",
                "adapter": adapters[r.id].id if r.id in adapters else "",
                "submitted": _short(r.created_at),
                "deadline": countdown(r.due_at, r.status),
            }
        )
    return rows


def _what(categories: list[str] | None, pair_ids: list[str] | None) -> str:
    """What a request forgets, as the queue shows it."""
    if pair_ids:
        return f"{len(pair_ids)} pair{'s' if len(pair_ids) != 1 else ''}: " + ", ".join(pair_ids)
    return ", ".join(categories) if categories else "every pair"


def _short(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S") if t else ""


def cancel(studio: Studio, who: SignedIn | None, request_id, reason: str = "") -> str:
    """Cancel a request's unfinished work; the reason (if given) is kept in its trail, in the
    same transaction. Returns the status afterwards (``running`` until the worker stops)."""
    who = require(who, "cancel")
    req = visible_request(studio, who, request_id)
    if req.status in storage.FINAL_REQUEST_STATUSES:
        raise StudioError(f"request {req.id} is already {req.status}: nothing to cancel")
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON_CHARS:
        raise StudioError(f"the reason has {len(reason)} characters; at most {MAX_REASON_CHARS}")
    with studio.db.transaction() as s:
        storage.record_event(
            s,
            actor=who.actor,
            action="request.cancel_requested",
            target_type="request",
            target_id=req.id,
            details={"reason": reason or None},
        )
        return cancel_forget_request(s, req.id, actor=who.actor)


def _eta_seconds(job: storage.Job | None) -> float | None:
    """Seconds left by the job's pace so far (the one ETA the page and REST show)."""
    if job is None or job.status != "running" or not job.started_at or job.progress <= 0.02:
        return None
    elapsed = (utcnow() - job.started_at).total_seconds()
    return elapsed * (1 - job.progress) / job.progress


def request_data(studio: Studio, who: SignedIn | None) -> list[dict]:
    """The queue as data (REST): ids, lists, fractions and datetimes, newest first."""
    who = require(who, "requests")
    with studio.db.read() as s:
        q = select(storage.ForgetRequest).order_by(storage.ForgetRequest.id.desc())
        if who.role == "officer":
            q = q.where(storage.ForgetRequest.submitted_by_id == who.user_id)
        reqs = s.scalars(q.limit(200)).all()
        ids = [r.id for r in reqs]
        jobs = {
            j.request_id: j
            for j in s.scalars(
                select(storage.Job).where(storage.Job.request_id.in_(ids)).order_by(storage.Job.id)
            ).all()
        }
        adapters = {
            a.request_id: a.id
            for a in s.scalars(select(storage.Adapter).where(storage.Adapter.request_id.in_(ids)))
        }
    out = []
    for r in reqs:
        job = jobs.get(r.id)
        out.append(
            {
                "id": r.id,
                "people": list(r.individual_ids),
                "names": [_name(studio, i) for i in r.individual_ids],
                "categories": r.categories,
                "pair_ids": r.pair_ids,
                "method": r.method,
                "status": r.status,
                "progress": job.progress if job else 0.0,
                "message": job_message(job),
                "eta_seconds": _eta_seconds(job),
                "attempts": job.attempts if job else 0,
                "worker": job.worker_id if job else None,
                "adapter_id": adapters.get(r.id),
                "submitted_at": r.created_at,
                "completed_at": r.completed_at,
                "received_at": r.received_at,
                "due_at": r.due_at,
            }
        )
    return out


def _name(studio: Studio, unique_id: str) -> str:
    try:
        return studio.person(unique_id).name
    except StudioError:  # a person no longer in the dataset keeps their id
        return unique_id


def audit_runs(studio: Studio, who: SignedIn | None, adapter_id=None) -> list[dict]:
    """Stored audit runs (newest first), optionally of one adapter, to compare runs."""
    require(who, "audit")
    with studio.db.read() as s:
        q = select(storage.AuditEvent).where(
            storage.AuditEvent.action == "audit.run", storage.AuditEvent.target_type == "adapter"
        )
        if adapter_id not in (None, ""):
            q = q.where(storage.AuditEvent.target_id == str(studio.adapter_row(adapter_id).id))
        events = s.scalars(q.order_by(storage.AuditEvent.id.desc()).limit(500)).all()
    return [
        {
            "id": e.id,
            "at": e.at,
            "actor": e.actor,
            "adapter_id": int(e.target_id),
            "n": (e.details or {}).get("n"),
            "leak_rate": (e.details or {}).get("leak_rate"),
            "verdict": (e.details or {}).get("verdict"),
            "reasons": (e.details or {}).get("reasons") or [],
        }
        for e in events
    ]


def history(studio: Studio, who: SignedIn | None, request_id, *, raw: bool = False) -> list[dict]:
    """The request's events and its jobs' events, oldest first (`raw`: times as datetimes,
    for REST; else as the page shows them)."""
    who = require(who, "requests")
    req = visible_request(studio, who, request_id)
    with studio.db.read() as s:
        job_ids = s.scalars(select(storage.Job.id).where(storage.Job.request_id == req.id)).all()
        events = list(storage.events_for(s, "request", req.id))
        for jid in job_ids:
            events += storage.events_for(s, "job", jid)
    events.sort(key=lambda e: (e.at, e.id))
    return [
        {
            "at": e.at if raw else _short(e.at),
            "actor": e.actor,
            "action": e.action,
            "details": scrub(e.details),
        }
        for e in events
    ]


def outcome(studio: Studio, who: SignedIn | None, request_id) -> dict:
    """Status, verdict, adapter and headline metrics of one request."""
    who = require(who, "requests")
    req = visible_request(studio, who, request_id)
    with studio.db.read() as s:
        adapter = s.scalars(
            select(storage.Adapter).where(storage.Adapter.request_id == req.id)
        ).first()
        report = s.scalars(
            select(storage.MetricReport)
            .where(storage.MetricReport.request_id == req.id)
            .order_by(storage.MetricReport.id.desc())
        ).first()
    judged = stored_verdict(report.report) if report else None
    return {
        "id": req.id,
        "status": req.status,
        "people": req.individual_ids,
        "categories": req.categories,
        "pair_ids": req.pair_ids,
        "method": req.method,
        "verdict": req.status if req.status in ("verified", "needs_review") else None,
        # Every bound with its value and threshold, and the failing lines (jobs.verdict).
        "verdict_lines": judged["lines"] if judged else [],
        "failing": judged["failing"] if judged else [],
        "adapter_id": adapter.id if adapter else None,
        "adapter_sha256": adapter.sha256 if adapter else None,
        "report_id": report.id if report else None,
        "metrics": {k: getattr(report, k) for k in storage.headline_metrics({})}
        if report
        else None,
        **erasure_fields(req),
    }


def erasure_fields(req: storage.ForgetRequest) -> dict:
    """The erasure-workflow fields of a request, as data."""
    return {
        "subject_ref": req.subject_ref,
        "legal_basis": req.legal_basis,
        "received_at": req.received_at,
        "due_at": req.due_at,
        "approved_by": req.approved_by,
        "approved_at": req.approved_at,
        "completed_at": req.completed_at,
    }


def countdown(req_due, status: str, now=None) -> str:
    """What the queue says of a deadline: days left, overdue, or met (final requests)."""
    if req_due is None:
        return ""
    if status in storage.FINAL_REQUEST_STATUSES:
        return f"due {req_due:%Y-%m-%d}"
    days = (req_due - (now or utcnow())).total_seconds() / 86400
    if days < 0:
        return f"OVERDUE by {-days:.0f} d ({req_due:%Y-%m-%d})"
    return f"{days:.0f} d left ({req_due:%Y-%m-%d})"


def details_text(details) -> str:
    """An event's details as people read them ("method: cagul · reasons: none"), whole."""
    if not details:
        return ""
    if not isinstance(details, dict):
        return str(details)

    def value(v) -> str:
        if v is None or v == []:
            return "none"
        if isinstance(v, list):
            return ", ".join(value(x) for x in v)
        if isinstance(v, dict):
            return "; ".join(f"{k} {value(x)}" for k, x in v.items())
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    return " · ".join(f"{k.replace('_', ' ')}: {value(v)}" for k, v in details.items())


def cancel_message(request_id: int, status: str) -> str:
    """What the page says after a cancel: done, or when a running job will stop."""
    if status == "cancelled":
        return f"Request #{request_id} is cancelled."
    return (
        f"Request #{request_id}: cancel asked; its job stops at its next training step "
        f"(status {status} until then)."
    )


def sign_off(studio: Studio, who: SignedIn | None, request_id, note: str = "") -> dict:
    """The approver's sign-off of a request's outcome, by someone other than its submitter."""
    who = require(who, "submit")
    req = visible_request(studio, who, request_id)
    with studio.db.transaction() as s:
        store_sign_off(
            s,
            req.id,
            approver=who.actor,
            approver_id=who.user_id,
            note=(note or "").strip() or None,
        )
    return outcome(studio, who, req.id)
