"""Fixtures for the failures of a provider's network (servers in tests/sockets.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from tests import sockets


@pytest.fixture
def misbehaving() -> Iterator[Callable[[sockets.Behaviour], str]]:
    """misbehaving(sockets.silent) → the base URL of a server that does that, closed after the test."""
    with ExitStack() as stack:
        yield lambda behaviour: stack.enter_context(sockets.serving(behaviour))


@pytest.fixture
def closed_port() -> str:
    return sockets.closed_port()


@pytest.fixture
def full_backlog() -> Iterator[str]:
    with sockets.full_backlog() as url:
        yield url
