"""``cpctl`` commands that drive the API through the SDK: profiles, sign-in, tenants, fleet.

Shared plumbing (invocation, errors, output) is in :mod:`.base`; each other module holds one
area's command groups. :func:`register` adds them all to the ``cpctl`` group.
"""

from __future__ import annotations

import functools
from typing import Any

import click

from control_plane.cli.client.access import access_group
from control_plane.cli.client.account import login, logout, profile_group, whoami
from control_plane.cli.client.audit import audit_group
from control_plane.cli.client.base import OUTPUTS
from control_plane.cli.client.billing import billing_group, usage_group
from control_plane.cli.client.catalog import gpu_models_group, regions_group
from control_plane.cli.client.endpoints import endpoints_group
from control_plane.cli.client.insights import insights_group
from control_plane.cli.client.machine_access import TENANCY_COMMANDS
from control_plane.cli.client.nodes import nodes_group
from control_plane.cli.client.policy import policy_group
from control_plane.cli.client.pools import pools_group
from control_plane.cli.client.secrets import keys_group, provider_secrets_group, secrets_group
from control_plane.cli.client.telemetry import fleet_group, utilization
from control_plane.cli.client.tenancies import quotas_group, shapes_group, tenancies_group
from control_plane.cli.client.tenants import (
    api_keys_group,
    members_group,
    orgs_group,
    projects_group,
)
from control_plane.cli.profiles import DEFAULT_PROFILE, PROFILE_ENV

GROUPS = (
    profile_group,
    orgs_group,
    members_group,
    projects_group,
    api_keys_group,
    regions_group,
    gpu_models_group,
    nodes_group,
    access_group,
    audit_group,
    policy_group,
    secrets_group,
    keys_group,
    provider_secrets_group,
    tenancies_group,
    shapes_group,
    quotas_group,
    pools_group,
    endpoints_group,
    usage_group,
    billing_group,
    insights_group,
    fleet_group,
)
TOP_LEVEL = (login, logout, whoami, utilization)


def register(cli: click.Group) -> None:
    """Add the client commands and the global --profile/--output options to ``cli``."""
    _add_global_options(cli)
    for command in TENANCY_COMMANDS:  # power, console, kubeconfig: defined on their own
        tenancies_group.add_command(command)
    for command in (*GROUPS, *TOP_LEVEL):
        cli.add_command(command)


def _add_global_options(cli: click.Group) -> None:
    cli.params.extend(
        [
            click.Option(
                ["--profile"],
                envvar=PROFILE_ENV,
                metavar="NAME",
                help=f"Profile for API commands (env {PROFILE_ENV}; default: current, "
                f"else {DEFAULT_PROFILE!r}).",
            ),
            click.Option(
                ["--output", "-o"], type=click.Choice(OUTPUTS), help="table (default) or json."
            ),
        ]
    )
    original = cli.callback

    @functools.wraps(original or (lambda: None))
    def callback(profile: str | None = None, output: str | None = None, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        ctx.meta["cpctl.profile"] = profile
        ctx.meta["cpctl.output"] = output
        return original(**kwargs) if original else None

    cli.callback = callback
