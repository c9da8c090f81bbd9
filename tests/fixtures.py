"""Where the shared fixtures live: /work/shared/fixtures sits beside the repository folder."""

from __future__ import annotations

from pathlib import Path

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def shared_fixture(*parts: str) -> Path:
    """The path of a shared fixture, e.g. shared_fixture("yclients", "record_create.json")."""
    return SHARED_FIXTURES.joinpath(*parts)
