"""Where an organization's resources live, gathered from every domain that holds some.

Residency does not know tenancies, endpoints or keys; each domain that places something
in a region registers a *resource source* (an async function of ``(db, org_id)``) with a
:class:`ResourceSources` registry that the composition root builds and keeps on
``app.state.residency_sources``. Policy changes, previews and the residency report ask
the registry, so a new domain shows up in all three by registering one function.

Built in: the organization's audit ledger chains (one per region its entries were
recorded in). The org data keys of ``control_plane.sovereignty.keys`` are wired by the
composition root under :data:`ORG_KEYS_SOURCE` once that domain publishes a source.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.directory import org_chains

__all__ = [
    "LEDGER_SOURCE",
    "ORG_KEYS_SOURCE",
    "Resource",
    "ResourceSource",
    "ResourceSources",
    "builtin_sources",
    "ledger_chains",
]


class Resource(NamedTuple):
    """Something of the organization's that lives in one region."""

    kind: str  # e.g. "audit_chain", "org_key", "tenancy", "endpoint"
    id: str
    region_code: str
    description: str


ResourceSource = Callable[[AsyncSession, str], Awaitable[Sequence[Resource]]]

LEDGER_SOURCE = "audit_ledger"
# Hook for the org data keys (control_plane.sovereignty.keys): the composition root calls
# ``sources.register(ORG_KEYS_SOURCE, <keys domain's source function>)``.
ORG_KEYS_SOURCE = "org_keys"


class ResourceSources:
    """The registry of resource sources, one per name (registering a name again replaces it)."""

    def __init__(self, sources: Mapping[str, ResourceSource] | None = None) -> None:
        self._sources: dict[str, ResourceSource] = dict(sources or {})

    def register(self, name: str, source: ResourceSource) -> None:
        self._sources[name] = source

    @property
    def names(self) -> list[str]:
        return sorted(self._sources)

    async def collect(self, db: AsyncSession, org_id: str) -> list[Resource]:
        """Every source's resources of the organization, ordered by kind, region and id."""
        found: list[Resource] = []
        for name in sorted(self._sources):
            found.extend(await self._sources[name](db, org_id))
        return sorted(found, key=lambda r: (r.kind, r.region_code, r.id))


async def ledger_chains(db: AsyncSession, org_id: str) -> list[Resource]:
    """The organization's audit ledger chains: its activity record, stored per region."""
    return [
        Resource(
            kind="audit_chain",
            id=chain.chain,
            region_code=chain.region,
            description=f"Audit ledger chain ({chain.entries} entries)",
        )
        for chain in await org_chains(db, org_id)
    ]


def builtin_sources() -> ResourceSources:
    """A registry holding the sources residency knows itself (the ledger chains)."""
    return ResourceSources({LEDGER_SOURCE: ledger_chains})
