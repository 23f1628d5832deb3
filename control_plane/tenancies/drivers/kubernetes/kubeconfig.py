"""The kubeconfig a tenant gets: one cluster, one token, the tenancy's namespace.

The CA is embedded (``certificate-authority-data``) so the file works on its own; the
token is a bound ServiceAccount token, valid until it expires or the ServiceAccount is
recreated (rotation).
"""

from __future__ import annotations

import base64

import yaml

__all__ = ["build_kubeconfig"]


def build_kubeconfig(
    *, name: str, server: str, ca_pem: bytes | None, namespace: str, token: str
) -> bytes:
    """A kubeconfig YAML document; ``name`` names its cluster, user and context."""
    cluster: dict[str, str] = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode("ascii")
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
        ],
        "current-context": name,
        "preferences": {},
    }
    return yaml.safe_dump(document, sort_keys=False).encode()
