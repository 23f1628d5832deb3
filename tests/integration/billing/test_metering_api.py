"""Trusted sources send usage in batches: retries are counted as duplicates, a bad event
refuses the whole batch with each field named, late and future windows are refused,
corrections are amendments, and usage is queryable by any dimension at once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from control_plane.clock import OffsetClock
from control_plane.identity.roles import TenantRole
from tests.fixtures.factories import Tenant, signed_in
from tests.integration.billing.conftest import Client, day_hour, must

EVENTS = "/api/v1/metering/events"


def event(org: Tenant, at: Any, event_id: str, value: str = "3600", **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "source": "partner-slurm",
        "org_id": org.org_id,
        "type": "gpu_seconds",
        "value": value,
        "window_start": at.isoformat(),
        "window_end": (at + timedelta(hours=1)).isoformat(),
        "dimensions": {"region": "ca-qc-1", "gpu_model": "h100", "tenancy": "ten_x"},
        **extra,
    }


class TestIngest:
    async def test_a_retried_batch_is_stored_once_and_the_duplicates_reported(
        self, client: Client, clock: OffsetClock, customer: Tenant, operator: dict[str, str]
    ) -> None:
        at = day_hour(clock)
        batch = {"events": [event(customer, at, "e1"), event(customer, at, "e2", "1800")]}

        first = await must(client.post(EVENTS, json=batch, headers=operator))
        again = await must(client.post(EVENTS, json=batch, headers=operator))
        sources = await must(client.get("/api/v1/metering/sources", headers=operator))

        assert first == {"accepted": 2, "duplicates": 0, "amendments": 0}
        assert again == {"accepted": 0, "duplicates": 2, "amendments": 0}
        [partner] = [s for s in sources if s["source"] == "partner-slurm"]
        assert (partner["accepted"], partner["duplicates"]) == (2, 2)

    async def test_one_bad_event_refuses_the_batch_and_names_each_field(
        self,
        client: Client,
        clock: OffsetClock,
        customer: Tenant,
        operator: dict[str, str],
        owner: dict[str, str],
    ) -> None:
        at = day_hour(clock)
        too_old = clock.now() - timedelta(hours=80)
        batch = {
            "events": [
                event(customer, at, "ok"),
                event(customer, at, "neg", "-5"),
                event(customer, too_old, "old"),
                event(customer, clock.now() + timedelta(hours=2), "future"),
                {**event(customer, at, "who"), "org_id": "org_nobody"},
            ]
        }

        response = await client.post(EVENTS, json=batch, headers=operator)
        usage = await must(client.get(f"/api/v1/orgs/{customer.org_id}/usage", headers=owner))

        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")
        reasons = {e["field"]: e["reason"] for e in response.json()["errors"]}
        assert reasons["body.events[1].value"] == "must not be negative"
        assert reasons["body.events[2].window_start"].startswith("too late")
        assert reasons["body.events[3].window_start"] == "the window ends in the future"
        assert reasons["body.events[4].org_id"] == "no such organization"
        assert usage["rows"] == []  # not even the good event

    async def test_a_correction_is_an_amendment_and_the_original_stays(
        self,
        client: Client,
        clock: OffsetClock,
        customer: Tenant,
        operator: dict[str, str],
        owner: dict[str, str],
    ) -> None:
        at = day_hour(clock)
        await must(
            client.post(EVENTS, json={"events": [event(customer, at, "e1")]}, headers=operator)
        )
        fix = {
            "id": "e1-fix",
            "source": "partner-slurm",
            "org_id": customer.org_id,
            "value": "-600",
            "window_start": at.isoformat(),
            "window_end": (at + timedelta(hours=1)).isoformat(),
            "amends": {"source": "partner-slurm", "id": "e1"},
        }
        too_far = {**fix, "id": "e1-fix2", "value": "-3001"}

        amended = await must(client.post(EVENTS, json={"events": [fix]}, headers=operator))
        refused = await client.post(EVENTS, json={"events": [too_far]}, headers=operator)
        usage = await must(
            client.get(
                f"/api/v1/orgs/{customer.org_id}/usage",
                headers=owner,
                params={"granularity": "hour"},
            )
        )

        assert amended == {"accepted": 1, "duplicates": 0, "amendments": 1}
        assert refused.status_code == 400
        assert "below zero" in refused.json()["errors"][0]["reason"]
        [row] = usage["rows"]
        assert Decimal(row["value"]) == 3000

    async def test_only_trusted_operators_may_ingest(
        self, client: Client, clock: OffsetClock, customer: Tenant, owner: dict[str, str]
    ) -> None:
        batch = {"events": [event(customer, day_hour(clock), "e1")]}

        response = await client.post(EVENTS, json=batch, headers=owner)

        assert response.status_code == 403


class TestUsageQuery:
    async def test_usage_is_grouped_by_any_dimension_and_seen_only_by_its_organization(
        self,
        client: Client,
        clock: OffsetClock,
        customer: Tenant,
        other: Tenant,
        operator: dict[str, str],
        owner: dict[str, str],
    ) -> None:
        at = day_hour(clock)
        l40s = {"region": "ca-qc-1", "gpu_model": "l40s", "tenancy": "ten_y"}
        await must(
            client.post(
                EVENTS,
                headers=operator,
                json={
                    "events": [
                        event(customer, at, "a"),
                        event(customer, at + timedelta(hours=1), "b", "1800"),
                        {**event(customer, at, "c", "900"), "dimensions": l40s},
                    ]
                },
            )
        )
        intruder = await signed_in(client, other.accounts[TenantRole.OWNER])

        by_model = await must(
            client.get(
                f"/api/v1/orgs/{customer.org_id}/usage",
                headers=owner,
                params={"group_by": "gpu_model"},
            )
        )
        only_l40s = await must(
            client.get(
                f"/api/v1/orgs/{customer.org_id}/usage", headers=owner, params={"gpu_model": "l40s"}
            )
        )
        unknown = await client.get(
            f"/api/v1/orgs/{customer.org_id}/usage", headers=owner, params={"group_by": "colour"}
        )
        theirs = await client.get(f"/api/v1/orgs/{customer.org_id}/usage", headers=intruder)

        totals = {r["group"]["gpu_model"]: Decimal(r["value"]) for r in by_model["rows"]}
        assert totals == {"h100": 5400, "l40s": 900}
        assert [Decimal(r["value"]) for r in only_l40s["rows"]] == [900]
        assert unknown.status_code == 400
        assert unknown.json()["errors"][0]["field"] == "query.group_by"
        assert theirs.status_code == 404
