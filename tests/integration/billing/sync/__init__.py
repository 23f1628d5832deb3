"""Billing's outbox, its senders and the Stripe sync, against real receivers."""
