"""Which update of a booking wins: the source's own change time orders them (connector.core.versions)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.core.versions import is_stale, newest

T1 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
T2 = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("held", "incoming", "stale", "kept"),
    [
        (None, None, False, None),  # nothing to order by: applied
        (None, T1, False, T1),  # the first versioned update
        (T1, None, False, T1),  # an update without a version is applied, the version held is kept
        (T1, T1, False, T1),  # the same version again: not stale (the content hash finds the repeat)
        (T1, T2, False, T2),  # newer: applied
        (T2, T1, True, T2),  # older, arriving late: stale, and the held version stays
    ],
)
def test_versions(held, incoming, stale, kept):
    assert is_stale(held, incoming) is stale
    assert newest(held, incoming) == kept
