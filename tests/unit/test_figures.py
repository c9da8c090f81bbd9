"""The console's delivery figures: what counts as sent, delivered, read, failed and fallen through, per channel
and window; the share delivered at each step of the cascade."""

from __future__ import annotations

from connector.core.figures import AttemptGroup, ChannelFigures, StepRate, by_channel, by_step

ALL = frozenset({"today", "24h", "7d"})
WEEK = frozenset({"7d"})


def group(channel, step, status, count, *, sent=False, fell=False, windows=ALL):
    return AttemptGroup(channel, step, status, sent, fell, windows, count)


GROUPS = [
    group("max", 0, "delivered", 5),
    group("max", 0, "read", 2),
    group("max", 0, "not_registered", 3, fell=True),
    group("max", 0, "failed", 1, sent=True, fell=True),  # taken by the provider, then reported failed
    group("max", 0, "queued", 4),  # not tried yet
    group("telegram", 1, "sent", 2),
    group("telegram", 1, "expired", 1, fell=True),
    group("sms", 3, "delivered", 7, windows=WEEK),  # last week only
    group("sms", 3, "withdrawn", 1),
]


def test_per_channel_today():
    assert by_channel(GROUPS, "today") == [
        ChannelFigures("max", sent=8, delivered=7, read=2, failed=4, fell_through=4),
        ChannelFigures("sms"),
        ChannelFigures("telegram", sent=3, delivered=0, read=0, failed=1, fell_through=1),
    ]


def test_a_week_counts_what_a_day_leaves_out():
    assert ChannelFigures("sms", sent=7, delivered=7) in by_channel(GROUPS, "7d")


def test_each_step_is_rated_on_what_was_tried():
    rates = by_step(GROUPS, "today")
    assert rates == [StepRate(0, ("max",), tried=11, delivered=7), StepRate(1, ("telegram",), tried=3, delivered=0)]
    assert rates[0].rate == 7 / 11 and rates[1].rate == 0
    assert StepRate(2, (), 0, 0).rate is None
    assert by_step(GROUPS, "7d")[-1] == StepRate(3, ("sms",), tried=7, delivered=7)
