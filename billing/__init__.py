"""Billing: price books, rating, invoices, credits, budgets and Stripe sync.

Billing consumes what the control plane publishes (usage in the hourly rollup, the
organizations and regions) and answers the control plane's ports (budget stops at
placement and in the gateway, invoiced periods for late usage)."""
