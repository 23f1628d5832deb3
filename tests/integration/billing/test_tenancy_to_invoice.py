"""End to end: a tenancy runs on the simulator for a few hours and the gateway meters an
endpoint's tokens; the invoice run turns both into lines the customer reads and
downloads."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.clock import OffsetClock
from control_plane.endpoints.gateway.usage import UsageKey, UsageMeter
from control_plane.identity.roles import TenantRole
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.factories import Tenant, signed_in
from tests.integration.billing.conftest import RUNS, Client, hour_start, must
from tests.integration.tenancies.conftest import create, fleet, org, reconciler

# The tenancy suites' fixtures, re-exported so pytest finds them here.
__all__ = ["fleet", "org", "reconciler"]


async def test_gpu_hours_of_a_tenancy_become_invoice_lines(
    client: Client,
    db: AsyncSession,
    clock: OffsetClock,
    org: Tenant,
    fleet: list[str],
    reconciler: Reconciler,
    operator: dict[str, str],
    book: dict[str, Any],
) -> None:
    auth = await signed_in(client, org.accounts[TenantRole.OWNER])  # runs it and pays for it
    tenancy = (await create(client, org, auth, gpus_per_node=2)).json()
    await reconciler.converge()
    detail = (
        await client.get(f"/api/v1/orgs/{org.org_id}/tenancies/{tenancy['id']}", headers=auth)
    ).json()
    activated = datetime.fromisoformat(detail["activated_at"])
    clock.advance(3 * 3600)
    await reconciler.converge()
    await client.post(f"/api/v1/orgs/{org.org_id}/tenancies/{tenancy['id']}/release", headers=auth)
    released = clock.now()
    await reconciler.converge()

    start, end = hour_start(activated), hour_start(released) + timedelta(hours=1)
    run = await must(
        client.post(
            RUNS,
            headers=operator,
            json={"start": start.isoformat(), "end": end.isoformat(), "org_ids": [org.org_id]},
        )
    )
    [invoice] = await must(client.get(f"/api/v1/orgs/{org.org_id}/invoices", headers=auth))
    url = f"/api/v1/orgs/{org.org_id}/invoices/{invoice['id']}"
    detail = await must(client.get(url, headers=auth))
    sheet = await client.get(f"{url}/document", params={"format": "csv"}, headers=auth)

    assert run["drafts"] == 1
    gpu_lines = [ln for ln in detail["lines"] if ln["kind"] == "gpu_seconds"]
    assert gpu_lines
    assert {ln["dimensions"]["gpu_model"] for ln in gpu_lines} == {"h100"}
    assert {ln["dimensions"]["tenancy_kind"] for ln in gpu_lines} == {"slurm"}
    billed_hours = sum(Decimal(ln["quantity"]) for ln in gpu_lines)
    held_hours = Decimal(2 * (released - activated).total_seconds()) / 3600
    assert abs(billed_hours - held_hours) < Decimal("0.01")  # 2 GPUs for ~3 hours
    for ln in gpu_lines:  # day hours at 4.00, night hours at 2.00 per GPU-hour
        assert Decimal(ln["unit_price"]) in (Decimal("4.00"), Decimal("2.00"))
    rows = list(csv.DictReader(io.StringIO(sheet.text)))
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal(detail["subtotal"])
    assert datetime.fromisoformat(detail["period_start"]).astimezone(UTC) == start


async def test_tokens_metered_by_the_gateway_become_invoice_lines(
    client: Client,
    db: AsyncSession,
    clock: OffsetClock,
    customer: Tenant,
    operator: dict[str, str],
    biller: dict[str, str],
    book: dict[str, Any],
) -> None:
    meter = UsageMeter(async_sessionmaker(db.bind), clock)
    window = meter.window_of(clock.now())
    key = UsageKey(
        customer.org_id, customer.project_id, "key_1", "ep_chat", "chat-v1", "ca-qc-1", window
    )
    for _ in range(4):  # four requests of 250,000 tokens in, 100,000 out
        meter.add(key, 250_000, 100_000)
    await meter.flush()

    await must(
        client.post(
            RUNS,
            headers=operator,
            json={
                "start": hour_start(window).isoformat(),
                "end": (hour_start(window) + timedelta(hours=1)).isoformat(),
            },
        )
    )
    [invoice] = await must(client.get(f"/api/v1/orgs/{customer.org_id}/invoices", headers=biller))
    detail = await must(
        client.get(f"/api/v1/orgs/{customer.org_id}/invoices/{invoice['id']}", headers=biller)
    )

    lines = {ln["kind"]: ln for ln in detail["lines"]}
    assert Decimal(lines["tokens_in"]["quantity"]) == 1  # one million tokens in
    assert Decimal(lines["tokens_in"]["amount"]) == Decimal("0.20")
    assert Decimal(lines["tokens_out"]["quantity"]) == Decimal("0.4")
    assert Decimal(lines["tokens_out"]["amount"]) == Decimal("0.24")
    assert lines["tokens_out"]["dimensions"]["model"] == "chat-v1"
