"""Node agents ship GPU samples with their own credential: a retried batch is stored once,
one bad sample refuses the whole batch, revoked or foreign credentials are refused, and
hourly rollups follow late samples and split a shared GPU between its holders."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Litestar
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.telemetry.models import GpuHour, GpuSample
from control_plane.telemetry.tasks import expire
from control_plane.tenancies.models import Tenancy
from tests.fixtures.capacity import make_fleet, make_shape
from tests.fixtures.factories import Tenant
from tests.integration.telemetry.conftest import (
    BATCHES,
    Client,
    hour_start,
    minutes,
    must,
    roll_up,
    sample,
)


async def stored(db: AsyncSession) -> int:
    return int((await db.execute(select(func.count()).select_from(GpuSample))).scalar_one())


class TestBatches:
    async def test_a_retried_batch_is_stored_once(
        self, client: Client, agent: dict[str, str], gpus: list[dict[str, Any]],
        clock: OffsetClock, db: AsyncSession,
    ) -> None:  # fmt: skip
        start = hour_start(clock.now()) - timedelta(hours=2)
        batch = {"batch_id": "b-1", "samples": minutes(gpus[0], start, [10, 20, 30])}

        first = await must(client.post(BATCHES, json=batch, headers=agent))
        again = await must(client.post(BATCHES, json=batch, headers=agent))
        overlap = {"batch_id": "b-2", "samples": minutes(gpus[0], start, [10, 20, 30, 40])}
        third = await must(client.post(BATCHES, json=overlap, headers=agent))

        assert first == {"accepted": 3, "duplicates": 0, "batch_duplicate": False}
        assert again == {"accepted": 0, "duplicates": 0, "batch_duplicate": True}
        assert third == {"accepted": 1, "duplicates": 3, "batch_duplicate": False}
        assert await stored(db) == 4

    async def test_one_bad_sample_refuses_the_batch_naming_each_field(
        self, client: Client, agent: dict[str, str], gpus: list[dict[str, Any]],
        clock: OffsetClock, db: AsyncSession,
    ) -> None:  # fmt: skip
        now = clock.now()
        good = sample(gpus[0], now - timedelta(minutes=5))
        stranger = {**sample(gpus[1], now - timedelta(minutes=5)), "gpu_uuid": "GPU-not-here"}
        future = sample(gpus[1], now + timedelta(hours=1))
        ancient = sample(gpus[2], now - timedelta(days=5))
        overfull = sample(gpus[3], now - timedelta(minutes=5), mem=90000)
        batch = {"batch_id": "bad", "samples": [good, stranger, future, ancient, overfull]}

        response = await client.post(BATCHES, json=batch, headers=agent)

        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        reasons = {e["field"]: e["reason"] for e in response.json()["errors"]}
        assert reasons["body.samples[1].gpu_uuid"].startswith("not a GPU of node")
        assert reasons["body.samples[2].at"].startswith("in the future")
        assert reasons["body.samples[3].at"] == "older than 72 hours"
        assert reasons["body.samples[4].mem_used_mib"] == "above mem_total_mib"
        assert await stored(db) == 0  # not even the good one
        fixed = {"batch_id": "bad", "samples": [good]}  # the same id, corrected, is accepted
        assert (await must(client.post(BATCHES, json=fixed, headers=agent)))["accepted"] == 1

    async def test_malformed_bodies_get_a_problem_not_a_crash(
        self, client: Client, agent: dict[str, str], gpus: list[dict[str, Any]],
        clock: OffsetClock,
    ) -> None:  # fmt: skip
        bad_pct = sample(gpus[0], clock.now(), util=140)
        for body in ({"samples": []}, {"batch_id": "x", "samples": [bad_pct]}, [1, 2],
                     {"batch_id": "x", "samples": [], "extra": 1}):  # fmt: skip
            response = await client.post(BATCHES, json=body, headers=agent)
            assert response.status_code == 400, response.text
            assert response.json()["errors"], response.text


class TestCredentials:
    async def test_without_or_with_a_wrong_credential_nothing_is_accepted(
        self, client: Client, agent: dict[str, str], gpus: list[dict[str, Any]],
        clock: OffsetClock, operator: dict[str, str], member: dict[str, str],
    ) -> None:  # fmt: skip
        batch = {"batch_id": "c-1", "samples": [sample(gpus[0], clock.now())]}
        wrong = agent["authorization"][:-4] + "AAAA"
        for headers in ({}, {"authorization": wrong}, operator, member,
                        {"authorization": "Bearer cpn_short"}):  # fmt: skip
            response = await client.post(BATCHES, json=batch, headers=headers)
            assert response.status_code == 401, (headers, response.text)

    async def test_a_revoked_credential_stops_working_within_seconds(
        self, client: Client, agent: dict[str, str], gpus: list[dict[str, Any]],
        clock: OffsetClock, operator: dict[str, str], node: str,
    ) -> None:  # fmt: skip
        url = f"/api/v1/nodes/{node}/agent-credentials"
        assert (
            await client.post(
                BATCHES,
                headers=agent,
                json={"batch_id": "r-1", "samples": [sample(gpus[0], clock.now())]},
            )
        ).status_code == 200
        [credential] = await must(client.get(url, headers=operator))
        assert credential["last_used_at"] is not None
        await must(client.delete(f"{url}/{credential['id']}", headers=operator))
        clock.advance(6)  # past the authenticator's cache

        response = await client.post(BATCHES, headers=agent, json={
            "batch_id": "r-2", "samples": [sample(gpus[0], clock.now())]})  # fmt: skip

        assert response.status_code == 401
        assert agent["authorization"].split()[1] not in response.text

    async def test_a_node_cannot_report_for_another_nodes_gpus(
        self, client: Client, agent: dict[str, str], db: AsyncSession, clock: OffsetClock,
        operator: dict[str, str],
    ) -> None:  # fmt: skip
        [other] = await make_fleet(db, clock, nodes=1, gpus_per_node=2, prefix="tel-other")
        await db.commit()
        theirs = (await must(client.get(f"/api/v1/nodes/{other}", headers=operator)))["gpus"][0]

        response = await client.post(BATCHES, headers=agent, json={
            "batch_id": "x-1", "samples": [sample(theirs, clock.now())]})  # fmt: skip

        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.samples[0].gpu_uuid"

    async def test_tenants_cannot_issue_credentials(
        self, client: Client, member: dict[str, str], node: str
    ) -> None:
        response = await client.post(f"/api/v1/nodes/{node}/agent-credentials", headers=member)
        assert response.status_code == 403


class TestRollups:
    async def test_an_hour_rolls_up_to_mean_p95_max_and_energy(
        self, app: Litestar, client: Client, agent: dict[str, str], gpus: list[dict[str, Any]],
        clock: OffsetClock, db: AsyncSession,
    ) -> None:  # fmt: skip
        start = hour_start(clock.now()) - timedelta(hours=3)
        utils = [10] * 50 + [90] * 10  # 60 samples, one a minute
        samples = minutes(gpus[0], start, utils, power=360.0)
        await must(
            client.post(BATCHES, headers=agent, json={"batch_id": "h-1", "samples": samples})
        )

        assert await roll_up(app) == 1
        [row] = (await db.execute(select(GpuHour))).scalars().all()

        assert row.hour == start
        assert row.samples == 60
        assert row.tenancy_id == ""
        assert row.util_mean == round((10 * 50 + 90 * 10) / 60, 2)
        assert (row.util_p95, row.util_max) == (90.0, 90.0)
        assert row.energy_wh == 360.0  # 360 W for a whole hour
        assert row.local_hour == start.astimezone(ZoneInfo("America/Toronto")).hour

    async def test_a_late_sample_reopens_its_hour(
        self, app: Litestar, client: Client, agent: dict[str, str], gpus: list[dict[str, Any]],
        clock: OffsetClock, db: AsyncSession,
    ) -> None:  # fmt: skip
        start = hour_start(clock.now()) - timedelta(hours=5)
        await must(client.post(BATCHES, headers=agent, json={
            "batch_id": "l-1", "samples": minutes(gpus[0], start, [20] * 30)}))  # fmt: skip
        await roll_up(app)
        late = minutes(gpus[0], start + timedelta(minutes=30), [80] * 30)
        await must(client.post(BATCHES, headers=agent, json={"batch_id": "l-2", "samples": late}))

        assert await roll_up(app) == 1
        [row] = (await db.execute(select(GpuHour))).scalars().all()
        assert (row.samples, row.util_mean, row.util_max) == (60, 50.0, 80.0)
        assert await roll_up(app) == 0  # nothing left dirty

    async def test_a_shared_gpu_splits_its_energy_between_holders(
        self, app: Litestar, client: Client, agent: dict[str, str], gpus: list[dict[str, Any]],
        clock: OffsetClock, db: AsyncSession, customer: Tenant, member: dict[str, str],
    ) -> None:  # fmt: skip
        await make_shape(db, clock, region="ca-qc-1", name="half-h100", model="h100",
                         gpus_per_node=1, gpu_milli=500, price="2.00")  # fmt: skip
        await db.commit()
        url = f"/api/v1/orgs/{customer.org_id}/tenancies"
        body = {"kind": "slurm", "region": "ca-qc-1", "shape": "half-h100"}
        made = [await must(client.post(url, json={**body, "name": f"half-{i}"}, headers=member),
                           201) for i in range(2)]  # fmt: skip
        [(gpu_index,)] = {tuple(t["allocations"][0]["gpu_indices"]) for t in made}
        gpu = gpus[gpu_index]
        start = hour_start(clock.now())
        if clock.now() - start < timedelta(minutes=2):
            clock.advance(120)
        now = clock.now()
        batch = [sample(gpu, now - timedelta(seconds=60 * i), power=400.0) for i in range(2)]
        await must(client.post(BATCHES, headers=agent, json={"batch_id": "s-1", "samples": batch}))

        await roll_up(app)
        rows = (await db.execute(select(GpuHour).where(GpuHour.gpu_id == gpu["id"]))).scalars()
        by_holder = {r.tenancy_id: r for r in rows}

        assert set(by_holder) >= {t["id"] for t in made}
        shares = [by_holder[t["id"]] for t in made]
        assert all(r.share_milli == 500 and r.org_id == customer.org_id for r in shares)
        # The hour's energy (400 W over the two minutes sampled) is split, none lost: each
        # half holder its share of the part of the hour since it was placed, the rest unheld.
        total = sum(r.energy_wh for r in by_holder.values())
        assert abs(total - 400 * 120 / 3600) < 0.01
        assert shares[0].energy_wh > 0
        assert abs(shares[0].energy_wh - shares[1].energy_wh) < 0.01
        assert "" in by_holder
        assert by_holder[""].share_milli == 0


class TestRetention:
    async def test_raw_samples_age_out_but_rollups_stay(
        self, app: Litestar, client: Client, agent: dict[str, str], gpus: list[dict[str, Any]],
        clock: OffsetClock, db: AsyncSession,
    ) -> None:  # fmt: skip
        start = hour_start(clock.now()) - timedelta(hours=2)
        await must(client.post(BATCHES, headers=agent, json={
            "batch_id": "e-1", "samples": minutes(gpus[0], start, [30] * 10)}))  # fmt: skip
        await roll_up(app)

        settings = app.state.settings
        samples, hours = await expire(db, settings, clock.now() + timedelta(days=8))
        await db.commit()

        assert (samples, hours) == (10, 0)
        assert await stored(db) == 0
        assert len((await db.execute(select(GpuHour))).scalars().all()) == 1


class TestReads:
    async def test_an_endpoints_replica_gpus_read_as_the_endpoints(
        self, app: Litestar, client: Client, agent: dict[str, str], gpus: list[dict[str, Any]],
        clock: OffsetClock, db: AsyncSession, customer: Tenant, member: dict[str, str],
    ) -> None:  # fmt: skip
        url = f"/api/v1/orgs/{customer.org_id}"
        body = {"name": "replica-1", "kind": "slurm", "region": "ca-qc-1", "gpu_model": "h100",
                "gpus_per_node": 1}  # fmt: skip
        made = await must(client.post(f"{url}/tenancies", json=body, headers=member), 201)
        await db.execute(update(Tenancy).where(Tenancy.id == made["id"])
                         .values(managed_by="endpoint:ep_chat"))  # fmt: skip
        await db.commit()
        [index] = made["allocations"][0]["gpu_indices"]
        clock.advance(3 * 3600)
        start = hour_start(clock.now()) - timedelta(hours=2)
        samples = minutes(gpus[index], start, [40] * 30)
        await must(client.post(BATCHES, headers=agent, json={"batch_id": "ep", "samples": samples}))
        await roll_up(app)

        mine = await must(client.get(f"{url}/utilization", headers=member,
                                     params={"endpoint": "ep_chat"}))  # fmt: skip
        other = await must(client.get(f"{url}/utilization", headers=member,
                                      params={"endpoint": "ep_other"}))  # fmt: skip

        [series] = mine["gpus"]
        assert (series["gpu_id"], series["tenancy_id"]) == (gpus[index]["id"], made["id"])
        assert series["points"][0][1] == 40.0
        assert other["gpus"] == []
