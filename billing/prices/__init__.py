"""Price books per region and currency, contract overrides, commitments and credits."""
