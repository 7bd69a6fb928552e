"""The REST API under /api (FastAPI, OpenAPI at /api/docs).

Every route but /api/health needs `Authorization: Bearer <token>` (a token from
`python -m storage.users token NAME`): 401 without a valid one, 403 for a role that may not.
GET routes also accept the page's session cookie (the compliance record's download link);
routes that change something take only the bearer token. The role checks are the same
functions the pages call (`webui.auth.require`). Errors are JSON `{"error": {"code",
"message"}}`, unknown routes (404) and wrong methods (405) included; ids outside the
database's integer range are refused (422); bad input changes nothing stored.
"""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select
from starlette.exceptions import HTTPException
from starlette.routing import Match

import storage
from cagul.inputs import MAX_IMAGE_BYTES, UserInputError
from cagul.models import VLMError
from webui import api_models as m
from webui import audit as audit_logic
from webui import explore, reports, requests
from webui.auth import (
    ForbiddenError,
    NotSignedInError,
    SignedIn,
    from_request,
    require,
    user_for_api_token,
)
from webui.public import scrub_text
from webui.studio import (
    MAX_DB_ID,
    Studio,
    StudioError,
    UnknownAdapterError,
    UnknownPersonError,
)

log = logging.getLogger("cagul.api")
DbId = Annotated[int, Field(ge=1, le=MAX_DB_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    """The one error shape of every route; server paths and reprs are rewritten out."""
    body = {"error": {"code": code, "message": scrub_text(message)}}
    return JSONResponse(status_code=status, content=body, headers=headers or None)


def _status_of(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, NotSignedInError):
        return 401, "unauthorized"
    if isinstance(exc, ForbiddenError):
        return 403, "forbidden"
    if isinstance(exc, UnknownPersonError):
        return 400, "unknown_individual"
    if isinstance(exc, requests.UnknownPairError):
        return 400, "unknown_pair"
    if isinstance(exc, (UnknownAdapterError, requests.RequestNotFoundError)):
        return 404, "not_found"
    if isinstance(exc, storage.DuplicateActiveRequestError):
        return 409, "overlaps_open_request"
    if isinstance(exc, storage.RequestRefused):
        return 400, "request_refused"
    return 400, "invalid_input"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException):
        return error(
            exc.status_code, f"http_{exc.status_code}", str(exc.detail), **(exc.headers or {})
        )

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception):
        log.exception("unhandled error", exc_info=exc)  # the details stay in the server log
        return error(500, "internal_error", "the server failed on this request")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        msg = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in exc.errors())
        return error(422, "invalid_request", msg)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError):
        return error(exc.status, exc.code, exc.message)

    refused = (PermissionError, StudioError, UserInputError, VLMError, storage.StorageError)
    for cls in refused:

        @app.exception_handler(cls)
        async def _refused(_: Request, exc: Exception):
            status, code = _status_of(exc)
            return error(status, code, str(exc))


class ForgetRequestIn(BaseModel):
    individual_ids: list[str] = Field(min_length=1, max_length=100)
    categories: list[m.Category] | None = Field(  # type: ignore[valid-type]
        default=None, max_length=64, description="the categories to forget; none: every pair"
    )
    pair_ids: list[str] | None = Field(
        default=None,
        max_length=1000,
        description="single pairs instead of categories: '<unique_id>:<index>' or "
        "'<category>/<unique_id>:<index>'",
    )
    method: m.Method = "cagul"  # type: ignore[valid-type]

    @field_validator("categories", mode="before")
    @classmethod
    def _lower(cls, value):
        """Categories are case-insensitive ("Health" is "health"), as storage compares them."""
        if isinstance(value, list):
            return [v.strip().lower() if isinstance(v, str) else v for v in value]
        return value

    reason: str = Field(default="", max_length=requests.MAX_REASON_CHARS)
    requester: str | None = Field(default=None, max_length=256)
    subject_ref: str | None = Field(
        default=None, max_length=128, description="the data subject in your own files"
    )
    legal_basis: m.LegalBasis | None = None  # type: ignore[valid-type]
    received: date | None = Field(
        default=None,
        description="when the request was received "
        "(default: today); the deadline is one month later",
    )


class AnswerIn(BaseModel):
    question: str = Field(max_length=2000)
    individual_id: str | None = None
    image_base64: str | None = Field(default=None, description="a PNG/JPEG file, base64")
    adapter_ids: list[DbId] = Field(default_factory=list, max_length=1)


class AuditIn(BaseModel):
    adapter_id: DbId
    prompts: list[str] = Field(default_factory=list, max_length=audit_logic.MAX_TYPED_QUESTIONS)


# Declares the bearer scheme in the OpenAPI; `caller` still reads and checks the header itself
# (auto_error=False), so a missing token is our 401 JSON error, not FastAPI's 403.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="an API token from `python -m storage.users token NAME`",
)
_ERRORS = {
    401: {"description": "no valid bearer token"},
    403: {"description": "the token's role may not do this"},
}


def router(studio: Studio) -> APIRouter:
    api = APIRouter(prefix="/api", responses=_ERRORS)

    def caller(
        request: Request,
        _declared: HTTPAuthorizationCredentials | None = Security(BEARER),  # noqa: B008
    ) -> SignedIn:
        """The bearer token's user; on GET also the session cookie's (resolved per call)."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        who = user_for_api_token(studio.db, token.strip()) if scheme.lower() == "bearer" else None
        if who is None and request.method == "GET":
            who = from_request(studio.db, request)
        if who is None:
            raise ApiError(401, "unauthorized", "a valid bearer token is required")
        return who

    @api.get("/health", response_model=m.Health)
    def health() -> dict:
        """Liveness: the model, the data and the database are loaded (no server paths)."""
        return {
            "status": "ok",
            "model": studio.fingerprint[:16],
            "family": studio.vlm.family,
            "people": len(studio.dataset),
            "adapters": len(studio.adapter_rows()),
            "database": studio.db.dialect,
        }

    @api.post("/forget-requests", status_code=201, response_model=m.ForgetRequestOut)
    def create_request(body: ForgetRequestIn, who: SignedIn = Depends(caller)) -> dict:  # noqa: B008
        """Store a forget request and queue its job (officers). Refused, with nothing stored,
        for an unknown person, category or pair, or one overlapping an open request (409)."""
        cats = [str(c) for c in body.categories] if body.categories is not None else None
        out = requests.submit(
            studio,
            who,
            individual_ids=body.individual_ids,
            categories_=cats,
            method=str(body.method),
            reason=body.reason,
            requester=body.requester,
            pair_ids=body.pair_ids,
            subject_ref=body.subject_ref,
            legal_basis=body.legal_basis,
            received=body.received,
        )
        return {**requests.outcome(studio, who, out["id"]), "job_id": out["job_id"]}

    @api.get("/forget-requests", response_model=list[m.QueueRow])
    def list_requests(who: SignedIn = Depends(caller)) -> list[dict]:  # noqa: B008
        """The queue, newest first (officers: their own requests), as data: progress is a
        fraction, times are ISO 8601 in UTC, ETA in seconds."""
        return requests.request_data(studio, who)

    @api.get("/forget-requests/{request_id}", response_model=m.ForgetRequestDetail)
    def get_request(request_id: PathId, who: SignedIn = Depends(caller)) -> dict:  # noqa: B008
        """One request: status, progress, the verdict with every forget and keep bound (value,
        threshold, pass/fail) and the failing lines named, its adapter and report, its events."""
        out = requests.outcome(studio, who, request_id)
        with studio.db.read() as s:
            job = s.scalars(
                select(storage.Job)
                .where(storage.Job.request_id == request_id)
                .order_by(storage.Job.id.desc())
            ).first()
        return {
            **out,
            "job_id": job.id if job else None,
            "progress": job.progress if job else 0.0,
            "message": requests.job_message(job),
            "events": requests.history(studio, who, request_id, raw=True),
        }

    @api.post("/forget-requests/{request_id}/cancel", response_model=m.CancelOut)
    def cancel_request(
        request_id: PathId,
        body: m.CancelIn | None = None,
        who: SignedIn = Depends(caller),  # noqa: B008
    ) -> dict:
        """Cancel a request by its id, with a reason kept in its trail: a queued job stops at
        once, a running one at its next step (the status says ``running`` until then)."""
        reason = body.reason if body else ""
        return {
            "request_id": request_id,
            "status": requests.cancel(studio, who, request_id, reason),
        }

    @api.post("/forget-requests/{request_id}/sign-off", response_model=m.ForgetRequestOut)
    def sign_off(
        request_id: int,
        body: m.SignOffIn | None = None,
        who: SignedIn = Depends(caller),  # noqa: B008
    ) -> dict:
        """The approver's sign-off of a request's outcome (once, after its verdict)."""
        return requests.sign_off(studio, who, request_id, body.note if body else "")

    @api.get("/forget-requests/{request_id}/record", response_class=HTMLResponse)
    def get_record(
        request_id: PathId, download: bool = False, who: SignedIn = Depends(caller)
    ) -> Response:  # noqa: B008
        """The printable compliance record (HTML) of one request; `download` as an attachment."""
        page = reports.record_html(studio, who, request_id)
        name = f"forget-request-{request_id}.html"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'} if download else {}
        return HTMLResponse(page, headers=headers)

    def _job(who: SignedIn, job_id: int) -> storage.Job:
        require(who, "requests")
        with studio.db.read() as s:
            job = s.get(storage.Job, job_id)
        if job is None or job.request_id is None:
            raise ApiError(404, "not_found", f"no job {job_id}")
        requests.visible_request(studio, who, job.request_id)  # officers: their own only
        return job

    @api.get("/jobs/{job_id}", response_model=m.JobOut)
    def get_job(job_id: PathId, who: SignedIn = Depends(caller)) -> dict:  # noqa: B008
        """A job of a forget request: status, progress, attempts, its worker."""
        j = _job(who, job_id)
        return {
            "id": j.id,
            "request_id": j.request_id,
            "status": j.status,
            "progress": j.progress,
            "message": scrub_text(j.message or ""),
            "error": scrub_text(j.error) if j.error else None,
            "attempts": j.attempts,
            "worker_id": j.worker_id,
        }

    @api.post("/jobs/{job_id}/cancel", response_model=m.CancelOut)
    def cancel_job(job_id: PathId, who: SignedIn = Depends(caller)) -> dict:  # noqa: B008
        """Cancel the request a job works for (see POST /api/forget-requests/{id}/cancel)."""
        j = _job(who, job_id)
        return {"request_id": j.request_id, "status": requests.cancel(studio, who, j.request_id)}

    @api.get("/adapters", response_model=list[m.AdapterOut])
    def list_adapters(who: SignedIn = Depends(caller)) -> list[dict]:  # noqa: B008
        """Every stored adapter: method, request, sha256 of its weights, base fingerprint."""
        require(who, "reports")
        return [
            {
                "id": a.id,
                "method": a.method,
                "request_id": a.request_id,
                "sha256": a.sha256,
                "base_fingerprint": a.base_fingerprint,
                "forget_ids": a.config.get("forget_ids", []),
                "categories": a.config.get("categories"),
                "created_at": a.created_at,
            }
            for a in studio.adapter_rows()
        ]

    @api.get("/adapters/{adapter_id}/report", response_model=dict[str, Any])
    def get_report(adapter_id: PathId, who: SignedIn = Depends(caller)) -> dict:  # noqa: B008
        """The adapter's stored evaluation report (DESIGN §8 JSON, with its verdict)."""
        return reports.adapter_report(studio, who, adapter_id)

    @api.get("/people", response_model=list[m.PersonOut])
    def list_people(who: SignedIn = Depends(caller)) -> list[dict]:  # noqa: B008
        """The people of the dataset a request may name, with their question categories."""
        require(who, "requests")
        return [
            {
                "unique_id": ind.unique_id,
                "name": ind.name,
                "categories": sorted({qa.category for qa in ind.qa_list}),
            }
            for ind in studio.dataset.individuals
        ]

    @api.get("/methods", response_model=list[m.MethodOut])
    def list_methods(who: SignedIn = Depends(caller)) -> list[m.MethodOut]:  # noqa: B008
        """The registered unlearning methods a request may use."""
        return m.METHOD_INFOS

    @api.get("/audits", response_model=list[m.AuditRun])
    def list_audits(
        adapter_id: int | None = None,
        who: SignedIn = Depends(caller),  # noqa: B008
    ) -> list[dict]:
        """Stored audit runs, newest first (optionally of one adapter), to compare runs."""
        return requests.audit_runs(studio, who, adapter_id)

    @api.post("/answer", response_model=m.AnswerOut)
    def answer(body: AnswerIn, who: SignedIn = Depends(caller)) -> dict:  # noqa: B008
        """Answer a question about a person's photo or an uploaded image, before and after
        an adapter (the `answer` record of DESIGN §8)."""
        image = None
        if body.image_base64 is not None:
            if len(body.image_base64) > MAX_IMAGE_BYTES * 4 // 3 + 4:
                raise ApiError(413, "image_too_large", "the image is larger than allowed")
            try:
                image = base64.b64decode(body.image_base64, validate=True)
            except (binascii.Error, ValueError) as e:
                raise ApiError(400, "invalid_input", "image_base64 is not base64") from e
        rec = explore.ask(
            studio,
            question=body.question,
            person_id=body.individual_id,
            image=image,
            adapter_id=(body.adapter_ids or [None])[0],
        )
        rec.pop("image")
        return rec

    @api.post("/audit", response_model=m.AuditOut)
    def run_audit(body: AuditIn, who: SignedIn = Depends(caller)) -> dict:  # noqa: B008
        """Probe an adapter for leaks (and ask its people's ordinary questions, which must be
        kept): every row with its outcome and reason, and the verdict with every bound."""
        require(who, "audit")
        return audit_logic.run_audit(
            studio, body.adapter_id, "\n".join(body.prompts), actor=who.actor
        )

    @api.api_route(
        "/{_path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    def unknown(request: Request) -> JSONResponse:
        """Last route of /api: 405 when another method of a real route fits, else 404 (Gradio,
        mounted at /, would otherwise answer in its own shape)."""
        allowed = set()
        for route in api.routes:
            if route.name != "unknown" and route.matches(request.scope)[0] == Match.PARTIAL:
                allowed |= set(getattr(route, "methods", ()) or ())
        if allowed:
            return error(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here",
                Allow=", ".join(sorted(allowed)),
            )
        return error(404, "not_found", "no such route")

    return api
