"""A Kubernetes tenancy from request to release through the API, the reconciler and the
real ``kubernetes`` driver, against the fake API server that checks every request (no API
server can run here): namespace with a GPU quota, the first kubeconfig kept encrypted and
shown once, rotation invalidating it, a Jupyter workspace, GPU-seconds, and release waiting
for the namespace to go."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.metering.models import UsageEvent
from control_plane.settings import Settings
from control_plane.sovereignty.keys import service as secrets
from control_plane.sovereignty.keys.models import SecretKind
from control_plane.tenancies.drivers.registry import Drivers
from control_plane.tenancies.reconciler import Reconciler
from control_plane.tenancies.wiring import secret_revealer
from tests.fixtures.capacity import make_fleet
from tests.fixtures.factories import Tenant
from tests.fixtures.peers.fake_apiserver import ADMIN_TOKEN, FakeApiServer
from tests.integration.tenancies.conftest import Client, create, tenancies_url, used_milli

TOKEN_SECRET = "k8s/ca-qc-1"


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    fake = FakeApiServer()
    fake.start()
    try:
        yield fake
        assert fake.violations == [], fake.violations
    finally:
        fake.stop()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, apiserver: FakeApiServer) -> Settings:
    cluster = {"server": apiserver.url, "token_secret": TOKEN_SECRET, "version": "1.31",
               "gpu_products": {"h100": "NVIDIA-H100-80GB-HBM3"}}  # fmt: skip
    return Settings(
        database_url=database_url, key_dir=tmp_path / "keys", sim_dir=tmp_path / "sim",
        model_store_root=tmp_path / "models", triton_dir=tmp_path / "triton",
        reconciler_enabled=False, autoscale_enabled=False, environment="test",
        cookie_secure=False, login_rate_per_minute=1000,
        drivers={"ca-qc-1/kubernetes": "kubernetes"}, kubernetes_clusters={"ca-qc-1": cluster},
        kubernetes_request_timeout_seconds=5,
    )  # fmt: skip


@pytest.fixture
async def cluster_token(db: AsyncSession, settings: Settings, clock: OffsetClock) -> None:
    """The control plane's own credential for the cluster, a provider secret."""
    await secrets.put(
        db, org_id=None, name=TOKEN_SECRET, kind=SecretKind.OTHER, value=ADMIN_TOKEN.encode(),
        actor=secrets.Actor.system("test"), clock=clock, settings=settings,
    )  # fmt: skip
    await db.commit()


@pytest.fixture
async def reconciler(
    app: Litestar, clock: OffsetClock, settings: Settings
) -> AsyncIterator[Reconciler]:
    """Drivers of its own whose secret reveals use this test's event loop."""
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)

    async def pause(seconds: float) -> None:
        clock.advance(seconds + 0.001)

    try:
        yield Reconciler(
            sessionmaker=sessions, drivers=Drivers(settings, secret_revealer(sessions, clock,
            settings)), clock=clock, settings=settings, pause=pause,
        )  # fmt: skip
    finally:
        await engine.dispose()


@pytest.fixture
async def gpu_fleet(db: AsyncSession, clock: OffsetClock) -> list[str]:
    nodes = await make_fleet(db, clock, nodes=1, gpus_per_node=8, prefix="qc-k8s")
    await db.commit()
    return nodes


class TestKubernetesEndToEnd:
    async def test_request_to_release_on_the_cluster(
        self, client: Client, org: Tenant, auth: dict[str, str], gpu_fleet: list[str],
        cluster_token: None, reconciler: Reconciler, apiserver: FakeApiServer,
        clock: OffsetClock, db: AsyncSession,
    ) -> None:  # fmt: skip
        response = await create(client, org, auth, name="nb-1", kind="kubernetes",
                                gpus_per_node=2,
                                workspace={"preset": "jupyter", "idle_minutes": 30})  # fmt: skip
        assert response.status_code == 201, response.text
        tenancy = response.json()
        assert (tenancy["driver"], tenancy["simulated"]) == ("kubernetes", False)
        await reconciler.converge()
        url = f"{tenancies_url(org)}/{tenancy['id']}"
        body = (await client.get(url, headers=auth)).json()
        assert body["state"] == "active", body

        assert len(apiserver.namespaces) == 1
        ns = next(iter(apiserver.namespaces))
        quota = apiserver.object("resourcequotas", ns, "gpus")
        assert quota is not None
        assert str(quota["spec"]["hard"]["requests.nvidia.com/gpu"]) == "2"
        assert apiserver.object("pods", ns, "workspace") is not None

        status = (await client.get(f"{url}/credential", headers=auth)).json()
        assert status["shown"] is False
        first = await client.post(f"{url}/credential/reveal", headers=auth)
        assert first.status_code == 200, first.text
        config = yaml.safe_load(first.json()["value"])
        old_token = config["users"][0]["user"]["token"]
        assert config["contexts"][0]["context"]["namespace"] == ns
        assert apiserver.token_works(old_token)
        assert (await client.post(f"{url}/credential/reveal", headers=auth)).status_code == 409

        rotated = await client.post(f"{url}/credential/rotate", headers=auth)
        assert rotated.status_code == 200, rotated.text
        assert not apiserver.token_works(old_token)
        second = await client.post(f"{url}/credential/reveal", headers=auth)
        new_token = yaml.safe_load(second.json()["value"])["users"][0]["user"]["token"]
        assert apiserver.token_works(new_token)

        clock.advance(3600)
        await reconciler.converge()
        release = await client.post(f"{url}/release", headers=auth)
        assert release.status_code == 200, release.text
        await reconciler.converge()
        assert (await client.get(url, headers=auth)).json()["state"] == "released"
        assert apiserver.namespaces == {}  # the release waited for it to go
        assert await used_milli(db) == 0
        await db.rollback()
        rows = await db.execute(select(UsageEvent.value, UsageEvent.dimensions))
        seconds = sum((v for v, d in rows if d["tenancy"] == tenancy["id"]), Decimal(0))
        assert seconds >= Decimal(2 * 3600) - 10
