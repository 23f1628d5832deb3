"""The keys domain's answer to "where does this organization have things?" for residency.

Residency checks a policy change (and writes its report) against every region where an
organization has resources; its data keys are such resources: a key held in a region
the new policy forbids would be stranded there. The composition root registers
:func:`org_key_resources` under ``ORG_KEYS_SOURCE``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.sovereignty.keys import repository
from control_plane.sovereignty.residency.resources import Resource


async def org_key_resources(db: AsyncSession, org_id: str) -> list[Resource]:
    """One resource per data key version that still holds key material (destroyed ones
    hold nothing and live nowhere)."""
    return [
        Resource(
            kind="org_key",
            id=key.id,
            region_code=key.region,
            description=f"Data key v{key.version} ({key.state}), wrapped by {key.kek_id} "
            f"v{key.kek_version}",
        )
        for key in await repository.live_data_keys(db, org_id)
    ]
