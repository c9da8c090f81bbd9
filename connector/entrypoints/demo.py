"""`python -m connector demo`: post one booking per last digit 0-9 to a running service and watch each
confirmation walk the sandbox cascade (the table in the README), until every one has settled.

What it says comes from the service's API (each job's status, due time and reason), not from this machine's
clock or settings: the service may run with other quiet hours than the environment `make demo` sees.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import requests

from connector.config import INSTANCE

FINAL = {"delivered", "read", "unconfirmed", "failed", "expired", "cancelled", "skipped"}
LATE_RECEIPT_WAIT = 30  # seconds to keep watching after all settled, for digit 9's late MAX receipt
POLL_SECONDS = 3


class DemoError(Exception):
    """Something the user can fix, said in one line (no traceback)."""


def _secret(env: str, name: str) -> str:
    value = os.environ.get(env)
    if value:
        return value
    path = INSTANCE / name
    if not path.exists():
        raise DemoError(f"set {env} or start the service once (make run) so that {path} exists")
    return Path(path).read_text().strip()


def sample_record(record_id: int, phone: str, visit: datetime, changed: datetime) -> dict:
    """A YCLIENTS record webhook as YCLIENTS sends it (trimmed to the fields we read)."""
    return {
        "company_id": 512345, "resource": "record", "resource_id": record_id, "status": "create",
        "data": {
            "id": record_id, "company_id": 512345, "datetime": visit.isoformat(), "seance_length": 1800,
            "create_date": changed.isoformat(), "last_change_date": changed.isoformat(), "attendance": 0,
            "deleted": False, "comment": "", "custom_fields": [],
            "staff": {"id": 2001, "name": "Иванов Сергей Петрович", "specialization": "Кардиолог"},
            "services": [{"id": 6137968, "title": "Приём кардиолога первичный", "cost": 3500}],
            "client": {"id": 86694283 + record_id, "name": "Иван", "surname": "Демонстрационный",
                       "patronymic": "Петрович", "sex": 1, "phone": phone},
        },
    }


# --- what the watcher says (pure: `now` and the API's answers are parameters) ----------------------------------

def _instant(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text.replace("Z", "+00:00"))


def held_back(jobs: Sequence[Mapping[str, Any]], horizon: datetime) -> tuple[datetime, str | None] | None:
    """(when, why) for the earliest of the unsettled jobs the worker will not take before `horizon` (the end of
    the watch), or None when each is settled or due by then. A job's next move is its next_try_at (a fallback
    step, a warm-up cap) or else its due time (which the planner moved out of the quiet hours)."""
    waiting = []
    for job in jobs:
        when = _instant(job.get("next_try_at")) or _instant(job.get("due_at"))
        if job.get("status") not in FINAL and when is not None and when > horizon:
            waiting.append((when, job.get("reason")))
    return min(waiting, key=lambda item: item[0]) if waiting else None


def wait_line(due: datetime, reason: str | None, *, zone: str, now: datetime) -> str:
    """One line saying until when the confirmations wait and why; for quiet hours, how to see the cascade now."""
    local, today = due.astimezone(ZoneInfo(zone)), now.astimezone(ZoneInfo(zone)).date()
    place = zone.rsplit("/", 1)[-1].replace("_", " ")
    day = "" if (local.date() - today).days <= 1 else f" on {local:%Y-%m-%d}"
    minutes = max(0, round((due - now).total_seconds() / 60))
    hours, minutes = divmod(minutes, 60)
    after = f"{hours} h {minutes} min" if hours else f"{minutes} min"
    line = f"the confirmations wait for {local:%H:%M} {place} time{day}, in {after}"
    if reason:
        line += f" ({reason})"
    if reason and "quiet hours" in reason:
        line += ("; to watch the cascade now, restart the service with `CONNECTOR_DEMO_QUIET_HOURS=off make run`"
                 " and run `make demo` again")
    return line


def redraw(lines: Sequence[str], *, shown: int, tty: bool, width: int = 0) -> str:
    """The text that replaces the `shown` lines of the previous table with `lines`: on a terminal the cursor
    goes back up over them (ANSI) and clears; in a pipe or a log the new table is appended after a blank line.
    On a terminal `width` columns wide each line is cut to fit: a wrapped line would throw the count off."""
    if tty and width > 1:
        lines = [line if len(line) < width else line[: width - 2] + "…" for line in lines]
    text = "".join(f"{line}\n" for line in lines)
    if not shown:
        return text
    return f"\x1b[{shown}F\x1b[J{text}" if tty else f"\n{text}"


# --- the watcher ------------------------------------------------------------------------------------------------

def run(base_url: str, timeout: float = 180, out: TextIO | None = None) -> int:
    """Post, watch, say; 0 when done (or when the confirmations wait), 1 with a one-line reason on stderr when
    the service cannot be reached or refuses, 130 on Ctrl+C."""
    out = out or sys.stdout
    try:
        return _run(base_url, timeout, out)
    except DemoError as error:
        print(error, file=sys.stderr)
    except requests.ConnectionError:
        print(f"nothing answers at {base_url}: start `make run` in another terminal first", file=sys.stderr)
    except requests.Timeout:
        print(f"{base_url} did not answer in time: is the service overloaded or still starting?", file=sys.stderr)
    except requests.RequestException as error:
        print(f"{base_url}: {type(error).__name__}", file=sys.stderr)
    except KeyboardInterrupt:
        print(file=out)
        return 130
    return 1


INTAKE_WAIT = 30.0  # seconds for the worker to apply the posted webhooks


def _run(base_url: str, timeout: float, out: TextIO) -> int:
    _check(requests.get(f"{base_url}/healthz", timeout=10), "is the service healthy? (/healthz)")
    token, api = _secret("CONNECTOR_DEMO_TOKEN", "demo_token"), _secret("CONNECTOR_API_TOKEN", "api_token")
    run_id, events = _post_bookings(base_url, token=token)
    print(f"posted 10 bookings ({run_id}..{run_id + 9}); waiting for the worker to apply them", file=out)
    _await_intake(base_url, api_token=api, events=events, timeout=INTAKE_WAIT)
    print("applied; watching their confirmations (Ctrl+C to stop)\n", file=out)
    return _watch(base_url, api_token=api, run_id=run_id, timeout=timeout, out=out)


def _post_bookings(base_url: str, *, token: str) -> tuple[int, list[int]]:
    """One booking per last digit, the day after tomorrow at 9:00 UTC; the run's id (its bookings' first id)
    and the inbound events the webhooks were stored as."""
    now = datetime.now(UTC)
    visit = (now + timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
    run_id = int(now.timestamp()) % 100_000 * 10
    events = []
    for digit in range(10):
        # new numbers each run: "not in MAX" is remembered for a patient, and would shorten the paths
        body = sample_record(run_id + digit, f"+7916{run_id // 10 % 1_000_000:06d}{digit}", visit, now)
        answer = requests.post(f"{base_url}/webhooks/yclients/demo", params={"token": token}, json=body, timeout=10)
        events.append(_check(answer, "did it refuse the demo token in instance/demo_token?").json()["inbound_event_id"])
    return run_id, events


def _await_intake(base_url: str, *, api_token: str, events: Sequence[int], timeout: float) -> None:
    """The webhooks are answered once stored; the worker's intake makes them bookings. Wait for it."""
    deadline = time.monotonic() + timeout
    for event_id in events:
        while True:
            answer = requests.get(f"{base_url}/api/v1/demo/inbound-events/{event_id}",
                                  headers={"Authorization": f"Bearer {api_token}"}, timeout=10)
            event = _check(answer, "did it refuse the API token in instance/api_token?").json()
            if event["outcome"] != "pending":
                break
            if time.monotonic() > deadline:
                raise DemoError(f"the webhooks are stored but still pending after {timeout:.0f} s: is the worker "
                                "running? (`make run` starts it beside the web)")
            time.sleep(0.2)


def _watch(base_url: str, *, api_token: str, run_id: int, timeout: float, out: TextIO) -> int:
    """Redraw the table every POLL_SECONDS until all settled, nothing can move before the end, or `timeout`."""
    deadline = time.monotonic() + timeout
    late_wait_until = float("inf")
    tty, shown = out.isatty(), 0
    while True:
        rows, jobs, zone = _confirmations(base_url, api_token=api_token, run_id=run_id)
        lines = [f"  {d}  {status:<18} {path}" for d, status, path in rows]
        out.write(redraw(lines, shown=shown, tty=tty, width=shutil.get_terminal_size().columns))
        out.flush()
        shown = len(lines)
        now = datetime.now(UTC)
        horizon = now + timedelta(seconds=max(0.0, deadline - time.monotonic()))  # the end of the watch
        held = held_back(jobs, horizon)
        unsettled = [job for job in jobs if job["status"] not in FINAL]
        # At night every confirmation waits for the morning: watching longer would show the same table.
        nothing_moves = bool(unsettled) and all(held_back([job], horizon) for job in unsettled)
        settled = not unsettled
        # Digit 9's MAX receipt comes only after its step timed out: wait for it, to show it recorded.
        late_pending = rows[9][2].startswith("max:expired") and late_wait_until > time.monotonic()
        if settled and late_wait_until == float("inf"):
            late_wait_until = time.monotonic() + LATE_RECEIPT_WAIT
        if (settled and not late_pending) or nothing_moves or time.monotonic() > deadline:
            if held is not None:
                print("\n" + wait_line(*held, zone=zone, now=now), file=out)
            return 0
        time.sleep(POLL_SECONDS)


def _confirmations(base_url: str, *, api_token: str,
                   run_id: int) -> tuple[list[tuple[int, str, str]], list[dict[str, Any]], str]:
    """Each digit's confirmation as a table row (digit, status, path of attempts), the jobs, the clinic's zone."""
    rows, jobs, zone = [], [], "Europe/Moscow"
    for digit in range(10):
        answer = requests.get(f"{base_url}/api/v1/demo/bookings/yclients/{run_id + digit}",
                              headers={"Authorization": f"Bearer {api_token}"}, timeout=10)
        view = _check(answer, "did it refuse the API token in instance/api_token?").json()
        zone = view.get("timezone") or zone
        job = next(j for j in view["jobs"] if j["kind"] == "confirmation")
        path = " → ".join(f"{a['channel']}:{a['status']}" for a in job["attempts"]) or "—"
        rows.append((digit, job["status"], path))
        jobs.append(job)
    return rows, jobs, zone


def _check(response: requests.Response, hint: str) -> requests.Response:
    if response.status_code >= 400:
        raise DemoError(f"{response.request.method} {response.url.split('?')[0]}: HTTP {response.status_code}; {hint}")
    return response
