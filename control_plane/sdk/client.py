"""The SDK entry point: ``Client(base_url, api_key)`` and its resources."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

import httpx

from control_plane.sdk._http import SESSION_COOKIE, Credentials, RetryPolicy, Transport, decode
from control_plane.sdk.access import Access
from control_plane.sdk.audit import Audit
from control_plane.sdk.billing import Billing, Usage
from control_plane.sdk.endpoints import Endpoints
from control_plane.sdk.errors import UnexpectedResponseError
from control_plane.sdk.insights import Insights
from control_plane.sdk.keys import Keys, ProviderSecrets, Secrets
from control_plane.sdk.models import MeRead, SessionRead
from control_plane.sdk.pools import Pools
from control_plane.sdk.residency import Residency
from control_plane.sdk.resources import (
    API,
    ApiKeys,
    GpuModels,
    Nodes,
    Orgs,
    Projects,
    Regions,
)
from control_plane.sdk.telemetry import Telemetry
from control_plane.sdk.tenancies import Quotas, Shapes, Tenancies


class Client:
    """A synchronous client for the control-plane API.

    Tenants authenticate with a project API key (``api_key="cpk_..."``). Provider staff, who
    have no API keys, sign in with :meth:`login` (or pass a saved ``session_token`` and
    ``csrf_token``). Use it as a context manager, or call :meth:`close`.

    Idempotent calls (GET, PATCH, DELETE) and create calls (which carry one
    ``Idempotency-Key`` per logical call) are retried on connection errors and on
    429/502/503/504, honouring ``Retry-After``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        session_token: str | None = None,
        csrf_token: str | None = None,
        backoff_factor: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.base_url = base_url.rstrip("/")
        self._credentials = Credentials(api_key, session_token, csrf_token)
        self._t = Transport(
            self.base_url,
            self._credentials,
            timeout=timeout,
            retry=RetryPolicy(max_retries=max_retries, backoff_factor=backoff_factor),
            transport=transport,
            sleep=sleep,
        )
        self.orgs = Orgs(self._t)
        self.projects = Projects(self._t)
        self.api_keys = ApiKeys(self._t)
        self.regions = Regions(self._t)
        self.gpu_models = GpuModels(self._t)
        self.nodes = Nodes(self._t)
        self.access = Access(self._t)
        self.secrets = Secrets(self._t)
        self.provider_secrets = ProviderSecrets(self._t)
        self.keys = Keys(self._t)
        self.audit = Audit(self._t)
        self.residency = Residency(self._t)
        self.tenancies = Tenancies(self._t)
        self.shapes = Shapes(self._t)
        self.quotas = Quotas(self._t)
        self.pools = Pools(self._t)
        self.endpoints = Endpoints(self._t)
        self.usage = Usage(self._t)
        self.billing = Billing(self._t)
        self.insights = Insights(self._t)
        self.telemetry = Telemetry(self._t)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, {self._credentials!r})"

    def close(self) -> None:
        self._t.close()

    @property
    def session_token(self) -> str | None:
        """The session this client signed in with (to save and reuse), if any."""
        return self._credentials.session_token

    @property
    def csrf_token(self) -> str | None:
        return self._credentials.csrf_token

    def me(self) -> MeRead:
        """Who the credential belongs to, and its organizations."""
        return self._t.call("GET", f"{API}/me", MeRead)

    def login(self, email: str, password: str) -> SessionRead:
        """Sign in with a password; later calls use the session (and its CSRF token)."""
        response = self._t.send(
            "POST", f"{API}/auth/login", body={"email": email, "password": password}
        )
        session = decode(response, SessionRead)
        token = _session_cookie(response)
        if token is None:
            raise UnexpectedResponseError("the sign-in answer carried no session cookie")
        self._credentials.api_key = None
        self._credentials.session_token = token
        self._credentials.csrf_token = session.csrf_token
        return session

    def logout(self) -> None:
        """End the session on the server and forget it here."""
        try:
            self._t.call_no_content("POST", f"{API}/auth/logout")
        finally:
            self._credentials.session_token = None
            self._credentials.csrf_token = None


def _session_cookie(response: httpx.Response) -> str | None:
    """The session token from ``Set-Cookie``, read directly: a ``Secure`` cookie over plain
    http (a loopback deployment) must still be usable by a non-browser client."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name.strip() == SESSION_COOKIE:
            value = rest.split(";", 1)[0].strip().strip('"')
            return value or None
    return None
