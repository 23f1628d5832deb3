"""Tenancy drivers: one interface (base), the registry, and one module per driver."""
