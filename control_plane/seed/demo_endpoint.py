"""The demo's inference endpoint: ``demo-chat`` in ca-qc-1 on a quarter of an L40S,
serving SmolLM2-135M-Instruct when ``make peers`` built llama-cpp-python and fetched the
model, else the small built-in model. The model is written into the region's model store;
the reconciler of ``make run`` then starts its Triton server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.endpoints import service
from control_plane.endpoints.modelrepo.layout import read_manifest
from control_plane.endpoints.modelrepo.smollm2 import (
    llama_cpp_available,
    smollm2_gguf,
    write_smollm2_model,
)
from control_plane.endpoints.modelrepo.tiny import write_tiny_model
from control_plane.endpoints.models import Endpoint, EndpointVersion
from control_plane.endpoints.schemas import Approval
from control_plane.identity.models import Organization
from control_plane.ids import new_id
from control_plane.settings import Settings
from control_plane.tenancies.drivers.registry import Drivers
from control_plane.tenancies.timeline import Actor

REGION = "ca-qc-1"
NAME = "demo-chat"
ACTOR = Actor.system("seed")


@dataclass(frozen=True)
class DemoEndpoint:
    created: bool
    model: str  # what it serves, in words
    id: str = ""


def _model(settings: Settings) -> tuple[Path, str]:
    store = settings.model_store_root / REGION
    gguf = smollm2_gguf()
    if gguf is not None and llama_cpp_available():
        return write_smollm2_model(store, gguf, "smollm2-135m-instruct"), (
            "SmolLM2-135M-Instruct (llama.cpp in Triton)"
        )
    return write_tiny_model(store, "tiny-chat"), (
        "the built-in tiny model (run `make peers` for SmolLM2-135M-Instruct)"
    )


async def seed_demo_endpoint(db: AsyncSession, clock: Clock, settings: Settings) -> DemoEndpoint:
    org_id = (
        await db.execute(select(Organization.id).where(Organization.slug == "demo"))
    ).scalar_one()
    existing = await db.execute(
        select(Endpoint.id).where(
            Endpoint.org_id == org_id, Endpoint.name == NAME, Endpoint.deleted_at.is_(None)
        )
    )
    found = existing.scalar_one_or_none()
    if found is not None:
        return DemoEndpoint(created=False, model="already deployed", id=found)
    model_dir, described = _model(settings)
    manifest = read_manifest(model_dir)
    now = clock.now()
    endpoint = Endpoint(
        id=new_id("ep"), org_id=org_id, project_id=None, name=NAME, region_code=REGION,
        backend="python", gpu_model_code="l40s", gpus_per_replica=1, gpu_milli=250,
        min_replicas=1, max_replicas=2, desired_replicas=1, target_tokens_per_s=40,
        target_queue_per_replica=4, scale_to_zero_after_s=None,
        created_by="seed",
        created_at=now, updated_at=now, deleted_at=None,
    )  # fmt: skip
    db.add(endpoint)
    await db.flush()
    uri = model_dir.resolve().as_uri()
    version = EndpointVersion(
        id=new_id("epv"), endpoint_id=endpoint.id, number=1, source_uri=uri,
        store_region=REGION, weights_sha256=manifest.weights_sha256, license=manifest.license,
        served_model=f"{NAME}-v1", approval=Approval.NOT_REQUIRED.value, decided_by=None,
        decided_at=None, decision_note=None, traffic_percent=100, io={}, created_by="seed",
        created_at=now, retired_at=None,
    )  # fmt: skip
    db.add(version)
    service.note(db, endpoint, "created", f"demo endpoint serving {described}", ACTOR, now)
    deps = service.Deps(clock=clock, settings=settings, drivers=Drivers(settings))
    await service.converge_now(db, endpoint, [version], ACTOR, deps)
    return DemoEndpoint(created=True, model=described, id=endpoint.id)
