"""Ordering a source's updates by its own change time: an older update arriving late changes nothing (pure)."""

from __future__ import annotations

from datetime import datetime


def is_stale(held: datetime | None, incoming: datetime | None) -> bool:
    """True when the update is older than the version we hold. An update or a booking without a version cannot be
    ordered, so it is applied: losing a real change is worse than applying a repeat, which changes nothing."""
    return held is not None and incoming is not None and incoming < held


def newest(held: datetime | None, incoming: datetime | None) -> datetime | None:
    """The version to remember after an update: never moves backwards, and a missing one forgets nothing."""
    if held is None:
        return incoming
    if incoming is None:
        return held
    return max(held, incoming)
