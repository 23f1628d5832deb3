"""Budgets: monthly spend limits per organization or project, alerts and hard stops."""
