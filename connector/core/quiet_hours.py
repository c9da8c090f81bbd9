"""Quiet hours: where a job's due time lands when it falls inside the tenant's nightly window.

The window is a daily span [start, end) of wall-clock time in the tenant's zone and may run over midnight
(21:00-09:00). A due time outside it is left alone. Inside it:

- urgent kinds (a confirmation of a fresh booking, a reschedule, a cancellation) go at once when the visit
  starts before the window ends, else at the window's end;
- everything else moves to the window's end if that is still before the visit, else to one minute before
  the window began if that is not already past; when neither fits the job is skipped.

Pure: `now` is a parameter, every datetime is aware, and the adjusted time is returned in UTC.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from connector.core.cascade import Decision
from connector.core.model import URGENT_KINDS, JobKind, JobStatus, QuietHours

# How far before the window a job that cannot wait until morning is sent.
_BEFORE_WINDOW = timedelta(minutes=1)


def fit_quiet_hours(
    due: datetime,
    *,
    kind: JobKind,
    visit_start: datetime,
    now: datetime,
    quiet: QuietHours | None,
    tz: str,
) -> tuple[datetime | None, str | None]:
    """Return (due time in UTC, or None to skip; a note for the audit trail, or None when nothing moved)."""
    window = quiet_window_around(due, quiet, tz)
    if quiet is None or window is None:
        return due.astimezone(UTC), None
    start, end = window
    label = f"{quiet.start:%H:%M}-{quiet.end:%H:%M}"
    moved_to_end = f"moved out of quiet hours {label} to {end:%H:%M} local"

    if kind in URGENT_KINDS:
        # At the window's end itself the visit would already be starting: only "at once" is any use.
        if visit_start <= end:
            note = f"sent at once despite quiet hours {label}: the visit starts before they end"
            return due.astimezone(UTC), note
        return end.astimezone(UTC), moved_to_end

    if end < visit_start:
        return end.astimezone(UTC), moved_to_end
    earlier = start - _BEFORE_WINDOW
    if now <= earlier < visit_start:
        return earlier.astimezone(UTC), f"moved before quiet hours {label} to {earlier:%H:%M} local"
    return None, (
        f"skipped: due inside quiet hours {label}, the visit starts before they end at {end:%H:%M} local "
        f"and {earlier:%Y-%m-%d %H:%M} local, before they begin, is already past"
    )


def quiet_window_around(
    moment: datetime, quiet: QuietHours | None, tz: str
) -> tuple[datetime, datetime] | None:
    """The quiet window (local start, local end) that contains `moment`, or None when it is outside all."""
    if quiet is None or quiet.start == quiet.end:  # start == end is an empty window: quiet hours are off
        return None
    zone = ZoneInfo(tz)
    local = moment.astimezone(zone)
    day, wall = local.date(), local.time().replace(tzinfo=None)
    one_day = timedelta(days=1)

    # Build local wall-clock instants with the zone so that a DST shift between them is accounted for.
    def at(d: date, t: time) -> datetime:
        return datetime.combine(d, t, tzinfo=zone)

    if quiet.start < quiet.end:  # a window within one day, e.g. 13:00-15:00
        if quiet.start <= wall < quiet.end:
            return at(day, quiet.start), at(day, quiet.end)
        return None
    if wall >= quiet.start:  # the evening part of a window over midnight: it ends tomorrow
        return at(day, quiet.start), at(day + one_day, quiet.end)
    if wall < quiet.end:  # the morning part: it began yesterday
        return at(day - one_day, quiet.start), at(day, quiet.end)
    return None


def fallback_time(now: datetime, *, kind: JobKind, visit_start: datetime | None, quiet: QuietHours | None,
                  tz: str) -> tuple[datetime, str | None]:
    """When the next step of a cascade may go, once the previous one failed or timed out at `now`.

    A fallback is a new message at a new moment, so the quiet hours hold for it as for any other: it waits
    for their end. Where no quiet moment comes before the visit, it goes now: late is better than never
    for a patient who has not been told yet.
    """
    horizon = visit_start if visit_start is not None else now + timedelta(days=3650)
    due, note = fit_quiet_hours(now, kind=kind, visit_start=horizon, now=now, quiet=quiet, tz=tz)
    if due is None:
        return now.astimezone(UTC), "no moment outside the quiet hours before the visit: the next step goes now"
    return due, note


def schedule_fallback(decision: Decision, *, now: datetime, kind: JobKind, visit_start: datetime | None,
                      quiet: QuietHours | None, tz: str) -> Decision:
    """The decision with its fallback's time: a SCHEDULED one gets `due_at` (and `waiting`, why it is later
    than now); any other is returned as it is. The use cases call this before writing the decision."""
    if decision.job_status is not JobStatus.SCHEDULED:
        return decision
    due, note = fallback_time(now, kind=kind, visit_start=visit_start, quiet=quiet, tz=tz)
    return replace(decision, due_at=due, waiting=note if due > now else None)
