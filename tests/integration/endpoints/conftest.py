"""Shared fixtures of the endpoint suites: a model store per region, an organization with a
fleet, and which driver runs the replicas (the simulator unless a suite asks for Triton)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from control_plane.endpoints.triton.server import TritonServer
from control_plane.settings import Settings
from tests.conftest import need_peer
from tests.fixtures.factories import Tenant
from tests.fixtures.models import fake_model as write_fake_model
from tests.fixtures.peers.triton import (
    TINY,
    TINY_SLOW,
    start_triton,
    triton_unavailable,
    write_test_repository,
)

Client = AsyncTestClient[Litestar]
REGION = "ca-qc-1"

# The tenancy suites' organization, member login, fleet and reconciler fixtures.
from tests.integration.tenancies.conftest import auth, fleet, org, reconciler  # noqa: E402, F401


@pytest.fixture(scope="session")
def triton_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository with the tiny test models, and room for a server's work files."""
    need_peer(triton_unavailable())
    root = tmp_path_factory.mktemp("triton")
    write_test_repository(root / "models")
    return root


@pytest.fixture(scope="session")
def triton(triton_root: Path) -> Iterator[TritonServer]:
    """One real Triton for the suites that call it directly, with tiny-chat and tiny-slow."""
    with start_triton(
        triton_root / "models", triton_root / "work", explicit=True, load=[TINY, TINY_SLOW]
    ) as server:
        yield server


@pytest.fixture
def inference_driver() -> str:
    return "sim"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, inference_driver: str) -> Settings:
    return settings.model_copy(
        update={
            "model_store_root": tmp_path / "models",
            "triton_dir": tmp_path / "triton",
            "drivers": {f"{REGION}/inference": inference_driver},
        }
    )


def fake_model(settings: Settings, name: str, region: str = REGION) -> str:
    """A model the API accepts in ``region``'s store (see tests.fixtures.models)."""
    return write_fake_model(settings.model_store_root, region, name)


def endpoints_url(tenant: Tenant) -> str:
    return f"/api/v1/orgs/{tenant.org_id}/endpoints"


async def create_endpoint(
    client: Client, tenant: Tenant, headers: dict[str, str], **body: Any
) -> Any:
    payload = {"name": "chat", "region": REGION, "gpu_model": "h100", "gpu_milli": 250, **body}
    return await client.post(endpoints_url(tenant), json=payload, headers=headers)
