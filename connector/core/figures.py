"""The console's delivery figures, folded from attempts counted by group: per channel, how many went out, arrived,
were read, failed, and fell through to the cascade's next step; per step, the share delivered.

The store counts attempts grouped by channel, step, status and a few yes/no facts in one query
(connector.store.console_views); the rules of what counts as what live here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from connector.core.model import AttemptStatus

__all__ = ["WINDOWS", "AttemptGroup", "ChannelFigures", "StepRate", "by_channel", "by_step"]

WINDOWS = ("today", "24h", "7d")

_DELIVERED = frozenset({AttemptStatus.DELIVERED, AttemptStatus.READ})
_FAILED = frozenset({AttemptStatus.FAILED, AttemptStatus.NOT_REGISTERED, AttemptStatus.REJECTED,
                     AttemptStatus.EXPIRED})
_WENT_OUT = frozenset({AttemptStatus.SENT, AttemptStatus.EXPIRED}) | _DELIVERED
# Not tried at all: nothing reached the provider, so no rate counts them.
_NOT_TRIED = frozenset({AttemptStatus.QUEUED, AttemptStatus.WITHDRAWN})


@dataclass(frozen=True)
class AttemptGroup:
    """Attempts alike in what the figures look at, and how many."""

    channel: str
    step: int  # counted from 0
    status: str
    sent: bool  # a provider took it (its sent time is known)
    fell_through: bool  # its job went on to a later step
    windows: frozenset[str]  # which of WINDOWS it was made in
    count: int


@dataclass(frozen=True)
class ChannelFigures:
    channel: str
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    fell_through: int = 0


@dataclass(frozen=True)
class StepRate:
    step: int  # counted from 0
    channels: tuple[str, ...]
    tried: int
    delivered: int

    @property
    def rate(self) -> float | None:
        """The share of tries delivered, None when nothing was tried."""
        return self.delivered / self.tried if self.tried else None


def by_channel(groups: Iterable[AttemptGroup], window: str) -> list[ChannelFigures]:
    """Each channel's figures in `window`, by channel name."""
    totals: dict[str, list[int]] = {}
    for group in groups:
        if window not in group.windows:
            continue
        row = totals.setdefault(group.channel, [0, 0, 0, 0, 0])
        went_out = group.sent or group.status in _WENT_OUT
        for index, counts in enumerate((went_out, group.status in _DELIVERED, group.status == AttemptStatus.READ,
                                        group.status in _FAILED, group.fell_through)):
            row[index] += group.count if counts else 0
    return [ChannelFigures(channel, *row) for channel, row in sorted(totals.items())]


def by_step(groups: Sequence[AttemptGroup], window: str) -> list[StepRate]:
    """The cascade's steps in `window`: how many were tried on each, and delivered."""
    steps: dict[int, tuple[set[str], list[int]]] = {}
    for group in groups:
        if window not in group.windows or group.status in _NOT_TRIED:
            continue
        channels, counts = steps.setdefault(group.step, (set(), [0, 0]))
        channels.add(group.channel)
        counts[0] += group.count
        counts[1] += group.count if group.status in _DELIVERED else 0
    return [StepRate(step, tuple(sorted(channels)), tried, delivered)
            for step, (channels, (tried, delivered)) in sorted(steps.items())]
