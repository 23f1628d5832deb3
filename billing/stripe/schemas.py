"""What the Stripe webhook endpoint answers."""

from __future__ import annotations

import msgspec


class WebhookReceipt(msgspec.Struct, frozen=True):
    """``received`` is always true for a verified delivery; ``outcome`` says what it did:
    ``applied: ...``, ``ignored: ...``, ``stale: ...`` or ``duplicate``."""

    received: bool
    outcome: str
