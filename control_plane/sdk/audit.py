"""The audit ledger through the SDK: public keys, entries, export bundles."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from pathlib import Path, PurePosixPath

from control_plane.audit.schemas import AuditEntryRead, AuditKeysRead
from control_plane.sdk.errors import error_from_response
from control_plane.sdk.pagination import PageIterator
from control_plane.sdk.resources import API, _Resource, _seg

__all__ = ["Audit", "extract_bundle"]


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


class Audit(_Resource):
    """The organization's tamper-evident ledger (auditors, owners and admins)."""

    def keys(self) -> AuditKeysRead:
        """The region's checkpoint-signing public keys (no credential needed)."""
        return self._t.call("GET", f"{API}/audit/keys", AuditKeysRead)

    def entries(
        self,
        org_id: str,
        *,
        action: str | None = None,
        outcome: str | None = None,
        actor_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int | None = None,
    ) -> PageIterator[AuditEntryRead]:
        """Entries newest first; ``action`` matches a prefix (``identity.`` for all of them)."""
        filters = {
            "action": action,
            "outcome": outcome,
            "actor_id": actor_id,
            "since": _time(since),
            "until": _time(until),
        }
        path = f"{API}/orgs/{_seg(org_id)}/audit/entries"
        return self._paginate(path, AuditEntryRead, page_size, filters)

    def export(
        self,
        org_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        destination: str | None = None,
    ) -> bytes:
        """The export bundle as zip bytes; :func:`extract_bundle` unpacks it for verifying.

        ``destination``: the jurisdiction (e.g. ``"CA"``) the bundle goes to; the
        organization's residency policy must allow it.
        """
        response = self._t.send(
            "GET",
            f"{API}/orgs/{_seg(org_id)}/audit/export",
            params={"since": _time(since), "until": _time(until), "destination": destination},
        )
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.content


_BUNDLE_FILES = frozenset({"entries.jsonl", "entries.csv", "checkpoints.json", "manifest.json"})


def extract_bundle(content: bytes, out: Path) -> Path:
    """Unpack a bundle zip into ``out``: only the four bundle files, never a path outside."""
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        for member in archive.infolist():
            name = PurePosixPath(member.filename)
            if member.is_dir() or len(name.parts) != 1 or name.name not in _BUNDLE_FILES:
                raise ValueError(f"unexpected file in bundle: {member.filename!r}")
            (out / name.name).write_bytes(archive.read(member))
    return out
