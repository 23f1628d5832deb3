"""Secrets and keys through the SDK: store secrets (values only go in), list and rotate an
organization's data keys, and (provider operator-admins) rotate a region's KEK."""

from __future__ import annotations

import base64
from typing import Any

from control_plane.sdk.pagination import PageIterator
from control_plane.sdk.resources import API, _Resource, _seg
from control_plane.sovereignty.keys.schemas import DataKeyRead, KekRotationRead, SecretRead

__all__ = ["Keys", "ProviderSecrets", "Secrets", "encode_value"]


def encode_value(value: bytes | str) -> dict[str, str]:
    """The ``value``/``value_encoding`` pair for a value: text when it is UTF-8, else base64."""
    if isinstance(value, str):
        return {"value": value, "value_encoding": "text"}
    try:
        return {"value": value.decode("utf-8"), "value_encoding": "text"}
    except UnicodeDecodeError:
        return {"value": base64.b64encode(value).decode("ascii"), "value_encoding": "base64"}


class Secrets(_Resource):
    """An organization's secrets. Values are write-only: no call returns one."""

    def _path(self, org_id: str, tail: str = "") -> str:
        return f"{API}/orgs/{_seg(org_id)}/secrets{tail}"

    def list(self, org_id: str, *, page_size: int | None = None) -> PageIterator[SecretRead]:
        return self._paginate(self._path(org_id), SecretRead, page_size)

    def get(self, org_id: str, secret_id: str) -> SecretRead:
        return self._t.call("GET", self._path(org_id, f"/{_seg(secret_id)}"), SecretRead)

    def find(self, org_id: str, name: str) -> SecretRead | None:
        """The secret named ``name`` in the deployment's region, or None."""
        return next((s for s in self.list(org_id) if s.name == name), None)

    def create(
        self,
        org_id: str,
        name: str,
        kind: str,
        value: bytes | str,
        *,
        description: str = "",
        region: str | None = None,
    ) -> SecretRead:
        body: dict[str, Any] = {"name": name, "kind": kind, "description": description}
        body.update(encode_value(value))
        if region is not None:
            body["region"] = region
        return self._t.call("POST", self._path(org_id), SecretRead, body=body, idempotency_key=True)

    def replace(
        self, org_id: str, secret_id: str, value: bytes | str, *, description: str | None = None
    ) -> SecretRead:
        body: dict[str, Any] = encode_value(value)
        if description is not None:
            body["description"] = description
        return self._t.call("PUT", self._path(org_id, f"/{_seg(secret_id)}"), SecretRead, body=body)

    def set(
        self,
        org_id: str,
        name: str,
        kind: str,
        value: bytes | str,
        *,
        description: str | None = None,
    ) -> SecretRead:
        """Create ``name``, or replace its value when it exists."""
        existing = self.find(org_id, name)
        if existing is None:
            return self.create(org_id, name, kind, value, description=description or "")
        return self.replace(org_id, existing.id, value, description=description)

    def delete(self, org_id: str, secret_id: str) -> None:
        self._t.call_no_content("DELETE", self._path(org_id, f"/{_seg(secret_id)}"))


class ProviderSecrets(_Resource):
    """The provider's own secrets (operator-admins): BMC credentials ``bmc/<hostname>`` and
    other driver credentials. Write-only like an organization's."""

    PATH = f"{API}/provider/secrets"

    def list(self, *, page_size: int | None = None) -> PageIterator[SecretRead]:
        return self._paginate(self.PATH, SecretRead, page_size)

    def find(self, name: str) -> SecretRead | None:
        return next((s for s in self.list() if s.name == name), None)

    def set(
        self, name: str, kind: str, value: bytes | str, *, description: str | None = None
    ) -> SecretRead:
        """Create ``name``, or replace its value when it exists."""
        existing = self.find(name)
        if existing is None:
            body: dict[str, Any] = {"name": name, "kind": kind, "description": description or ""}
            body.update(encode_value(value))
            return self._t.call("POST", self.PATH, SecretRead, body=body, idempotency_key=True)
        body = encode_value(value)
        if description is not None:
            body["description"] = description
        return self._t.call("PUT", f"{self.PATH}/{_seg(existing.id)}", SecretRead, body=body)

    def delete(self, secret_id: str) -> None:
        self._t.call_no_content("DELETE", f"{self.PATH}/{_seg(secret_id)}")


class Keys(_Resource):
    """Data keys of an organization; KEK rotation for provider operator-admins."""

    def list(self, org_id: str, *, page_size: int | None = None) -> PageIterator[DataKeyRead]:
        """Data key versions, newest first (never key material)."""
        return self._paginate(f"{API}/orgs/{_seg(org_id)}/keys", DataKeyRead, page_size)

    def rotate(self, org_id: str) -> DataKeyRead:
        """A new data-key version for new writes; older versions keep decrypting."""
        return self._t.call(
            "POST", f"{API}/orgs/{_seg(org_id)}/keys/rotate", DataKeyRead, idempotency_key=True
        )

    def rotate_kek(self, region: str) -> KekRotationRead:
        """Rotate ``region``'s key-encryption key and re-wrap every data key (operator-admins)."""
        return self._t.call(
            "POST",
            f"{API}/regions/{_seg(region)}/kek/rotate",
            KekRotationRead,
            idempotency_key=True,
        )
