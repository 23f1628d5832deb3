"""Month-to-date cost: the month's usage rated like its invoice will be, summed by kind
of charge and by project, for the organization's billing readers only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from billing.invoices.costs import cost_breakdown
from control_plane.clock import OffsetClock
from control_plane.errors import Forbidden, NotFound
from control_plane.identity.authz import TenantScope
from control_plane.identity.principal import Principal
from control_plane.identity.roles import Permission, TenantRole
from tests.fixtures.factories import Tenant, make_project
from tests.integration.billing.conftest import day_hour, gpu_usage, store, token_usage


def scope_of(org: Tenant, role: TenantRole) -> TenantScope:
    """The scope the guard builds for ``role`` on a billing:read route."""
    from control_plane.identity.authz import _SCOPE_TOKEN  # the test stands in for the guard

    account = org.accounts[role]
    principal = Principal(
        kind="user",
        id=account.user_id,
        display=account.email,
        memberships={org.org_id: role},
    )
    return TenantScope(_SCOPE_TOKEN, principal, Permission.BILLING_READ)


class TestCostBreakdown:
    async def test_sums_by_kind_and_project_with_tax(
        self, db: AsyncSession, clock: OffsetClock, customer: Tenant, book: Any
    ) -> None:
        at = day_hour(clock)
        training = await make_project(db, customer.org_id, "training")
        await db.commit()
        await store(
            db,
            [
                gpu_usage(customer, "t1", at, 5400),  # 6.00
                gpu_usage(customer, "t2", at, 3600, project=training, tenancy="ten_b"),  # 4.00
                token_usage(customer, "g1", at, "tokens_in", 2_000_000),  # 0.40
            ],
            clock.now(),
        )

        costs = await cost_breakdown(
            db, scope_of(customer, TenantRole.AUDITOR), customer.org_id, f"{at:%Y-%m}"
        )

        [cad] = costs.currencies
        assert cad.currency == "CAD"
        assert cad.subtotal == Decimal("10.40")
        assert cad.total == cad.subtotal + cad.tax
        assert [(i.key, i.amount) for i in cad.by_kind] == [
            ("gpu_seconds", Decimal("6.00") + Decimal("4.00")),
            ("tokens_in", Decimal("0.40")),
        ]
        assert [(i.key, i.amount) for i in cad.by_project] == [
            (customer.project_id, Decimal("6.40")),
            (training, Decimal("4.00")),
        ]
        assert cad.lines[0].amount == Decimal("6.00")

    async def test_a_month_without_usage_has_no_currency(
        self, db: AsyncSession, customer: Tenant, book: Any
    ) -> None:
        costs = await cost_breakdown(
            db, scope_of(customer, TenantRole.BILLING), customer.org_id, "2020-01"
        )

        assert costs.currencies == []

    async def test_only_billing_readers_of_the_organization(
        self, db: AsyncSession, customer: Tenant, other: Tenant
    ) -> None:
        with pytest.raises(Forbidden):
            await cost_breakdown(
                db, scope_of(customer, TenantRole.MEMBER), customer.org_id, "2026-01"
            )
        with pytest.raises(NotFound):
            await cost_breakdown(db, scope_of(other, TenantRole.OWNER), customer.org_id, "2026-01")
