"""stripe: each organization's Stripe customer, the newest webhook event applied per Stripe
object, and dead outbox messages (given up on, kept for operators)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "stripe_customer",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_stripe_customer_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_stripe_customer")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_stripe_customer_customer_id")),
    )
    op.create_table(
        "stripe_sync",
        sa.Column("object_id", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("event_created", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("object_id", name=op.f("pk_stripe_sync")),
    )
    with op.batch_alter_table("billing_outbox") as table:
        table.add_column(sa.Column("dead_at", _TZ, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("billing_outbox") as table:
        table.drop_column("dead_at")
    op.drop_table("stripe_sync")
    op.drop_table("stripe_customer")
