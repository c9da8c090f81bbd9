"""Where the sample payloads live: tests/samples/, inside the repository, so a lone clone tests on its own."""

from __future__ import annotations

from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "samples"


def sample(*parts: str) -> Path:
    """The path of a sample payload, e.g. sample("yclients", "record_create.json")."""
    return SAMPLES.joinpath(*parts)
