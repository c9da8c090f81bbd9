"""Adapters that turn each source's wire format into the core's values."""
