"""The gateway's request path, shared by the OpenAI-compatible and KServe routes: admit
(the caller's organization and project, per-key limits, the budget), route (a served
version by traffic share, the least busy ready replica, waiting through a cold start),
generate (streamed from Triton, retried on another replica only while nothing was
generated), and account (tokens counted with the model's own tokenizer, metered once)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from control_plane.clock import Clock
from control_plane.endpoints.gateway.limits import KeyLimits, Limiter
from control_plane.endpoints.gateway.routing import Route, RouteTable, Upstream, Version
from control_plane.endpoints.gateway.stats import Stats
from control_plane.endpoints.gateway.text import ModelText, model_text
from control_plane.endpoints.gateway.upstream import (
    Clients,
    UpstreamError,
    UpstreamUnavailable,
    generate,
)
from control_plane.endpoints.gateway.usage import UsageKey, UsageMeter
from control_plane.errors import NotFound, ProblemError, ServiceUnavailable, TooManyRequests
from control_plane.identity.authz import TenantScope

__all__ = [
    "AllowAll",
    "BudgetGate",
    "Call",
    "Gateway",
    "PaymentRequired",
    "Quote",
    "TokenPricer",
    "UpstreamFailed",
]

Wake = Callable[[str], Awaitable[None]]


class PaymentRequired(ProblemError):
    status = 402
    slug = "budget-exhausted"
    title = "Budget exhausted"


class UpstreamFailed(ProblemError):
    status = 502
    slug = "upstream-failed"
    title = "The model server failed the request"


class BudgetGate(Protocol):
    """Billing's answer to "may this organization spend more now?" (None: yes)."""

    async def refusal(self, org_id: str, project_id: str | None) -> str | None: ...


class Quote(Protocol):
    """A model's token prices for one organization: what a call's tokens cost."""

    @property
    def currency(self) -> str: ...

    def cost(self, tokens_in: int, tokens_out: int) -> Decimal: ...


class TokenPricer(Protocol):
    """Billing's answer to "what do this organization's tokens of this model cost here?"
    (None: no price book in effect; the usage then carries no cost)."""

    async def price(self, org_id: str, region: str, model: str) -> Quote | None: ...


class AllowAll:
    """Until billing wires its budgets in, nothing is refused for budget."""

    async def refusal(self, org_id: str, project_id: str | None) -> str | None:
        return None


@dataclass
class Call:
    """One admitted request, from admission to its usage."""

    route: Route
    version: Version
    text: ModelText
    api_key_id: str
    request_id: str
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    output: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finished: bool = False
    uncounted_prompt: str | None = None  # counted while the model works (see ``complete``)
    quote: Quote | None = None  # the token prices, for the cost in ``usage``

    def cost(self) -> tuple[Decimal, str] | None:
        """What this call's tokens cost before tax, and in which currency."""
        if self.quote is None:
            return None
        return self.quote.cost(self.prompt_tokens, self.completion_tokens), self.quote.currency

    def count_prompt(self) -> None:
        if self.uncounted_prompt is not None:
            self.prompt_tokens = self.text.count(self.uncounted_prompt)
            self.uncounted_prompt = None


class Gateway:
    def __init__(
        self,
        *,
        routes: RouteTable,
        limiter: Limiter,
        meter: UsageMeter,
        clock: Clock,
        wake: Wake,
        budget: BudgetGate | None = None,
        pricer: TokenPricer | None = None,
        cold_start_seconds: float = 120.0,
        upstream_timeout: float = 300.0,
        stats: Stats | None = None,
    ) -> None:
        self.routes = routes
        self.limiter = limiter
        self.meter = meter
        self.stats = stats or Stats()
        self._texts: dict[Path, ModelText] = {}
        self.clients = Clients()
        self._clock = clock
        self._wake = wake
        self._budget = budget or AllowAll()
        self._pricer = pricer
        self._cold_start = cold_start_seconds
        self._timeout = upstream_timeout

    async def admit(self, scope: TenantScope, model: str, request_id: str) -> Call:
        org_id = scope.resolve_org(None)
        route = await self.routes.get(org_id, model)
        if route is None or (scope.project_id and route.project_id not in (None, scope.project_id)):
            raise NotFound(
                detail=f"No model {model!r} for this key; GET /v1/models lists them.",
                extra={"error": {"code": "model_not_found"}},
            )
        principal = scope.principal
        key = principal.id
        own = None
        if principal.requests_per_second is not None or principal.tokens_per_minute is not None:
            own = KeyLimits(
                principal.requests_per_second or self.limiter.defaults.requests_per_second,
                principal.tokens_per_minute or self.limiter.defaults.tokens_per_minute,
            )
        wait = self.limiter.admit(key, own)
        if wait is not None:
            raise TooManyRequests(
                detail="This API key is over its request or token rate; slow down.",
                headers={"Retry-After": str(max(1, round(wait)))},
            )
        refusal = await self._budget.refusal(org_id, route.project_id)
        if refusal is not None:
            raise PaymentRequired(detail=refusal)
        version = route.version_for(random.random())  # noqa: S311 - a traffic split
        if version is None:
            raise ServiceUnavailable(
                detail=f"{model!r} has no version approved for production traffic yet.",
                headers={"Retry-After": "60"},
            )
        text = self._texts.get(version.model_dir)
        if text is None:  # first request of a version: read its tokenizer off the loop
            text = self._texts[version.model_dir] = await asyncio.to_thread(
                model_text, version.model_dir
            )
        quote = (
            await self._pricer.price(org_id, route.region, version.served_model)
            if self._pricer is not None
            else None
        )
        return Call(
            route=route,
            version=version,
            text=text,
            api_key_id=key,
            request_id=request_id,
            quote=quote,
        )

    @property
    def timeout(self) -> float:
        return self._timeout

    async def pick(self, call: Call) -> Upstream:
        """A replica for a call the route handler forwards itself (its outstanding count
        raised; the caller lowers it)."""
        stats = self.stats.of(call.route.endpoint_id)
        stats.last_request = time.monotonic()
        upstream = await self._upstream(call, [])
        upstream.outstanding += 1
        return upstream

    async def _upstream(self, call: Call, tried: list[Upstream]) -> Upstream:
        """The least busy ready replica; with none, ask for one and hold the request
        until it serves (a cold start) or the wait runs out."""
        deadline = time.monotonic() + self._cold_start
        woken = False
        while True:
            route = await self.routes.get(call.route.org_id, call.route.name) or call.route
            upstream = route.least_outstanding(exclude=tried)

            if upstream is not None:
                return upstream
            if tried:
                raise UpstreamFailed(detail="No other replica could take the request.")
            if not woken:
                await self._wake(route.endpoint_id)
                woken = True
            if time.monotonic() >= deadline:
                raise ServiceUnavailable(
                    detail="The endpoint is starting a replica; try again shortly.",
                    headers={"Retry-After": "10"},
                )
            await asyncio.sleep(0.2)

    async def generate(self, call: Call, prompt: str, max_tokens: int) -> AsyncIterator[str]:
        """The model's output, delta by delta, on a gRPC stream of the call's own (closing
        it stops the generation); a replica that cannot be reached before anything was
        generated is swapped for another (the only safe retry)."""
        stats = self.stats.of(call.route.endpoint_id)
        stats.in_flight += 1
        stats.last_request = time.monotonic()
        tried: list[Upstream] = []
        try:
            while True:
                upstream = await self._upstream(call, tried)
                upstream.outstanding += 1
                try:
                    client = self.clients.get(upstream.grpc_url)
                    async for delta in generate(
                        client,
                        call.version.served_model,
                        prompt,
                        max_tokens=max_tokens,
                        request_id=call.request_id,
                        stream_timeout=self._timeout,
                    ):
                        if call.first_token_at is None:
                            call.first_token_at = time.monotonic()
                        call.output.append(delta)
                        yield delta
                    return
                except UpstreamUnavailable:
                    if call.output:
                        raise
                    tried.append(upstream)
                finally:
                    upstream.outstanding -= 1
        except UpstreamError as exc:
            raise UpstreamFailed(detail=f"The model server failed: {exc}") from exc
        finally:
            stats.in_flight -= 1

    async def complete(self, call: Call, prompt: str, max_tokens: int) -> str:
        """The model's whole answer, over the replica's shared streams. The prompt's tokens
        are counted (once) while the replica works on it; a replica that cannot be reached
        is swapped for another (nothing was generated)."""
        call.uncounted_prompt = prompt
        stats = self.stats.of(call.route.endpoint_id)
        stats.in_flight += 1
        stats.last_request = time.monotonic()
        tried: list[Upstream] = []
        try:
            while True:
                upstream = await self._upstream(call, tried)
                upstream.outstanding += 1
                try:
                    answer = await self.clients.shared(upstream.grpc_url).send(
                        call.version.served_model,
                        prompt,
                        max_tokens=max_tokens,
                        request_id=call.request_id,
                        answer_within=self._timeout,
                    )
                    call.count_prompt()
                    text = await answer
                    break
                except UpstreamUnavailable:
                    tried.append(upstream)
                finally:
                    upstream.outstanding -= 1
        except UpstreamError as exc:
            raise UpstreamFailed(detail=f"The model server failed: {exc}") from exc
        finally:
            stats.in_flight -= 1
        call.first_token_at = time.monotonic()
        call.output.append(text)
        return text

    def account(self, call: Call, *, ok: bool) -> None:
        """Count the tokens of what was generated (all of it, or up to a disconnect) with
        the model's tokenizer, and meter them; once per call."""
        if call.finished:
            return
        call.finished = True
        call.count_prompt()  # a call that failed before its prompt was counted
        call.completion_tokens = call.text.count("".join(call.output))
        route = call.route
        now = self._clock.now()
        self.meter.add(
            UsageKey(
                org_id=route.org_id,
                project_id=route.project_id,
                api_key_id=call.api_key_id,
                endpoint_id=route.endpoint_id,
                model=call.version.served_model,
                region=route.region,
                window_start=self.meter.window_of(now),
            ),
            call.prompt_tokens,
            call.completion_tokens,
        )
        self.limiter.spend_tokens(call.api_key_id, call.prompt_tokens + call.completion_tokens)
        ended = time.monotonic()
        self.stats.finished(
            route.endpoint_id,
            ok=ok,
            latency_ms=(ended - call.started) * 1000,
            ttft_ms=None
            if call.first_token_at is None
            else (call.first_token_at - call.started) * 1000,
            tokens_in=call.prompt_tokens,
            tokens_out=call.completion_tokens,
        )

    async def close(self) -> None:
        await self.clients.close()
