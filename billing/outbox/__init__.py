"""Billing's outbox: messages to other systems (webhooks, e-mail, Stripe) written in the
transaction of the change that causes them, delivered with retries afterwards."""
