"""Stripe sync: customers and finalized invoices pushed through the outbox, and Stripe's
webhooks (verified, stored by event id, applied once and in order per object)."""
