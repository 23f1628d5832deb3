"""Residency policies: where an organization's data, keys and operators may be."""
