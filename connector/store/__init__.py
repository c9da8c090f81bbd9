"""The ledger: SQLAlchemy models, the engine and the queries the use cases need."""
