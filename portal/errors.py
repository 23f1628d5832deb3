"""Friendly HTML error pages for portal requests (the API keeps problem+json)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from control_plane.errors import ProblemError
from portal.forms import safe_next
from portal.templating import current_principal, shell_context

# What to tell a person, by status, when the problem's own title is too technical.
_HEADLINES = {
    400: "That request could not be understood",
    403: "You do not have access to this page",
    404: "Page not found",
    405: "That action is not available here",
    409: "That change conflicts with the current state",
    413: "That upload is too large",
    423: "This account is temporarily locked",
    429: "Too many requests",
    500: "Something went wrong on our side",
    503: "The service is temporarily unavailable",
}


def html_error_renderer(request: Request[Any, Any, Any], problem: ProblemError) -> Response[Any]:
    """Render ``problem`` as a page; a 401 sends the browser to the sign-in form instead."""
    body = problem.to_dict(instance=request.url.path)
    status = int(body["status"])
    if status == 401:
        return _to_login(request)
    principal = current_principal(request)
    context = shell_context(request, principal)
    context.update(
        page_title=_HEADLINES.get(status, str(body.get("title", "Error"))),
        status=status,
        headline=_HEADLINES.get(status, str(body.get("title", "Error"))),
        detail=problem.detail,
        field_errors=[e.to_dict() for e in problem.errors],
        request_id=request.scope.get("state", {}).get("request_id", ""),
    )
    return Template(
        template_name="errors/error.html",
        context=context,
        status_code=status,
        headers=dict(problem.headers),
    )


def _to_login(request: Request[Any, Any, Any]) -> Redirect:
    target = "/dashboard"
    if request.method == "GET":
        query = request.url.query
        target = safe_next(request.url.path + (f"?{query}" if query else ""))
    return Redirect(path=f"/login?{urlencode({'next': target})}", status_code=HTTP_303_SEE_OTHER)
