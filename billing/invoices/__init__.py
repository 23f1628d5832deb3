"""Invoices and credit notes: rated from usage, draft -> finalized -> paid or void."""
