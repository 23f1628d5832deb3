"""Secrets and keys through the SDK and ``cpctl``, against the app served by uvicorn."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.cli.main import cli
from control_plane.clock import Clock, OffsetClock
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.sdk import Client, NotFoundError
from control_plane.settings import Settings
from control_plane.sovereignty.keys import service
from control_plane.sovereignty.keys.models import DataKey, SecretKind
from tests.e2e.server import serve_app
from tests.fixtures.factories import Tenant, make_api_key, make_org, make_user

VALUE = b"hf_cli_token_3b8f27aa19c4"


@pytest.fixture
def base_url(settings: Settings, clock: OffsetClock, app: Litestar) -> Iterator[str]:
    with serve_app(settings, clock=clock) as url:
        yield url


@pytest.fixture
async def tenant(db: AsyncSession) -> Tenant:
    made = await make_org(db)
    await db.commit()
    return made


def run(tmp_path: Path, *args: str, input: str | None = None, **env: str) -> Result:
    runner = CliRunner(
        env={
            "CPCTL_CONFIG": str(tmp_path / "profiles.toml"),
            "CPCTL_PROFILE": None,
            "CP_URL": None,
            "CP_API_KEY": None,
            **env,
        }
    )
    return runner.invoke(cli, list(args), input=input)


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class TestSdk:
    async def test_set_list_rotate_and_delete(self, base_url: str, tenant: Tenant) -> None:
        owner = tenant.accounts[TenantRole.OWNER]
        with Client(base_url) as client:
            client.login(owner.email, owner.password)
            created = client.secrets.set(tenant.org_id, "hf", "other", VALUE)
            rotated = client.keys.rotate(tenant.org_id)
            replaced = client.secrets.set(tenant.org_id, "hf", "other", b"\xff\x00binary")
            listed = client.secrets.list(tenant.org_id).to_list()
            keys = client.keys.list(tenant.org_id).to_list()
            client.secrets.delete(tenant.org_id, created.id)
            with pytest.raises(NotFoundError):
                client.secrets.get(tenant.org_id, created.id)

        assert replaced.id == created.id
        assert (created.data_key_version, rotated.version, replaced.data_key_version) == (1, 2, 2)
        assert [s.name for s in listed] == ["hf"]
        assert [k.version for k in keys] == [2, 1]

    async def test_an_owner_deletes_the_organization(
        self, base_url: str, tenant: Tenant, db: AsyncSession, clock: Clock, settings: Settings
    ) -> None:
        owner = tenant.accounts[TenantRole.OWNER]
        with Client(base_url) as client:
            client.login(owner.email, owner.password)
            client.secrets.set(tenant.org_id, "hf", "other", VALUE)
            client.orgs.delete(tenant.org_id, confirm=tenant.slug)
            assert client.orgs.list().to_list() == []

        states = (await db.execute(select(DataKey.state))).scalars().all()
        assert states == ["destroyed"]

    async def test_an_operator_admin_rotates_the_kek(
        self, base_url: str, tenant: Tenant, db: AsyncSession, settings: Settings
    ) -> None:
        admin = await make_user(db, provider_role=ProviderRole.OPERATOR_ADMIN)
        await db.commit()
        owner = tenant.accounts[TenantRole.OWNER]
        with Client(base_url) as client:
            client.login(owner.email, owner.password)
            client.secrets.set(tenant.org_id, "hf", "other", VALUE)
        with Client(base_url) as client:
            client.login(admin.email, admin.password)
            result = client.keys.rotate_kek(settings.region)

        assert (result.kek_version, result.rewrapped, result.remaining) == (2, 1, 0)


class TestCpctl:
    async def test_secrets_and_keys_commands_never_print_a_value(
        self,
        base_url: str,
        tenant: Tenant,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
        tmp_path: Path,
    ) -> None:
        key = await make_api_key(db, tenant, TenantRole.ADMIN)
        await db.commit()
        value_file = tmp_path / "value"
        value_file.write_bytes(VALUE)
        env = {"CP_URL": base_url, "CP_API_KEY": key}

        saved = run(
            tmp_path,
            "secrets", "set", "hf-token", "--kind", "model_repository_credentials",
            "--value-file", str(value_file), "--description", "weights",
            **env,
        )  # fmt: skip
        listed = as_json(run(tmp_path, "secrets", "list", "-o", "json", **env))
        rotated = as_json(run(tmp_path, "keys", "rotate", "-o", "json", **env))
        keys = as_json(run(tmp_path, "keys", "list", "-o", "json", **env))

        assert saved.exit_code == 0, saved.output
        assert VALUE.decode() not in saved.output
        assert [(s["name"], s["kind"]) for s in listed] == [
            ("hf-token", "model_repository_credentials")
        ]
        assert rotated["version"] == 2
        assert [(k["version"], k["state"]) for k in keys] == [(2, "active"), (1, "retired")]
        value = await service.reveal_by_name(
            db,
            org_id=tenant.org_id,
            name="hf-token",
            justification="cli test",
            actor=service.Actor.system("tests"),
            clock=clock,
            settings=settings,
        )
        await db.commit()
        assert value == VALUE

        deleted = run(tmp_path, "secrets", "delete", "hf-token", "--yes", **env)
        assert deleted.exit_code == 0, deleted.output
        assert as_json(run(tmp_path, "secrets", "list", "-o", "json", **env)) == []

    async def test_an_operator_admin_stores_bmc_credentials_write_only(
        self,
        base_url: str,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
        tmp_path: Path,
    ) -> None:
        admin = await make_user(db, provider_role=ProviderRole.OPERATOR_ADMIN)
        operator = await make_user(db, provider_role=ProviderRole.OPERATOR, home_country="CA")
        await db.commit()
        credentials = b'{"username": "root", "password": "bmc-pw-71c3"}'
        value_file = tmp_path / "bmc.json"
        value_file.write_bytes(credentials)

        def as_user(email: str, password: str, *args: str) -> Result:
            home = tmp_path / email
            signed = run(home, "login", "--email", email, "--password-stdin", "--url", base_url,
                         input=password + "\n")  # fmt: skip
            assert signed.exit_code == 0, signed.output
            return run(home, *args)

        saved = as_user(admin.email, admin.password, "provider-secrets", "set", "bmc/gpu-017",
                        "--kind", "bmc_credentials", "--value-file", str(value_file))  # fmt: skip
        assert saved.exit_code == 0, saved.output
        assert "bmc-pw-71c3" not in saved.output
        listed = as_json(run(tmp_path / admin.email, "-o", "json", "provider-secrets", "list"))
        assert [(s["name"], s["kind"]) for s in listed] == [("bmc/gpu-017", "bmc_credentials")]
        refused = as_user(operator.email, operator.password, "provider-secrets", "list")
        assert refused.exit_code != 0
        assert "403" in refused.output
        value = await service.reveal_by_name(
            db, org_id=None, name="bmc/gpu-017", justification="redfish provision of ten_x",
            actor=service.Actor.system("tests"), clock=clock, settings=settings,
        )  # fmt: skip
        await db.commit()
        assert value == credentials
        deleted = run(tmp_path / admin.email, "provider-secrets", "delete", "bmc/gpu-017", "--yes")
        assert deleted.exit_code == 0, deleted.output
        assert as_json(run(tmp_path / admin.email, "-o", "json", "provider-secrets", "list")) == []

    def test_rotate_kek_runs_locally_against_the_database_and_key_directory(
        self, stored_secret: str, settings: Settings, tmp_path: Path
    ) -> None:
        env = {
            "CP_DATABASE_URL": settings.database_url,
            "CP_KEY_DIR": str(settings.key_dir),
            "CP_REGION": settings.region,
        }

        done = as_json(run(tmp_path, "keys", "rotate-kek", "--local", "-o", "json", **env))
        refused = run(tmp_path, "keys", "rotate-kek", "--local", "--region", "se-north-1", **env)

        assert (done["kek_version"], done["rewrapped"], done["remaining"]) == (2, 1, 0)
        assert refused.exit_code != 0
        assert "holds the keys of" in refused.output


@pytest.fixture
async def stored_secret(tenant: Tenant, db: AsyncSession, clock: Clock, settings: Settings) -> str:
    stored = await service.put(
        db,
        org_id=tenant.org_id,
        name="s",
        kind=SecretKind.OTHER,
        value=VALUE,
        actor=service.Actor.system("tests"),
        clock=clock,
        settings=settings,
    )
    await db.commit()
    return stored.id
