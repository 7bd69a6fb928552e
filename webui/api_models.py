"""The REST API's typed shapes (Pydantic), so the OpenAPI at /api/docs says what every route takes
and returns: enums for the method and the categories (read from the one method registry and the
category taxonomy), times as ISO 8601 with their zone, the verdict with every bound.

The routes live in `webui.api`; these models only describe data the logic modules return.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from cagul.data.categories import CATEGORIES
from cagul.methods.registry import INFOS, NAMES
from storage.erasure import LEGAL_BASES
from storage.models import JOB_STATUSES, REQUEST_STATUSES

Method = enum.StrEnum("Method", [(n, n) for n in NAMES])
Method.__doc__ = "A registered unlearning method (cagul.methods.registry)."
Category = enum.StrEnum("Category", [(c, c) for c in CATEGORIES])
Category.__doc__ = "A question category of the taxonomy (cagul.data.categories)."
LegalBasis = Literal[LEGAL_BASES]  # type: ignore[valid-type]
RequestStatus = Literal[REQUEST_STATUSES]  # type: ignore[valid-type]
JobStatus = Literal[JOB_STATUSES]  # type: ignore[valid-type]


def utc(t: datetime | None) -> datetime | None:
    """`t` with its zone: storage keeps UTC, some backends hand it back naive."""
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


class _Out(BaseModel):
    """Every response: times written as ISO 8601 in UTC with their zone ("…Z")."""

    @field_serializer("*", when_used="json")
    def _zoned(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return utc(value).isoformat().replace("+00:00", "Z")
        return value


class Health(_Out):
    status: Literal["ok"]
    model: str
    family: str
    people: int
    adapters: int
    database: str


class VerdictLine(_Out):
    key: str = Field(description="stable name of the bound, e.g. nonprivate_em")
    label: str
    group: Literal["forget", "keep"]
    value: float | None
    threshold: float
    op: Literal["≤", "≥"] = Field(description="forget bounds: at most; keep bounds: at least")
    passed: bool | None = Field(description="None: an optional bound that was not measured")
    basis: str = Field(description='"fixed", or the base model\'s value the threshold is from')
    source: str = Field(description="which measurement gave the value")
    text: str = Field(description='the line as people read it: "non-private EM 0.094 < 0.95"')


class Event(_Out):
    at: datetime
    actor: str
    action: str
    details: dict[str, Any] | None


class ForgetRequestOut(_Out):
    id: int
    status: RequestStatus  # type: ignore[valid-type]
    people: list[str]
    categories: list[str] | None
    pair_ids: list[str] | None
    method: Method  # type: ignore[valid-type]
    verdict: Literal["verified", "needs_review"] | None
    verdict_lines: list[VerdictLine] = Field(description="every forget and keep bound")
    failing: list[str] = Field(description="the bounds that did not hold, as text")
    adapter_id: int | None
    adapter_sha256: str | None
    report_id: int | None
    metrics: dict[str, float | None] | None
    subject_ref: str | None = Field(description="the data subject in the officer's own files")
    legal_basis: str | None
    received_at: datetime | None
    due_at: datetime | None = Field(description="one month after receipt (GDPR Art. 12(3))")
    approved_by: str | None
    approved_at: datetime | None
    completed_at: datetime | None
    job_id: int | None = None


class ForgetRequestDetail(ForgetRequestOut):
    progress: float = Field(ge=0, le=1)
    message: str
    events: list[Event]


class QueueRow(_Out):
    """One request in the queue, as data (the page formats it)."""

    id: int
    people: list[str]
    names: list[str]
    categories: list[str] | None
    pair_ids: list[str] | None
    method: Method  # type: ignore[valid-type]
    status: RequestStatus  # type: ignore[valid-type]
    progress: float = Field(ge=0, le=1)
    message: str
    eta_seconds: float | None
    attempts: int
    worker: str | None
    adapter_id: int | None
    submitted_at: datetime
    completed_at: datetime | None
    received_at: datetime | None
    due_at: datetime | None


class JobOut(_Out):
    id: int
    request_id: int | None
    status: JobStatus  # type: ignore[valid-type]
    progress: float
    message: str | None
    error: str | None
    attempts: int
    worker_id: str | None


class CancelIn(BaseModel):
    reason: str = Field(default="", max_length=2000, description="why it is cancelled")


class SignOffIn(BaseModel):
    note: str = Field(default="", max_length=2000)


class CancelOut(_Out):
    request_id: int
    status: RequestStatus  # type: ignore[valid-type]


class AdapterOut(_Out):
    id: int
    method: str
    request_id: int | None
    sha256: str
    base_fingerprint: str
    forget_ids: list[str]
    categories: list[str] | None
    created_at: datetime


class PersonOut(_Out):
    unique_id: str
    name: str
    categories: list[str]


class MethodOut(_Out):
    name: Method  # type: ignore[valid-type]
    title: str
    explains: bool


class AuditRow(_Out):
    person: str
    category: str
    question: str
    variant: str
    truth: str
    base_answer: str
    answer: str
    base_em: float
    em: float
    outcome: Literal["leaked", "forgotten", "kept", "lost"]
    forget_probability: float | None = Field(
        None, description="the method's P(forget) for the photo; null for methods without a gate"
    )
    reason: str
    leaked: bool
    adapter_id: int
    adapter_sha256: str
    audited_at: str
    auditor: str


class AuditSummary(_Out):
    model_config = ConfigDict(extra="allow")

    n: int
    leak_rate: float | None
    verdict: Literal["verified", "needs_review"]
    reasons: list[str]
    lines: list[VerdictLine]
    adapter_id: int


class AuditOut(_Out):
    rows: list[AuditRow]
    summary: AuditSummary


class AuditRun(_Out):
    """One stored audit run (its summary), for comparing runs."""

    id: int
    at: datetime
    actor: str
    adapter_id: int
    n: int | None
    leak_rate: float | None
    verdict: str | None
    reasons: list[str]


class AnswerOut(_Out):
    """The `answer` record of DESIGN §8 (plus the explanation fields the page uses)."""

    model_config = ConfigDict(extra="allow")

    answer: str
    base_answer: str
    forget_probability: float | None
    transformed: bool
    selected_tokens: list[Any]
    grid: list[int]


METHOD_INFOS = [MethodOut(name=m.name, title=m.title, explains=m.explains) for m in INFOS.values()]
