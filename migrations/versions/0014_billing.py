"""billing: price books and rates, contract overrides, commitments, credit grants, billing
profiles, invoices with lines and credit uses, budgets and alerts, the billing outbox,
Stripe webhook events

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 23:43:33.211551
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "stripe_event",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("created", _TZ, nullable=False),
        sa.Column("received_at", _TZ, nullable=False),
        sa.Column("handled_at", _TZ, nullable=True),
        sa.Column("outcome", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_event")),
    )
    op.create_table(
        "billing_outbox",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _TZ, nullable=False),
        sa.Column("lease_until", _TZ, nullable=True),
        sa.Column("done_at", _TZ, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_billing_outbox_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_outbox")),
        sa.UniqueConstraint("key", name=op.f("uq_billing_outbox_key")),
    )
    with op.batch_alter_table("billing_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_billing_outbox_done_at_next_attempt_at"),
            ["done_at", "next_attempt_at"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_billing_outbox_org_id"), ["org_id"], unique=False)

    op.create_table(
        "billing_profile",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("legal_name", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("subdivision", sa.String(length=3), nullable=False),
        sa.Column("tax_id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_billing_profile_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_billing_profile")),
    )
    op.create_table(
        "budget",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("hard_stop", sa.Boolean(), nullable=False),
        sa.Column("webhook_url", sa.String(length=500), nullable=False),
        sa.Column("webhook_secret", sa.String(length=500), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("spent_minor", sa.BigInteger(), nullable=False),
        sa.Column("stopped", sa.Boolean(), nullable=False),
        sa.Column("evaluated_at", _TZ, nullable=True),
        sa.Column("created_at", _TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_budget_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget")),
        sa.UniqueConstraint(
            "org_id", "project_id", "currency", name=op.f("uq_budget_org_id_project_id_currency")
        ),
    )
    with op.batch_alter_table("budget", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_budget_org_id"), ["org_id"], unique=False)

    op.create_table(
        "commitment",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("region_code", sa.String(length=32), nullable=False),
        sa.Column("gpu_model", sa.String(length=32), nullable=False),
        sa.Column("gpus", sa.Numeric(precision=10, scale=3), nullable=False),
        sa.Column("hourly_price", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("starts_at", _TZ, nullable=False),
        sa.Column("ends_at", _TZ, nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_commitment_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commitment")),
    )
    with op.batch_alter_table("commitment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_commitment_org_id"), ["org_id"], unique=False)

    op.create_table(
        "contract_override",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("region_code", sa.String(length=32), nullable=False),
        sa.Column("usage_type", sa.String(length=40), nullable=False),
        sa.Column("gpu_model", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=18, scale=6), nullable=True),
        sa.Column("discount_percent", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.Column("starts_at", _TZ, nullable=False),
        sa.Column("ends_at", _TZ, nullable=True),
        sa.Column("created_at", _TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_contract_override_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_override")),
    )
    with op.batch_alter_table("contract_override", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contract_override_org_id"), ["org_id"], unique=False)

    op.create_table(
        "credit_grant",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("remaining_minor", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("granted_at", _TZ, nullable=False),
        sa.Column("expires_at", _TZ, nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_credit_grant_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_grant")),
    )
    with op.batch_alter_table("credit_grant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credit_grant_org_id"), ["org_id"], unique=False)

    op.create_table(
        "invoice",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("period_start", _TZ, nullable=False),
        sa.Column("period_end", _TZ, nullable=False),
        sa.Column("subtotal_minor", sa.BigInteger(), nullable=False),
        sa.Column("tax_minor", sa.BigInteger(), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("credits_minor", sa.BigInteger(), nullable=False),
        sa.Column("amount_due_minor", sa.BigInteger(), nullable=False),
        sa.Column("customer", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("corrects_id", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("finalized_at", _TZ, nullable=True),
        sa.Column("paid_at", _TZ, nullable=True),
        sa.Column("voided_at", _TZ, nullable=True),
        sa.Column("stripe_invoice_id", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["corrects_id"], ["invoice.id"], name=op.f("fk_invoice_corrects_id_invoice")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_invoice_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice")),
    )
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invoice_org_id_number"), ["org_id", "number"], unique=True
        )
        batch_op.create_index(
            batch_op.f("ix_invoice_org_id_period_start"), ["org_id", "period_start"], unique=False
        )

    op.create_table(
        "price_book",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("region_code", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_from", _TZ, nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("night_start_hour", sa.Integer(), nullable=False),
        sa.Column("night_end_hour", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["region_code"], ["region.code"], name=op.f("fk_price_book_region_code_region")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_book")),
        sa.UniqueConstraint(
            "region_code", "version", name=op.f("uq_price_book_region_code_version")
        ),
    )
    with op.batch_alter_table("price_book", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_price_book_region_code"), ["region_code"], unique=False
        )

    op.create_table(
        "budget_alert",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("budget_id", sa.String(length=40), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("spent_minor", sa.BigInteger(), nullable=False),
        sa.Column("at", _TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["budget_id"],
            ["budget.id"],
            name=op.f("fk_budget_alert_budget_id_budget"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_alert")),
        sa.UniqueConstraint(
            "budget_id",
            "month",
            "threshold",
            name=op.f("uq_budget_alert_budget_id_month_threshold"),
        ),
    )
    op.create_table(
        "credit_use",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("grant_id", sa.String(length=40), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("at", _TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["credit_grant.id"],
            name=op.f("fk_credit_use_grant_id_credit_grant"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoice.id"],
            name=op.f("fk_credit_use_invoice_id_invoice"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_use")),
    )
    with op.batch_alter_table("credit_use", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credit_use_invoice_id"), ["invoice_id"], unique=False)

    op.create_table(
        "invoice_line",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("dimensions", sa.JSON(), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=24, scale=6), nullable=False),
        sa.Column("unit", sa.String(length=30), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("tax_rule", sa.String(length=200), nullable=False),
        sa.Column("tax_rate", sa.Numeric(precision=7, scale=5), nullable=False),
        sa.Column("tax_minor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoice.id"],
            name=op.f("fk_invoice_line_invoice_id_invoice"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_line")),
    )
    with op.batch_alter_table("invoice_line", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invoice_line_invoice_id"), ["invoice_id"], unique=False
        )

    op.create_table(
        "price_rate",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("book_id", sa.String(length=40), nullable=False),
        sa.Column("usage_type", sa.String(length=40), nullable=False),
        sa.Column("gpu_model", sa.String(length=32), nullable=False),
        sa.Column("tenancy_kind", sa.String(length=20), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("night_unit_price", sa.Numeric(precision=18, scale=6), nullable=True),
        sa.Column("minimum_seconds", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["book_id"],
            ["price_book.id"],
            name=op.f("fk_price_rate_book_id_price_book"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_rate")),
    )
    with op.batch_alter_table("price_rate", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_price_rate_book_id"), ["book_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("price_rate", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_price_rate_book_id"))

    op.drop_table("price_rate")
    with op.batch_alter_table("invoice_line", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoice_line_invoice_id"))

    op.drop_table("invoice_line")
    with op.batch_alter_table("credit_use", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credit_use_invoice_id"))

    op.drop_table("credit_use")
    op.drop_table("budget_alert")
    with op.batch_alter_table("price_book", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_price_book_region_code"))

    op.drop_table("price_book")
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoice_org_id_period_start"))
        batch_op.drop_index(batch_op.f("ix_invoice_org_id_number"))

    op.drop_table("invoice")
    with op.batch_alter_table("credit_grant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credit_grant_org_id"))

    op.drop_table("credit_grant")
    with op.batch_alter_table("contract_override", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contract_override_org_id"))

    op.drop_table("contract_override")
    with op.batch_alter_table("commitment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commitment_org_id"))

    op.drop_table("commitment")
    with op.batch_alter_table("budget", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_budget_org_id"))

    op.drop_table("budget")
    op.drop_table("billing_profile")
    with op.batch_alter_table("billing_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_outbox_org_id"))
        batch_op.drop_index(batch_op.f("ix_billing_outbox_done_at_next_attempt_at"))

    op.drop_table("billing_outbox")
    op.drop_table("stripe_event")
