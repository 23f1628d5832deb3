"""What things cost the customer, read-only: per endpoint, allocation versus usage basis."""
