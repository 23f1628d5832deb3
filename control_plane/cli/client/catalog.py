"""``cpctl`` catalog commands: regions and GPU models."""

from __future__ import annotations

import click

from control_plane.cli.client.base import Invocation, api_command, columns, emit_list, emit_one

REGION_FIELDS = (
    "code",
    "name",
    "jurisdiction",
    "sovereignty_group",
    "currency",
    "pue",
    "grid_intensity_g_per_kwh",
)


@click.group("regions")
def regions_group() -> None:
    """Regions, their jurisdiction and sites."""


@api_command(regions_group, "list")
def regions_list(inv: Invocation) -> None:
    """Regions with their jurisdiction, sovereignty group and sites."""
    with inv.client() as client:
        regions = client.regions.list().to_list()
    cols = columns("code", "name", "jurisdiction", "sovereignty_group", "currency")
    cols.append(("SITES", lambda r: [s.code for s in r.sites]))
    emit_list(inv, regions, cols)


@api_command(regions_group, "get")
@click.argument("code")
def regions_get(inv: Invocation, code: str) -> None:
    """Show region CODE and its sites."""
    with inv.client() as client:
        region = client.regions.get(code)
    emit_one(inv, region, REGION_FIELDS)
    if not inv.json:
        width = max(map(len, REGION_FIELDS))
        for site in region.sites:
            click.echo(f"{'site':<{width}}  {site.code}: {site.name} ({site.city})")


@click.group("gpu-models")
def gpu_models_group() -> None:
    """The GPU catalog."""


@api_command(gpu_models_group, "list")
def gpu_models_list(inv: Invocation) -> None:
    """The GPU catalog."""
    with inv.client() as client:
        models = client.gpu_models.list().to_list()
    cols = columns("code", "name", "memory_gib", "tdp_watts", "interconnect", "mig_profiles")
    emit_list(inv, models, cols)
