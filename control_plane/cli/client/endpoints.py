"""``cpctl endpoints``: deploy models as inference endpoints, follow them until they
serve, add canary versions, split traffic, scale, approve versions, delete.

Calling a model is not a cpctl command: point any OpenAI client at the endpoint's ``url``
(shown by ``get``) with an API key, or tritonclient at the control plane for KServe V2.
"""

from __future__ import annotations

import click

from control_plane.cli.client.base import (
    Invocation,
    api_command,
    columns,
    emit_list,
    emit_one,
    limit_option,
    org_id_of,
)
from control_plane.endpoints.schemas import Backend, EndpointRead
from control_plane.sdk.endpoints import EndpointWaitError

ENDPOINT_FIELDS = (
    "id",
    "name",
    "region",
    "state",
    "backend",
    "gpu_model",
    "gpus_per_replica",
    "gpu_milli",
    "min_replicas",
    "max_replicas",
    "desired_replicas",
    "ready_replicas",
    "target_tokens_per_s",
    "scale_to_zero_after_s",
    "url",
    "created_by",
    "created_at",
)
org_option = click.option("--org", "org", metavar="ORG", help="Id or slug (default: current).")


@click.group("endpoints")
def endpoints_group() -> None:
    """Inference endpoints of an organization (models served by Triton, metered per token)."""


def show_endpoint(inv: Invocation, endpoint: EndpointRead) -> None:
    emit_one(inv, endpoint, ENDPOINT_FIELDS)
    if not inv.json:
        for v in endpoint.versions:
            click.echo(
                f"version {v.number}: {v.traffic_percent}% {v.approval} "
                f"sha256 {v.weights_sha256[:12]} {v.model_uri}"
            )


@api_command(endpoints_group, "create")
@click.argument("name")
@click.option("--region", required=True, help="Region code the replicas run in.")
@click.option("--model-uri", required=True, help="file:///... in the region's model store.")
@click.option("--gpu-model", required=True, help="GPU model of the replicas (e.g. l40s).")
@click.option("--gpus", type=click.IntRange(1, 8), help="Whole GPUs per replica.")
@click.option("--gpu-milli", type=click.IntRange(1, 1000), help="Or a share of one GPU (1/1000).")
@click.option("--backend", type=click.Choice([b.value for b in Backend]))
@click.option("--min-replicas", type=click.IntRange(0, 16))
@click.option("--max-replicas", type=click.IntRange(0, 16))
@click.option(
    "--scale-to-zero-after",
    "scale_to_zero_after_s",
    type=click.IntRange(30),
    help="Seconds without requests before scaling to zero (with --min-replicas 0).",
)
@click.option("--wait", "wait_", is_flag=True, help="Wait until it serves.")
@org_option
def endpoints_create(
    inv: Invocation,
    name: str,
    region: str,
    model_uri: str,
    gpu_model: str,
    gpus: int | None,
    gpu_milli: int | None,
    backend: str | None,
    min_replicas: int | None,
    max_replicas: int | None,
    scale_to_zero_after_s: int | None,
    wait_: bool,
    org: str | None,
) -> None:
    """Deploy the model at --model-uri as endpoint NAME."""
    with inv.client() as client:
        org_id = org_id_of(client, org)
        endpoint = client.endpoints.create(
            name,
            region,
            model_uri,
            gpu_model=gpu_model,
            gpus=gpus,
            gpu_milli=gpu_milli,
            backend=backend,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            scale_to_zero_after_s=scale_to_zero_after_s,
            org_id=org_id,
        )
        if wait_:
            try:
                endpoint = client.endpoints.wait(endpoint.id, "ready", org_id=org_id)
            except EndpointWaitError as exc:
                raise click.ClickException(str(exc)) from exc
    show_endpoint(inv, endpoint)


@api_command(endpoints_group, "list")
@limit_option
@org_option
def endpoints_list(inv: Invocation, limit: int | None, org: str | None) -> None:
    """Endpoints, newest first."""
    with inv.client() as client:
        items = client.endpoints.list(org_id=org_id_of(client, org)).to_list(limit)
    emit_list(
        inv,
        items,
        columns(
            "name", "region", "state", "gpu_model", "desired_replicas", "ready_replicas", "url"
        ),
    )


@api_command(endpoints_group, "get")
@click.argument("ref")
@org_option
def endpoints_get(inv: Invocation, ref: str, org: str | None) -> None:
    """Show endpoint REF (id or name): state, replicas, versions, URL."""
    with inv.client() as client:
        show_endpoint(inv, client.endpoints.get(ref, org_id=org_id_of(client, org)))


@api_command(endpoints_group, "events")
@click.argument("ref")
@limit_option
@org_option
def endpoints_events(inv: Invocation, ref: str, limit: int | None, org: str | None) -> None:
    """The timeline of endpoint REF, oldest first."""
    with inv.client() as client:
        events = client.endpoints.events(ref, org_id=org_id_of(client, org)).to_list(limit)
    emit_list(inv, events, columns("at", "kind", "detail", "actor"))


@api_command(endpoints_group, "scale")
@click.argument("ref")
@click.option("--min", "min_replicas", type=click.IntRange(0, 16), required=True)
@click.option("--max", "max_replicas", type=click.IntRange(0, 16), required=True)
@click.option("--replicas", type=click.IntRange(0, 16), help="Pin the current count.")
@org_option
def endpoints_scale(
    inv: Invocation,
    ref: str,
    min_replicas: int,
    max_replicas: int,
    replicas: int | None,
    org: str | None,
) -> None:
    """Set the replica range of REF (the autoscaler moves within it)."""
    with inv.client() as client:
        show_endpoint(
            inv,
            client.endpoints.scale(
                ref, min_replicas, max_replicas, replicas, org_id=org_id_of(client, org)
            ),
        )


@api_command(endpoints_group, "add-version")
@click.argument("ref")
@click.option("--model-uri", required=True)
@click.option(
    "--traffic",
    "traffic_percent",
    type=click.IntRange(0, 100),
    default=0,
    show_default=True,
    help="Share of requests for the new version (a canary).",
)
@org_option
def endpoints_add_version(
    inv: Invocation, ref: str, model_uri: str, traffic_percent: int, org: str | None
) -> None:
    """Add a model version to REF."""
    with inv.client() as client:
        show_endpoint(
            inv,
            client.endpoints.add_version(
                ref, model_uri, traffic_percent, org_id=org_id_of(client, org)
            ),
        )


@api_command(endpoints_group, "split")
@click.argument("ref")
@click.argument("shares", nargs=-1, required=True, metavar="VERSION=PERCENT...")
@org_option
def endpoints_split(inv: Invocation, ref: str, shares: tuple[str, ...], org: str | None) -> None:
    """Split REF's traffic, e.g. ``1=90 2=10`` (a version at 0 retires)."""
    try:
        percent = {int(k): int(v) for k, v in (s.split("=", 1) for s in shares)}
    except ValueError as exc:
        raise click.BadParameter("use VERSION=PERCENT, e.g. 1=90 2=10") from exc
    with inv.client() as client:
        show_endpoint(inv, client.endpoints.split(ref, percent, org_id=org_id_of(client, org)))


@api_command(endpoints_group, "approve")
@click.argument("ref")
@click.argument("version", type=click.IntRange(1))
@click.option("--reject", is_flag=True, help="Reject instead of approving.")
@click.option("--note", default="", help="Why (kept in the ledger).")
@org_option
def endpoints_approve(
    inv: Invocation, ref: str, version: int, reject: bool, note: str, org: str | None
) -> None:
    """Approve (or --reject) VERSION of REF for production traffic (validators)."""
    with inv.client() as client:
        decision = "reject" if reject else "approve"
        show_endpoint(
            inv,
            client.endpoints.decide(ref, version, decision, note, org_id=org_id_of(client, org)),
        )


@api_command(endpoints_group, "delete")
@click.argument("ref")
@org_option
def endpoints_delete(inv: Invocation, ref: str, org: str | None) -> None:
    """Delete REF; its replicas are released."""
    with inv.client() as client:
        show_endpoint(inv, client.endpoints.delete(ref, org_id=org_id_of(client, org)))
