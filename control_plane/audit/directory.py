"""Which ledger chains exist: read-only lookups for other domains (e.g. residency reports).

Chains are named ``{org_id}/{region}`` (``control_plane.audit.chain.chain_name``); an
organization has one per region its entries were recorded in.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.chain import chain_name
from control_plane.audit.models import AuditChainHead

__all__ = ["ChainInfo", "org_chains"]


@dataclass(frozen=True)
class ChainInfo:
    """One chain of an organization: its name, the region it lives in, its length."""

    chain: str
    region: str
    entries: int


async def org_chains(db: AsyncSession, org_id: str) -> list[ChainInfo]:
    """The organization's ledger chains, ordered by region."""
    prefix = chain_name(org_id, "")
    # autoescape: the "_" in ids must not act as a LIKE wildcard.
    query = (
        select(AuditChainHead.chain, AuditChainHead.seq)
        .where(AuditChainHead.chain.startswith(prefix, autoescape=True))
        .order_by(AuditChainHead.chain)
    )
    rows = (await db.execute(query)).all()
    return [
        ChainInfo(chain=chain, region=chain[len(prefix) :], entries=int(seq))
        for chain, seq in rows
        if chain.startswith(prefix)
    ]
