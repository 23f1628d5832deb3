"""Usage events: what was consumed, by whom, where; stored once, rated by billing later."""
