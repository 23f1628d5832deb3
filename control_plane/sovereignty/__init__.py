"""Sovereignty: residency policies, in-region keys and operator access approval."""
