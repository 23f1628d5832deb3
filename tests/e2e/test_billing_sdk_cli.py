"""Billing through ``cpctl`` and the SDK against a served app: an operator publishes a
price book, ingests a partner's usage and runs and finalizes invoices; the customer reads
usage by GPU model, sets a budget, and downloads the invoice as CSV and HTML."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.outbox.dispatch import Dispatcher
from billing.outbox.models import OutboxMessage
from billing.outbox.service import enqueue
from control_plane.cli.main import cli
from control_plane.clock import OffsetClock
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.sdk import Client, PermissionDeniedError
from control_plane.seed.demo import seed_catalog
from control_plane.settings import Settings
from tests.e2e.server import serve_app
from tests.fixtures.factories import PASSWORD, Tenant, make_api_key, make_org, make_user

pytestmark = pytest.mark.e2e


@pytest.fixture
async def world(db: AsyncSession, clock: OffsetClock) -> tuple[Tenant, str, str]:
    """A customer with an owner key, and an operator-admin."""
    await seed_catalog(db, clock)
    org = await make_org(db, "erable")
    secret = await make_api_key(db, org, TenantRole.OWNER)
    operator = await make_user(db, "ops@provider.test", provider_role=ProviderRole.OPERATOR_ADMIN)
    await db.commit()
    return org, secret, operator.email


@pytest.fixture
def base_url(settings: Settings, clock: OffsetClock, app: Litestar) -> Iterator[str]:
    with serve_app(settings, clock=clock) as url:
        yield url


def cpctl(home: Path, *args: str, input: str | None = None) -> Result:
    env = {"CPCTL_CONFIG": str(home / "profiles.toml"), "CPCTL_PROFILE": None}
    env |= {"CP_URL": None, "CP_API_KEY": None}
    return CliRunner(env=env).invoke(cli, list(args), input=input)


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


class TestBillingCliAndSdk:
    def test_usage_to_a_downloaded_invoice(
        self, base_url: str, world: tuple[Tenant, str, str], clock: OffsetClock, tmp_path: Path
    ) -> None:
        org, secret, ops_email = world
        at = clock.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        at -= timedelta(hours=3)
        book = tmp_path / "book.json"
        book.write_text(
            json.dumps(
                {
                    "effective_from": (at - timedelta(days=1)).isoformat(),
                    "timezone": "UTC",
                    "night_start_hour": 0,
                    "night_end_hour": 0,
                    "rates": [
                        {"usage_type": "gpu_seconds", "gpu_model": "h100", "unit_price": "4.00"},
                        {"usage_type": "gpu_seconds", "gpu_model": "l40s", "unit_price": "1.50"},
                    ],
                }
            )
        )
        events = tmp_path / "events.jsonl"
        events.write_text(
            "".join(
                json.dumps(
                    {
                        "id": f"job-{n}",
                        "source": "partner-slurm",
                        "org_id": org.org_id,
                        "project_id": org.project_id,
                        "type": "gpu_seconds",
                        "value": str(seconds),
                        "window_start": at.isoformat(),
                        "window_end": (at + timedelta(hours=1)).isoformat(),
                        "dimensions": {
                            "region": "ca-qc-1",
                            "gpu_model": model,
                            "tenancy": f"ten_{n}",
                        },
                    }
                )
                + "\n"
                for n, (model, seconds) in enumerate([("h100", 7200), ("l40s", 3600)])
            )
        )
        assert cpctl(tmp_path, "profile", "add", "ops", "--url", base_url).exit_code == 0
        login = cpctl(tmp_path, "login", "--email", ops_email, "--password-stdin", input=PASSWORD)
        assert login.exit_code == 0, login.stderr

        published = ok_json(
            cpctl(tmp_path, "-o", "json", "billing", "publish-prices", "ca-qc-1", str(book))
        )
        contract = ok_json(
            cpctl(
                tmp_path,
                "-o",
                "json",
                "billing",
                "override",
                "erable",
                "--region",
                "ca-qc-1",
                "--usage-type",
                "gpu_seconds",
                "--gpu-model",
                "h100",
                "--price",
                "3.00",
                "--starts",
                (at - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"),
            )
        )
        first = cpctl(tmp_path, "usage", "ingest", str(events))
        again = ok_json(cpctl(tmp_path, "-o", "json", "usage", "ingest", str(events)))
        run = ok_json(
            cpctl(
                tmp_path,
                "-o",
                "json",
                "billing",
                "run",
                "--start",
                at.strftime("%Y-%m-%dT%H:%M:%S"),
                "--end",
                (at + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
            )
        )

        assert published["version"] == 1
        assert contract["unit_price"] == "3.00"
        assert first.exit_code == 0, first.stderr
        assert "2 stored" in first.stdout
        assert again == {"accepted": 0, "duplicates": 2, "amendments": 0}
        assert run["drafts"] == 1

        with Client(base_url, secret) as client:
            usage = client.usage.report(group_by=["gpu_model"], types=["gpu_seconds"])
            by_model = {r.group["gpu_model"]: r.value for r in usage.rows}
            [draft] = client.billing.invoices()
            budget = client.billing.set_budget(
                "CAD", "500", hard_stop=True, webhook_url="https://hooks.erable.test/b"
            )
        assert by_model == {"h100": Decimal(7200), "l40s": Decimal(3600)}
        assert draft.status == "draft"
        assert budget.webhook_secret is not None

        final = ok_json(cpctl(tmp_path, "-o", "json", "billing", "finalize", draft.id))
        assert final["status"] == "finalized"

        key_profile = cpctl(
            tmp_path, "profile", "add", "erable", "--url", base_url, "--api-key-stdin", input=secret
        )
        assert key_profile.exit_code == 0, key_profile.output
        out = tmp_path / "invoice.csv"
        saved = cpctl(
            tmp_path,
            "--profile",
            "erable",
            "billing",
            "download",
            draft.id,
            "--format",
            "csv",
            "--out",
            str(out),
        )
        assert saved.exit_code == 0, saved.stderr
        rows = list(csv.DictReader(io.StringIO(out.read_text())))
        # 2 H100-hours at the contract's 3.00 (not the book's 4.00), 1 L40S-hour at 1.50
        assert sorted(Decimal(r["amount"]) for r in rows) == [Decimal("1.50"), Decimal("6.00")]
        assert {r["number"] for r in rows} == {final["number"]}
        with Client(base_url, secret) as client:
            html = client.billing.document(draft.id, "html").decode()
        assert final["number"] in html


@pytest.fixture
async def dead_stripe_push(
    db: AsyncSession, world: tuple[Tenant, str, str], clock: OffsetClock
) -> str:
    """A Stripe customer push queued while Stripe was not configured: the dispatcher has no
    sender for it, so it is dead at once."""
    org = world[0]
    await enqueue(db, key=f"stripe.customer:{org.org_id}:1", topic="stripe.customer",
                  org_id=org.org_id, payload={"org_id": org.org_id}, now=clock.now())  # fmt: skip
    await db.commit()
    sessions = async_sessionmaker(db.bind, expire_on_commit=False)
    assert await Dispatcher(sessions, clock, {}).drain() == {"dead": 1}
    message_id = await db.scalar(
        select(OutboxMessage.id).where(OutboxMessage.topic == "stripe.customer")
    )
    assert message_id is not None
    return message_id


class TestDeliveriesCli:
    def test_an_operator_lists_dead_deliveries_and_retries_one(
        self, base_url: str, world: tuple[Tenant, str, str], dead_stripe_push: str,
        tmp_path: Path,
    ) -> None:  # fmt: skip
        _, _, ops_email = world
        assert cpctl(tmp_path, "profile", "add", "ops", "--url", base_url).exit_code == 0
        login = cpctl(tmp_path, "login", "--email", ops_email, "--password-stdin", input=PASSWORD)
        assert login.exit_code == 0, login.stderr

        table = cpctl(tmp_path, "billing", "deliveries")
        assert table.exit_code == 0, table.output
        assert dead_stripe_push in table.stdout
        assert "no sender for topic 'stripe.customer'" in table.stdout
        assert "pending 0, dead 1, done 0" in table.stderr

        retried = ok_json(
            cpctl(tmp_path, "-o", "json", "billing", "retry-delivery", dead_stripe_push)
        )
        assert (retried["state"], retried["attempts"]) == ("pending", 0)
        pending = ok_json(cpctl(tmp_path, "-o", "json", "billing", "deliveries", "--state",
                                "pending"))  # fmt: skip
        assert [d["id"] for d in pending] == [dead_stripe_push]
        twice = cpctl(tmp_path, "billing", "retry-delivery", dead_stripe_push)
        assert twice.exit_code != 0
        assert "only dead ones are retried" in twice.stderr

    def test_a_customer_key_cannot_see_deliveries(
        self, base_url: str, world: tuple[Tenant, str, str], dead_stripe_push: str
    ) -> None:
        _, secret, _ = world
        with Client(base_url, secret) as client, pytest.raises(PermissionDeniedError):
            client.billing.deliveries()
