"""Storage for cagul-studio: the schema, database access, migrations, users and audit log.

Usable without torch (the app's web process and the job queue import it). Typical use::

    import storage
    db = storage.connect(upgrade=True)        # DATABASE_URL, else .cagul/cagul.sqlite
    with db.transaction() as s:               # committed at the end, rolled back on error
        req = storage.create_forget_request(s, requester="Jane Doe", individual_ids=["17"],
                                            categories=["health"], known_individuals=ids)
"""

from storage.artifacts import ADAPTER_CONFIG, ADAPTER_WEIGHTS, sha256_file, verify_adapter
from storage.audit import events_for, record_event
from storage.clock import db_now, utcnow
from storage.config import default_sqlite_path, resolve_url
from storage.connection import connect
from storage.engine import Database, make_engine
from storage.errors import (
    AdapterIntegrityError,
    DuplicateActiveRequestError,
    EmptyCategoriesError,
    InvalidRequestError,
    InvalidRoleError,
    InvalidUserValueError,
    InvalidValueError,
    MigrationError,
    NaiveDatetimeError,
    RequestRefused,
    StorageError,
    UnknownCategoryError,
    UnknownIndividualError,
    UserError,
    UserExistsError,
    WeakPasswordError,
)
from storage.forget_requests import METHODS, active_requests, create_forget_request
from storage.migrate import current_revision, head_revision, upgrade
from storage.models import (
    ACTIVE_REQUEST_STATUSES,
    FINAL_JOB_STATUSES,
    FINAL_REQUEST_STATUSES,
    JOB_STATUSES,
    REQUEST_STATUSES,
    ROLES,
    Adapter,
    AuditEvent,
    Base,
    ForgetRequest,
    Job,
    MetricReport,
    SignInThrottle,
    User,
    WebSession,
)
from storage.reports import add_metric_report, headline_metrics
from storage.users import (
    authenticate,
    create_user,
    issue_token,
    revoke_token,
    set_password,
    token_lifetime,
    user_for_token,
)

__all__ = [
    "ACTIVE_REQUEST_STATUSES",
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "FINAL_JOB_STATUSES",
    "FINAL_REQUEST_STATUSES",
    "JOB_STATUSES",
    "METHODS",
    "REQUEST_STATUSES",
    "ROLES",
    "Adapter",
    "AdapterIntegrityError",
    "AuditEvent",
    "Base",
    "Database",
    "DuplicateActiveRequestError",
    "EmptyCategoriesError",
    "ForgetRequest",
    "InvalidRequestError",
    "InvalidRoleError",
    "InvalidUserValueError",
    "InvalidValueError",
    "Job",
    "MetricReport",
    "SignInThrottle",
    "MigrationError",
    "NaiveDatetimeError",
    "RequestRefused",
    "StorageError",
    "UnknownCategoryError",
    "UnknownIndividualError",
    "User",
    "UserError",
    "UserExistsError",
    "WebSession",
    "WeakPasswordError",
    "active_requests",
    "add_metric_report",
    "authenticate",
    "connect",
    "create_forget_request",
    "create_user",
    "current_revision",
    "db_now",
    "default_sqlite_path",
    "events_for",
    "head_revision",
    "headline_metrics",
    "issue_token",
    "make_engine",
    "record_event",
    "resolve_url",
    "revoke_token",
    "set_password",
    "sha256_file",
    "token_lifetime",
    "upgrade",
    "user_for_token",
    "utcnow",
    "verify_adapter",
]
