"""Use cases: each one job the service does, over the ledger and the doors; the caller owns the transaction."""
