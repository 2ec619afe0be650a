"""Writes of charging sessions, one module per area: authorization, reservations, transactions
and reconciliation."""
