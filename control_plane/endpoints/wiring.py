"""How the composition root builds the inference gateway and the autoscaler."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.clock import Clock
from control_plane.endpoints.autoscale import Autoscaler
from control_plane.endpoints.gateway import metrics
from control_plane.endpoints.gateway.core import BudgetGate, Gateway, TokenPricer
from control_plane.endpoints.gateway.limits import KeyLimits, Limiter
from control_plane.endpoints.gateway.routing import RouteTable
from control_plane.endpoints.gateway.stats import Stats
from control_plane.endpoints.gateway.usage import UsageMeter
from control_plane.endpoints.service import Deps
from control_plane.settings import Settings
from control_plane.tenancies.reconciler import Reconciler


def build_gateway(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: Clock,
    settings: Settings,
    reconciler: Reconciler,
    budget: BudgetGate | None = None,
    pricer: TokenPricer | None = None,
) -> tuple[Gateway, Autoscaler]:
    stats = Stats()
    metrics.watch(stats)
    deps = Deps(clock=clock, settings=settings, drivers=reconciler.drivers)
    routes = RouteTable(sessionmaker, settings.gateway_routes_ttl_seconds)
    autoscaler = Autoscaler(sessionmaker, deps, stats, kick=reconciler.wake.set, routes=routes)
    gateway = Gateway(
        routes=routes,
        limiter=Limiter(
            KeyLimits(settings.gateway_requests_per_second, settings.gateway_tokens_per_minute)
        ),
        meter=UsageMeter(sessionmaker, clock),
        clock=clock,
        wake=autoscaler.wake,
        budget=budget,
        pricer=pricer,
        cold_start_seconds=settings.gateway_cold_start_seconds,
        upstream_timeout=settings.gateway_upstream_timeout_seconds,
        stats=stats,
    )
    return gateway, autoscaler
