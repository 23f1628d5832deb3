"""VM and Kubernetes tenancies: where GPUs sit on the host (PCI address, NUMA node) and the
host's CPUs per NUMA node, for passthrough and pinning; the tenancy's access credential
(a kubeconfig), kept encrypted in the secret store until it is shown once

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 03:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from control_plane.db.base import UTCDateTime

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gpu") as batch:
        batch.add_column(sa.Column("pci_address", sa.String(16), nullable=True))
        batch.add_column(sa.Column("numa_node", sa.Integer(), nullable=True))
    with op.batch_alter_table("node") as batch:
        batch.add_column(
            sa.Column("numa_cpus", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    op.create_table(
        "tenancy_credential",
        sa.Column("tenancy_id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("secret_id", sa.String(40), nullable=True),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revealed_at", UTCDateTime(), nullable=True),
        sa.Column("revealed_by", sa.String(80), nullable=True),
        sa.Column("rotations", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenancy_id"],
            ["tenancy.id"],
            name=op.f("fk_tenancy_credential_tenancy_id_tenancy"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenancy_id", name=op.f("pk_tenancy_credential")),
    )


def downgrade() -> None:
    op.drop_table("tenancy_credential")
    with op.batch_alter_table("node") as batch:
        batch.drop_column("numa_cpus")
    with op.batch_alter_table("gpu") as batch:
        batch.drop_column("numa_node")
        batch.drop_column("pci_address")
