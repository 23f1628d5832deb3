"""``cpctl``: run and administer the control plane, and drive its API."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

import click

from control_plane.settings import Settings

if TYPE_CHECKING:
    from control_plane.seed.demo_endpoint import DemoEndpoint


@click.group()
@click.version_option(package_name="sovereign-control-plane")
def cli() -> None:
    """Sovereign GPU cloud control plane."""


@cli.group()
def db() -> None:
    """Database schema (Alembic)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations to CP_DATABASE_URL."""
    from control_plane.db.migrate import upgrade

    settings = Settings()
    upgrade(settings.database_url, revision)
    click.echo(f"schema at {revision} on {_safe_url(settings.database_url)}")


@db.command("downgrade")
@click.option("--revision", default="-1", show_default=True)
def db_downgrade(revision: str) -> None:
    """Revert migrations on CP_DATABASE_URL."""
    from control_plane.db.migrate import downgrade

    settings = Settings()
    downgrade(settings.database_url, revision)
    click.echo(f"schema at {revision}")


@cli.group()
def seed() -> None:
    """Sample data."""


@seed.command("demo")
def seed_demo_command() -> None:
    """Add the demo organization, logins, regions and fleet (idempotent)."""
    from control_plane.seed.demo import DEMO_LOGINS

    added, endpoint, billing, telemetry = asyncio.run(_seed_demo(Settings()))
    click.echo(
        f"demo data ready (added {added['users']} users, {added['regions']} regions, "
        f"{added['nodes']} nodes, {billing['price_books']} price books, "
        f"{billing['usage_events']} sample usage events, {billing['invoices']} invoices, "
        f"{telemetry['tenancies']} tenancies with {telemetry['samples']} GPU samples; "
        f"{telemetry['recommendations']} waste findings)"
    )
    if endpoint.created:
        click.echo(f"inference endpoint demo-chat (ca-qc-1) serves {endpoint.model}")
    for login in DEMO_LOGINS:
        click.echo(f"  {login.email:<28} {login.password:<20} {login.role}")


async def _seed_demo(
    settings: Settings,
) -> tuple[dict[str, int], DemoEndpoint, dict[str, int], dict[str, int]]:
    from billing.prices.gpu_prices import GpuHourPrices
    from billing.seed import seed_billing_demo
    from control_plane.clock import Clock
    from control_plane.db.engine import make_engine, make_sessionmaker
    from control_plane.seed.demo import seed_demo
    from control_plane.seed.demo_endpoint import seed_demo_endpoint
    from control_plane.seed.demo_telemetry import seed_demo_telemetry

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            added = await seed_demo(session, Clock())
            await session.commit()
            endpoint = await seed_demo_endpoint(session, Clock(), settings)
            await session.commit()
            billing = await seed_billing_demo(session, Clock(), endpoint.id)
            await session.commit()
            telemetry = await seed_demo_telemetry(
                session, Clock(), settings, GpuHourPrices(Clock()), make_sessionmaker(engine)
            )
            await session.commit()
            return added, endpoint, billing, telemetry
    finally:
        await engine.dispose()


@cli.command()
@click.option("--host", default=None, help="Bind address (CP_HOST).")
@click.option("--port", default=None, type=int, help="Port (CP_PORT).")
@click.option("--workers", default=1, show_default=True, type=int)
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve the API and portal."""
    import uvicorn

    settings = Settings()
    host = host or settings.host
    port = port or settings.port
    click.echo(f"control plane on http://{host}:{port}/  (portal: http://{host}:{port}/login)")
    uvicorn.run(
        "control_plane.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )


def _safe_url(url: str) -> str:
    """The URL without a password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def main() -> None:  # pragma: no cover
    sys.exit(cli())


def _register_client_commands() -> None:
    """Client commands (SDK-backed) live in the control_plane.cli.client package."""
    from control_plane.cli.agent import agent_group
    from control_plane.cli.client import register
    from control_plane.cli.client.audit import audit_group

    register(cli)
    cli.add_command(agent_group)
    audit_group.add_command(audit_rotate_key)
    audit_group.add_command(audit_checkpoint)


@click.command("rotate-key")
def audit_rotate_key() -> None:
    """(On the server) start signing this region's checkpoints with a new key."""
    from control_plane.audit.keyfiles import load_keyring, rotate_signing_key
    from control_plane.clock import Clock

    settings = Settings()
    now = Clock().now()
    load_keyring(settings.key_dir, settings.region, now)  # the first key, if none yet
    record = rotate_signing_key(settings.key_dir, settings.region, now)
    click.echo(
        f"{settings.region}: now signing with {record.key_id} (public key {record.public_key})"
    )


@click.command("checkpoint")
def audit_checkpoint() -> None:
    """(On the server) sign a checkpoint of this region's ledger now."""
    taken = asyncio.run(_checkpoint(Settings()))
    click.echo(f"{taken}")


async def _checkpoint(settings: Settings) -> str:
    from control_plane.audit.checkpoints import take_checkpoint
    from control_plane.clock import Clock
    from control_plane.db.engine import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            cp = await take_checkpoint(session, settings, Clock().now(), force=True)
    finally:
        await engine.dispose()
    assert cp is not None
    return f"{cp.region} checkpoint #{cp.number} over {cp.tree_size} chains, root {cp.root}"


_register_client_commands()
