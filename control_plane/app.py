"""Composition root: the only module that knows every domain, the portal and billing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute

from billing.outbox.wiring import build_dispatcher
from billing.stripe.controllers import ROUTES as STRIPE_ROUTES
from billing.wiring import ROUTES as BILLING_ROUTES
from billing.wiring import BudgetStops, GpuHourPrices, TokenPrices, budget_loop, invoiced_until
from control_plane import __version__
from control_plane.audit.appender import LedgerAppender
from control_plane.audit.checkpoints import checkpoint_loop
from control_plane.audit.controllers import ROUTES as AUDIT_ROUTES
from control_plane.audit.recorder import FailedRequestAudit
from control_plane.clock import Clock
from control_plane.db.engine import make_engine, make_read_sessionmaker, make_sessionmaker
from control_plane.endpoints.controllers import ROUTES as ENDPOINT_ROUTES
from control_plane.endpoints.gateway.asgi import GatewayEndpoint, GatewayFront
from control_plane.endpoints.gateway.handlers import ROUTES as GATEWAY_ROUTES
from control_plane.endpoints.wiring import build_gateway
from control_plane.health.controllers import ROUTES as HEALTH_ROUTES
from control_plane.http.dependencies import DEPENDENCIES
from control_plane.http.idempotency import IdempotencyMiddleware, digest_key
from control_plane.http.problems import EXCEPTION_HANDLERS, problem_responses
from control_plane.http.request_context import RequestContextMiddleware
from control_plane.identity.authentication import Authenticator
from control_plane.identity.authz import ACCESS_KEY, Access, authorization_guard, public
from control_plane.identity.controllers import ROUTES as IDENTITY_ROUTES
from control_plane.identity.login_limits import SlidingWindowLimiter
from control_plane.identity.sso_controllers import ROUTES as SSO_ROUTES
from control_plane.identity.sso_controllers import close_oidc_client
from control_plane.insights.controllers import ROUTES as INSIGHTS_ROUTES
from control_plane.insights.tasks import insights_loop
from control_plane.inventory.controllers import ROUTES as INVENTORY_ROUTES
from control_plane.logging import configure_logging
from control_plane.metering.controllers import ROUTES as METERING_ROUTES
from control_plane.pools.controllers import ROUTES as POOL_ROUTES
from control_plane.settings import Settings
from control_plane.sovereignty.access.controllers import ROUTES as ACCESS_ROUTES
from control_plane.sovereignty.keys import service as keys_service
from control_plane.sovereignty.keys.controllers import ROUTES as KEYS_ROUTES
from control_plane.sovereignty.keys.residency import org_key_resources
from control_plane.sovereignty.residency.controllers import ROUTES as RESIDENCY_ROUTES
from control_plane.sovereignty.residency.resources import ORG_KEYS_SOURCE, builtin_sources
from control_plane.telemetry.controllers import ROUTES as TELEMETRY_ROUTES
from control_plane.telemetry.credentials import NodeAuthenticator
from control_plane.telemetry.tasks import telemetry_loop
from control_plane.tenancies.controllers import ROUTES as TENANCY_ROUTES
from control_plane.tenancies.wiring import build_reconciler
from portal.routes import install_portal, portal_router


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    extra_route_handlers: Sequence[Any] = (),
    configure_logs: bool = True,
) -> Litestar:
    """Build the API + portal application for one settings object."""
    settings = settings or Settings()
    clock = clock or Clock()
    if configure_logs:
        configure_logging(settings.log_format, settings.log_level)
    engine = make_engine(settings.database_url)
    sessionmaker = make_sessionmaker(engine)
    audit_appender = LedgerAppender(engine)
    reconciler = build_reconciler(sessionmaker, clock, settings)
    budget_stops = BudgetStops(sessionmaker)
    gateway, autoscaler = build_gateway(
        sessionmaker,
        clock,
        settings,
        reconciler,
        budget=budget_stops,
        pricer=TokenPrices(sessionmaker, clock),
    )
    outbox = build_dispatcher(sessionmaker, clock, settings)
    gpu_prices = GpuHourPrices(clock)
    state = State(
        {
            "settings": settings,
            "clock": clock,
            "engine": engine,
            "sessionmaker": sessionmaker,
            "read_sessionmaker": make_read_sessionmaker(engine),
            "authenticator": Authenticator(sessionmaker, clock, settings.api_key_cache_seconds),
            "login_limiter": SlidingWindowLimiter(settings.login_rate_per_minute),
            # Group commit for ledger entries outside a change's transaction (refusals).
            "audit_appender": audit_appender,
            # Called when an organization is deleted, in its transaction: keys shreds its
            # data keys (identity knows no other domain).
            "org_deletion_hooks": (keys_service.org_deletion_hook(settings, clock),),
            # Resource sources residency checks policy changes against (tenancies,
            # endpoints and keys register theirs here).
            "residency_sources": builtin_sources(),
            # Tenancy drivers per (region, kind) and the reconciler that drives them.
            "drivers": reconciler.drivers,
            "reconciler": reconciler,
            # The inference gateway (routes, limits, usage meter) and the autoscaler.
            "gateway": gateway,
            "autoscaler": autoscaler,
            # Billing's answers to the control plane: hard-stop budgets (placement and the
            # gateway refuse new work) and invoiced periods (late usage refused).
            "budget_gate": budget_stops,
            "usage_closed_periods": invoiced_until,
            # Billing's outbox: webhooks, e-mail and Stripe, delivered with retries.
            "outbox": outbox,
            # Node agents' credentials (telemetry ingest), cached for a few seconds.
            "node_authenticator": NodeAuthenticator(sessionmaker, clock),
            # Billing's GPU-hour prices per organization, for savings in waste analysis.
            "gpu_prices": gpu_prices,
        }
    )

    state.residency_sources.register(ORG_KEYS_SOURCE, org_key_resources)
    idempotency: dict[str, Any] = {
        "sessionmaker": lambda: sessionmaker,
        "clock": clock,
        "ttl_seconds": settings.idempotency_ttl_seconds,
        "key": digest_key(settings.key_dir),
    }

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        checkpoints = asyncio.create_task(checkpoint_loop(sessionmaker, settings, clock))
        audit_appender.start()
        reconciling = (
            asyncio.create_task(reconciler.run_forever()) if settings.reconciler_enabled else None
        )
        background = [
            asyncio.create_task(gateway.meter.run(settings.gateway_flush_seconds)),
            asyncio.create_task(budget_loop(sessionmaker, settings, clock, budget_stops)),
            asyncio.create_task(outbox.run(settings.billing_interval_seconds)),
            asyncio.create_task(telemetry_loop(sessionmaker, settings, clock)),
            asyncio.create_task(insights_loop(sessionmaker, settings, clock, gpu_prices)),
        ]
        if settings.autoscale_enabled:
            background.append(
                asyncio.create_task(autoscaler.run(settings.autoscale_interval_seconds))
            )
        try:
            yield
        finally:
            if reconciling is not None:  # the step in hand finishes (see Reconciler.stop)
                await reconciler.stop(reconciling, settings.reconcile_stop_grace_seconds)
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(Exception):  # logged by the meter; retried next start
                await gateway.meter.flush()
            await gateway.close()
            checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checkpoints
            await audit_appender.close()  # writes what is queued
            await engine.dispose()

    app = Litestar(
        route_handlers=[
            *HEALTH_ROUTES,
            *IDENTITY_ROUTES,
            *SSO_ROUTES,
            *INVENTORY_ROUTES,
            *AUDIT_ROUTES,
            *RESIDENCY_ROUTES,
            *ACCESS_ROUTES,
            *KEYS_ROUTES,
            *TENANCY_ROUTES,
            *POOL_ROUTES,
            *ENDPOINT_ROUTES,
            *METERING_ROUTES,
            *TELEMETRY_ROUTES,
            *INSIGHTS_ROUTES,
            *BILLING_ROUTES,
            *STRIPE_ROUTES,
            portal_router(settings.portal_pages_at_once),
            *extra_route_handlers,
        ],
        dependencies=DEPENDENCIES,
        guards=[authorization_guard],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            RequestContextMiddleware,
            FailedRequestAudit,
            DefineMiddleware(IdempotencyMiddleware, **idempotency),
        ],
        openapi_config=OpenAPIConfig(
            title="Sovereign GPU Cloud control plane",
            version=__version__,
            path="/schema",
            # Only the machine-readable documents: the HTML viewers load scripts from CDNs,
            # and a sovereign customer's browser talks only to the operator.
            render_plugins=[YamlRenderPlugin()],
            # Not in the document it serves (as with Litestar's default router).
            openapi_router=Router(
                path="/schema", route_handlers=[], opt=public(), include_in_schema=False
            ),
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(type="http", scheme="bearer", bearer_format="cpk_…"),
                    "session": SecurityScheme(
                        type="apiKey", name="cp_session", security_scheme_in="cookie"
                    ),
                }
            ),
            security=[{"apiKey": []}, {"session": []}],
        ),
        request_max_body_size=settings.max_body_bytes,
        state=state,
        lifespan=[lifespan],
        on_shutdown=[close_oidc_client],
        debug=False,
        on_app_init=[install_portal],
    )
    _refuse_undeclared_routes(app)
    _document_problem_answers(app)
    # The gateway's routes are served in front of the router (see its asgi module), with
    # the middleware above but the failed-request audit, which skips data-plane calls.
    endpoint = GatewayEndpoint(gateway, settings.max_body_bytes)
    app.asgi_handler = GatewayFront(
        GATEWAY_ROUTES,
        endpoint=RequestContextMiddleware(IdempotencyMiddleware(endpoint, **idempotency)),
        app=app.asgi_handler,
    )
    return app


def _refuse_undeclared_routes(app: Litestar) -> None:
    """Fail closed at start-up: every HTTP route must declare who may call it."""
    missing = []
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                if handler.http_methods == {"OPTIONS"}:
                    continue  # framework-generated; the guard refuses them
                if not isinstance(handler.opt.get(ACCESS_KEY), Access):
                    missing.append(f"{'/'.join(sorted(handler.http_methods))} {route.path}")
    if missing:
        raise RuntimeError(f"routes without an access policy: {missing}")


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _document_problem_answers(app: Litestar) -> None:
    """Declare in the OpenAPI document the problem+json answers each route can give.

    They follow from the route's access policy and methods; a handler's own ``responses``
    (e.g. 423 and 429 on sign-in) are kept and win.
    """
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            access = handler.opt.get(ACCESS_KEY)
            if not isinstance(access, Access) or handler.http_methods == {"OPTIONS"}:
                continue
            statuses = {400} if not access.public or _takes_input(handler) else set()
            if not access.public:
                statuses |= {401, 403, 404}
            if handler.http_methods - {"GET", "HEAD"}:
                statuses.add(409)
            if handler.http_methods & _BODY_METHODS:
                statuses |= {413, 422}  # body size limit; Idempotency-Key reused
            handler.responses = {**problem_responses(*statuses), **(handler.responses or {})}


def _takes_input(handler: HTTPRouteHandler) -> bool:
    """Whether the handler reads path, query or body input (which can be invalid)."""
    names = set(handler.parsed_fn_signature.parameters) - {"request"}
    return bool(names - set(handler.resolve_dependencies()))
