"""Exceptions the SDK raises: problem+json answers become typed :class:`ApiError` subclasses."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

import httpx
import msgspec


class FieldError(NamedTuple):
    """One invalid input the server named: ``("body.slug", "already taken")``."""

    field: str
    reason: str


class SdkError(Exception):
    """Anything the SDK raises."""


class ApiConnectionError(SdkError):
    """The server could not be reached (or stopped answering) after every retry."""


class UnexpectedResponseError(SdkError):
    """The server answered with a body the SDK could not read."""


class ApiError(SdkError):
    """The API refused the request with an RFC 9457 problem document."""

    def __init__(
        self,
        status: int,
        *,
        type: str = "about:blank",
        title: str = "",
        detail: str = "",
        errors: list[FieldError] | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.errors = list(errors or [])
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = dict(body or {})
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.status} {self.title}".strip()
        if self.detail and self.detail != self.title:
            text = f"{text}: {self.detail}"
        for error in self.errors:
            text += f"\n  {error.field}: {error.reason}"
        return text


class ValidationError(ApiError):
    """400 or 422: the input was refused; :attr:`errors` names each field."""


class AuthenticationError(ApiError):
    """401: no credential, or an invalid, expired or revoked one."""


class PermissionDeniedError(ApiError):
    """403: the caller is known but not allowed (role, scope, CSRF or jurisdiction)."""


class NotFoundError(ApiError):
    """404: no such resource, or one the caller may not know about."""


class ConflictError(ApiError):
    """409: the request clashes with the current state (taken slug, invalid transition)."""


class RateLimitError(ApiError):
    """429: slow down; :attr:`retry_after` says for how long, when the server said."""


class ServerError(ApiError):
    """5xx: the server failed; quote :attr:`request_id` to the operator."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
}


def error_class(status: int) -> type[ApiError]:
    """The exception type for an HTTP error status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, ApiError)


def error_from_response(response: httpx.Response) -> ApiError:
    """Build the exception for an error response, problem+json or not."""
    body = _json_object(response)
    raw_errors = body.get("errors")
    errors = [
        FieldError(str(item.get("field", "")), str(item.get("reason", "")))
        for item in (raw_errors if isinstance(raw_errors, list) else [])
        if isinstance(item, dict)
    ]
    title = body.get("title")
    detail = body.get("detail")
    request_id = body.get("request_id") or response.headers.get("x-request-id")
    return error_class(response.status_code)(
        response.status_code,
        type=str(body.get("type") or "about:blank"),
        title=str(title) if title else response.reason_phrase,
        detail=str(detail) if detail else _text_excerpt(response),
        errors=errors,
        request_id=str(request_id) if request_id else None,
        retry_after=retry_after_seconds(response),
        body=body,
    )


def _json_object(response: httpx.Response) -> dict[str, Any]:
    content_type = response.headers.get("content-type", "")
    if "json" not in content_type:
        return {}
    try:
        data = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _text_excerpt(response: httpx.Response) -> str:
    if "json" in response.headers.get("content-type", ""):
        return ""
    try:
        return response.text.strip()[:200]
    except UnicodeDecodeError:
        return ""


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), None when absent or bad."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
