"""RFC 9457 problem details: the one error shape every route returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class FieldError:
    """One invalid input: where it is (``body.name``, ``query.limit``) and why."""

    field: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


@dataclass
class ProblemError(Exception):
    """Raise anywhere in a request to answer with a problem+json document."""

    detail: str
    errors: Sequence[FieldError] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    # When True the request's writes are committed even though it fails (e.g. counting a
    # failed login towards a lockout).
    commit_anyway: bool = False

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __str__(self) -> str:
        return f"{self.slug}: {self.detail}"

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": problem_type(self.slug),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [e.to_dict() for e in self.errors]
        body.update(self.extra)
        return body


def problem_type(slug: str) -> str:
    """Stable problem type URI (documented in docs/problems.md)."""
    return f"/problems/{slug}"


class InvalidInput(ProblemError):
    status = 400
    slug = "invalid-input"
    title = "Invalid input"


class Unauthenticated(ProblemError):
    status = 401
    slug = "unauthenticated"
    title = "Authentication required"


class Forbidden(ProblemError):
    status = 403
    slug = "forbidden"
    title = "Not allowed"


class NotFound(ProblemError):
    status = 404
    slug = "not-found"
    title = "Not found"


class MethodNotAllowed(ProblemError):
    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"


class Conflict(ProblemError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class InvalidTransition(ProblemError):
    status = 409
    slug = "invalid-transition"
    title = "Invalid state transition"


class PayloadTooLarge(ProblemError):
    status = 413
    slug = "payload-too-large"
    title = "Request body too large"


class UnsupportedMediaType(ProblemError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class IdempotencyMismatch(ProblemError):
    status = 422
    slug = "idempotency-key-reused"
    title = "Idempotency key reused with a different request"


class Locked(ProblemError):
    status = 423
    slug = "account-locked"
    title = "Account temporarily locked"


class TooManyRequests(ProblemError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"


class ServiceUnavailable(ProblemError):
    status = 503
    slug = "unavailable"
    title = "Service unavailable"
