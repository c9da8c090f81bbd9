"""How instants appear in JSON answers: UTC, ISO 8601, with a Z."""

from __future__ import annotations

from datetime import datetime


def utc_iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
