"""Map every exception to an RFC 9457 problem+json response (never a stack trace)."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import ParameterKwarg
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from control_plane.errors import (
    PROBLEM_JSON,
    FieldError,
    Forbidden,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    Unauthenticated,
    problem_type,
)

log = structlog.get_logger("control_plane.http")

T = TypeVar("T")

_JSON_PATH = re.compile(r"at `\$(?P<path>[^`]*)`")
_NAMED_FIELD = re.compile(r"(?:unknown|required) field `(?P<name>[^`]+)`")


def problem_response(request: Request[Any, Any, Any], problem: ProblemError) -> Response[Any]:
    """Render a problem, as HTML for portal pages when a renderer is installed."""
    renderer = getattr(request.app.state, "html_error_renderer", None)
    if renderer is not None and _wants_html(request):
        return renderer(request, problem)  # type: ignore[no-any-return]
    return Response(
        content=problem_document(problem, request.url.path),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=dict(problem.headers),
    )


def problem_document(problem: ProblemError, path: str) -> dict[str, Any]:
    """The problem+json body: the problem, the path it answers and the request's id."""
    body = problem.to_dict(instance=path)
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        body["request_id"] = request_id
    return body


def _wants_html(request: Request[Any, Any, Any]) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/v1/", "/v2/", "/schema", "/healthz", "/readyz", "/metrics")):
        return False
    return "text/html" in request.headers.get("accept", "")


def _field_errors(extra: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    for item in extra if isinstance(extra, list) else []:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid value"))
        # Litestar gives the source as a ParamType (a str enum whose str() is "ParamType.QUERY").
        source = getattr(item.get("source"), "value", item.get("source")) or "body"
        key = str(item.get("key") or "")
        if key == "data" or key.startswith("data."):
            source, key = "body", key.removeprefix("data").lstrip(".")
        if match := _JSON_PATH.search(message):
            key = ".".join(p for p in (key, match.group("path").lstrip(".")) if p)
            message = _JSON_PATH.sub("", message).rstrip(" -")
        if match := _NAMED_FIELD.search(message):
            key = ".".join(p for p in (key, match.group("name")) if p)
        field = f"{source}.{key}" if key else str(source)
        errors.append(FieldError(field=field, reason=message))
    return errors


def _from_http_exception(exc: HTTPException) -> ProblemError:
    if isinstance(exc, ValidationException):
        errors = _field_errors(exc.extra)
        detail = exc.detail if not errors else "The request has invalid fields."
        if "decode" in str(exc.detail).lower() or "malformed" in str(exc.detail).lower():
            errors = errors or [FieldError("body", "not valid JSON")]
            detail = "The request body is not valid JSON."
        return InvalidInput(detail=str(detail), errors=errors or [FieldError("body", str(detail))])
    if isinstance(exc, NotFoundException):
        return NotFound(detail="No such resource.")
    if isinstance(exc, MethodNotAllowedException):
        allow = {k.lower(): v for k, v in (exc.headers or {}).items()}.get("allow", "")
        return MethodNotAllowed(
            detail="Method not allowed on this resource.", headers={"Allow": allow}
        )
    if isinstance(exc, RequestEntityTooLarge):
        return PayloadTooLarge(detail="The request body exceeds the size limit.")
    if isinstance(exc, NotAuthorizedException):
        return Unauthenticated(detail="Authentication required.")
    if isinstance(exc, PermissionDeniedException):
        return Forbidden(detail="Not allowed.")
    if exc.status_code == 400:
        # Body decoding failures (malformed JSON, wrong content) surface as plain 400s.
        return unreadable_body(str(exc.detail))
    return _GenericProblem(status_code=exc.status_code, detail=str(exc.detail))


def unreadable_body(reason: str) -> InvalidInput:
    return InvalidInput(
        detail="The request body could not be read.", errors=[FieldError("body", reason)]
    )


def decode_body(body: bytes, type: type[T]) -> T:
    """A JSON body as ``type``, refused as the framework refuses a handler's ``data``: the
    same lenient conversions (``"5"`` for an int), problem and field names (for routes
    served outside Litestar, see ``control_plane.endpoints.gateway.asgi``)."""
    try:
        return msgspec.json.decode(body, type=type, strict=False)
    except msgspec.ValidationError as exc:
        errors = _field_errors([{"message": str(exc), "key": "data", "source": "body"}])
        raise InvalidInput(detail="The request has invalid fields.", errors=errors) from exc
    except msgspec.DecodeError as exc:
        raise unreadable_body(str(exc)) from exc


class _GenericProblem(ProblemError):
    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail=detail)
        self._status = status_code

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body = super().to_dict(instance)
        body.update(
            status=self._status, type=problem_type(f"http-{self._status}"), title=self.detail
        )
        return body


def handle_problem(request: Request[Any, Any, Any], exc: ProblemError) -> Response[Any]:
    return problem_response(request, exc)


def _use_public_names(request: Request[Any, Any, Any], extra: Any) -> None:
    """Name parameters as callers send them (``QueryParameter(name="state")``), not the argument."""
    handler = request.scope.get("route_handler")
    parameters = getattr(getattr(handler, "parsed_fn_signature", None), "parameters", {})
    for item in extra if isinstance(extra, list) else []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            kwarg = getattr(parameters.get(item["key"]), "kwarg_definition", None)
            if isinstance(kwarg, ParameterKwarg) and kwarg.name:
                item["key"] = kwarg.name


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, ValidationException):
        _use_public_names(request, exc.extra)
    problem = _from_http_exception(exc)
    response = problem_response(request, problem)
    if isinstance(problem, _GenericProblem):
        response.status_code = exc.status_code
    return response


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return problem_response(request, unexpected(exc))


def unexpected(exc: Exception) -> ProblemError:
    """Log an unhandled error (its trace stays in the log) and answer with no detail."""
    log.exception("unhandled error", exc_type=type(exc).__name__)
    return _Internal(detail="An unexpected error occurred. Quote the request id to support.")


class _Internal(ProblemError):
    status = HTTP_500_INTERNAL_SERVER_ERROR
    slug = "internal-error"
    title = "Internal error"


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ProblemError: handle_problem,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}


class FieldErrorDocument(msgspec.Struct):
    field: str
    reason: str


class Problem(msgspec.Struct):
    """The problem+json body every error answer has (for the OpenAPI document only)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldErrorDocument] | None = None


_PROBLEM_DESCRIPTIONS = {
    400: "Invalid input: `errors` names each bad field",
    401: "Not signed in, or the credential is invalid, expired or revoked",
    403: "Signed in, but not allowed (role, scope, provider route or CSRF token)",
    404: "No such resource, or one the caller may not know about",
    409: "Conflicts with the current state (taken slug, retry in progress, last owner)",
    413: "Request body too large",
    422: "Well-formed but refused (Idempotency-Key reused with another body, bad import)",
    423: "Account temporarily locked after failed sign-ins",
    429: "Too many requests; see Retry-After",
    503: "A dependency is unavailable",
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for problem+json answers with the given status codes."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_JSON,
            description=_PROBLEM_DESCRIPTIONS.get(status, "Error"),
            generate_examples=False,
        )
        for status in sorted(statuses)
    }
