"""What is at rest is ciphertext: every row of every table, read raw with SQL, holds no secret
in any common encoding (raw, hex, base64) — neither values, nor data keys, nor KEKs, nor the
API key and session secrets handed out."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.identity.roles import TenantRole
from control_plane.settings import Settings
from control_plane.sovereignty.keys import datakeys, service
from control_plane.sovereignty.keys.datakeys import Keyring
from control_plane.sovereignty.keys.models import SecretKind
from control_plane.sovereignty.keys.rotation import rotate_kek
from tests.fixtures.factories import login, make_org, signed_in

Client = AsyncTestClient[Litestar]


def encodings(plain: bytes) -> Iterator[bytes]:
    """``plain`` as it could sit in a row: raw, hex, and base64 (standard and URL-safe) at
    each of the three alignments it could have inside a longer encoded blob."""
    yield plain
    yield plain.hex().encode()
    yield plain.hex().upper().encode()
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * shift + plain)
            yield encoded[4:-4]  # the part that does not depend on neighbouring bytes


async def raw_rows(db: AsyncSession) -> dict[str, list[bytes]]:
    """Every cell of every table in the database (not only the models'), as bytes."""
    names = await db.run_sync(lambda sync: inspect(sync.connection()).get_table_names())
    cells: dict[str, list[bytes]] = {}
    for name in names:
        rows = (await db.execute(text(f'SELECT * FROM "{name}"'))).all()  # noqa: S608
        cells[name] = [_as_bytes(value) for row in rows for value in row if value is not None]
    return cells


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def kek_material(settings: Settings) -> dict[str, bytes]:
    """The region's KEK files, by name."""
    directory = Path(settings.key_dir, "kek", settings.region)
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.key"))}


def leaks(cells: dict[str, list[bytes]], plain: bytes) -> list[str]:
    needles = list(encodings(plain))
    return sorted(
        {table for table, values in cells.items() for cell in values for n in needles if n in cell}
    )


class TestNothingSecretAtRest:
    async def test_raw_database_holds_only_ciphertext(
        self,
        client: Client,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> None:
        org = await make_org(db)
        await db.commit()
        owner = await signed_in(client, org.accounts[TenantRole.OWNER])
        values = {kind: f"{kind.value}:{secrets.token_urlsafe(24)}".encode() for kind in SecretKind}

        # Tenant secrets through the API, one replaced, then a data-key rotation.
        tenant_kinds = [
            SecretKind.KUBECONFIG,
            SecretKind.SLURM_TOKEN,
            SecretKind.MODEL_REPOSITORY_CREDENTIALS,
            SecretKind.OTHER,
        ]
        for kind in tenant_kinds:
            response = await client.post(
                f"/api/v1/orgs/{org.org_id}/secrets",
                json={"name": kind.value, "kind": kind.value, "value": "placeholder"},
                headers=owner,
            )
            assert response.status_code == 201, response.text
            replaced = await client.put(
                f"/api/v1/orgs/{org.org_id}/secrets/{response.json()['id']}",
                json={"value": values[kind].decode()},
                headers=owner,
            )
            assert replaced.status_code == 200, replaced.text
        rotate = await client.post(f"/api/v1/orgs/{org.org_id}/keys/rotate", headers=owner)
        assert rotate.status_code == 200
        # Provider secrets (and BMC credentials) through the service, as other domains do.
        for kind in (
            SecretKind.BMC_CREDENTIALS,
            SecretKind.STRIPE_KEY,
            SecretKind.OIDC_CLIENT_SECRET,
        ):
            await service.put(
                db,
                org_id=None,
                name=kind.value,
                kind=kind,
                value=values[kind],
                actor=service.Actor.system("tests"),
                clock=clock,
                settings=settings,
            )
        await db.commit()
        # An API key and a session: their secrets are handed out once, stored as digests.
        project_key = await client.post(
            f"/api/v1/projects/{org.project_id}/api-keys", json={"name": "ci"}, headers=owner
        )
        api_key_secret = project_key.json()["secret"].encode()
        await login(client, org.accounts[TenantRole.MEMBER])
        session_token = client.cookies["cp_session"].encode()
        client.cookies.clear()
        # A KEK rotation re-wraps every data key.
        engine = make_engine(settings.database_url)
        try:
            await rotate_kek(
                make_sessionmaker(engine),
                service.keys_for(settings),
                settings.region,
                clock,
                actor_kind="system",
                actor_id="tests",
            )
        finally:
            await engine.dispose()
        # Every value still reads back (the test would prove nothing otherwise).
        for kind, value in values.items():
            owner_org = org.org_id if kind in tenant_kinds else None
            assert (
                await service.reveal_by_name(
                    db,
                    org_id=owner_org,
                    name=kind.value,
                    justification="at-rest test",
                    actor=service.Actor.system("tests"),
                    clock=clock,
                    settings=settings,
                )
                == value
            )
        await db.commit()
        keks = service.keys_for(settings)
        data_keys = [
            await datakeys.key_version(db, keks, Keyring(org.org_id, settings.region), v)
            for v in (1, 2)
        ] + [await datakeys.key_version(db, keks, Keyring(None, settings.region), 1)]
        keks_on_disk = kek_material(settings)
        assert len(keks_on_disk) == 2

        cells = await raw_rows(db)

        assert {"secret", "data_key", "audit_entry", "api_key", "web_session"} <= set(cells)
        found = {
            **{f"value of {kind.value}": leaks(cells, v) for kind, v in values.items()},
            **{f"data key {i}": leaks(cells, k) for i, k in enumerate(data_keys)},
            **{f"KEK {name}": leaks(cells, key) for name, key in keks_on_disk.items()},
            "API key secret": leaks(cells, api_key_secret),
            "session token": leaks(cells, session_token),
        }
        assert {what: tables for what, tables in found.items() if tables} == {}
        assert len(cells["secret"]) > 0
        assert len(cells["data_key"]) > 0

    async def test_the_leak_detector_finds_each_encoding(self) -> None:
        plain = b"a-distinctive-secret-value-123"
        for shift in range(3):
            blob = b"prefix" + base64.b64encode(b"x" * shift + plain) + b"suffix"
            assert leaks({"t": [blob]}, plain) == ["t"]
        assert leaks({"t": [b"..." + plain.hex().encode()]}, plain) == ["t"]
        assert leaks({"t": [b"nothing here"]}, plain) == []
