"""Each endpoint's cost per million tokens on the two bases a customer can buy on: the
GPU-hours its replicas hold, or its tokens at token prices."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.metering.service import NewUsage
from tests.fixtures.factories import Tenant
from tests.integration.billing.conftest import Client, day_hour, must, store, token_usage


def replica_hours(org: Tenant, at: Any, seconds: int, endpoint: str) -> NewUsage:
    return NewUsage(
        source="tenancies",
        event_id=f"rep-{endpoint}-{seconds}",
        org_id=org.org_id,
        project_id=org.project_id,
        type="gpu_seconds",
        value=Decimal(seconds),
        window_start=at,
        window_end=at + timedelta(seconds=seconds),
        dimensions={
            "region": "ca-qc-1",
            "gpu_model": "h100",
            "tenancy_kind": "inference",
            "tenancy": f"ten_{endpoint}",
            "endpoint": endpoint,
        },
    )


class TestEndpointCosts:
    async def test_allocation_and_usage_bases_side_by_side(
        self,
        client: Client,
        db: AsyncSession,
        clock: OffsetClock,
        customer: Tenant,
        owner: dict[str, str],
        book: dict[str, Any],
    ) -> None:
        at = day_hour(clock)
        await store(
            db,
            [
                replica_hours(customer, at, 3600, "ep_chat"),  # 1 H100-hour at 4.00
                token_usage(customer, "in", at, "tokens_in", 2_000_000),  # 2 M x 0.20
                token_usage(customer, "out", at, "tokens_out", 1_000_000),  # 1 M x 0.60
                replica_hours(customer, at, 7200, "ep_idle"),  # GPUs held, nothing served
            ],
            clock.now(),
        )

        costs = await must(
            client.get(f"/api/v1/orgs/{customer.org_id}/costs/endpoints", headers=owner)
        )

        chat, idle = costs
        assert chat["endpoint"] == "ep_chat"
        assert (Decimal(chat["allocation_cost"]), Decimal(chat["usage_cost"])) == (4, 1)
        assert Decimal(chat["allocation_per_million"]) == Decimal("1.3333")
        assert Decimal(chat["usage_per_million"]) == Decimal("0.3333")
        assert chat["cheaper"] == "usage"
        assert (idle["endpoint"], idle["usage_per_million"], idle["cheaper"]) == (
            "ep_idle",
            None,
            "unknown",
        )
        assert Decimal(idle["allocation_cost"]) == 8

    async def test_another_organization_cannot_read_them(
        self, client: Client, customer: Tenant, other: Tenant, book: dict[str, Any]
    ) -> None:
        from control_plane.identity.roles import TenantRole
        from tests.fixtures.factories import signed_in

        intruder = await signed_in(client, other.accounts[TenantRole.OWNER])

        response = await client.get(
            f"/api/v1/orgs/{customer.org_id}/costs/endpoints", headers=intruder
        )

        assert response.status_code == 404
