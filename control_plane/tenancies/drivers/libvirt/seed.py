"""The cloud-init NoCloud seed of a VM: ``user-data`` and ``meta-data`` on an ISO 9660
volume labelled ``cidata`` (what cloud-init's NoCloud datasource looks for).

The tenant logs in with SSH keys only: the guest user has a locked password, password
SSH logins are off and no password or secret of any kind is written to the seed (it sits
unencrypted in the node's storage pool).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import pycdlib
import yaml

__all__ = ["meta_data", "seed_image", "user_data"]

LABEL = "cidata"


def user_data(*, hostname: str, user: str, ssh_keys: Sequence[str]) -> str:
    """The ``#cloud-config`` giving ``user`` the tenant's SSH keys and passwordless sudo."""
    config = {
        "hostname": hostname,
        "preserve_hostname": False,
        "ssh_pwauth": False,
        "disable_root": True,
        "users": [
            {
                "name": user,
                "shell": "/bin/bash",
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "lock_passwd": True,
                "ssh_authorized_keys": [key.strip() for key in ssh_keys],
            }
        ],
    }
    return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False)


def meta_data(*, instance_id: str, hostname: str) -> str:
    return yaml.safe_dump({"instance-id": instance_id, "local-hostname": hostname})


def seed_image(files: dict[str, str]) -> bytes:
    """An ISO 9660 image (Joliet and Rock Ridge names, as ``cloud-localds`` writes)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=LABEL)
    try:
        for number, (name, text) in enumerate(sorted(files.items())):
            data = text.encode()
            iso.add_fp(
                io.BytesIO(data),
                len(data),
                f"/FILE{number}.;1",
                rr_name=name,
                joliet_path=f"/{name}",
            )
        out = io.BytesIO()
        iso.write_fp(out)
        return out.getvalue()
    finally:
        iso.close()
