"""wrk as bench/ingest.py drives it: a Lua script POSTing one NEW YCLIENTS record per request, and wrk's summary.

The body is tests/samples/yclients/record_create.json with the visit moved two days ahead and the change made
now; each request gets its own record id and client phone (each wrk thread takes its own block of numbers), so
the webhook plans a new booking every time instead of answering `duplicate`. The same script is POSTed to every
endpoint, so the Lua work is the same in each figure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from string import Template
from zoneinfo import ZoneInfo

INSTALL_HINT = "wrk is not installed: apt-get install wrk"
BLOCK = 1_000_000  # numbers per wrk thread: more than a run makes, and 2 blocks fit a phone's 7 free digits
MOSCOW = ZoneInfo("Europe/Moscow")  # the demo tenant's clinic

# `$`-placeholders (string.Template): the Lua itself has none. `done` prints one line Python reads back.
_LUA = Template(r"""
local template = [==[$template]==]
local headers = {["Content-Type"] = "application/json"}
local threads = 0
function setup(thread)
  thread:set("block", threads)
  threads = threads + 1
end
local made = 0
function request()
  made = made + 1
  local n = block * $block + made
  local values = {id = string.format("%d", $id_base + n),
                  phone = string.format("+7916%07d", ($phone_base + n) % 10000000)}
  local body = template:gsub("{{(%w+)}}", values)
  return wrk.format("POST", nil, headers, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_SUMMARY {"answers": %d, "microseconds": %d, "non_2xx": %d, "socket_errors": %d, "p50": %d, "p99": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
""")


@dataclass(frozen=True)
class Load:
    answers: int  # responses read, whatever their status
    seconds: float
    non_2xx: int  # wrk counts 3xx as success too; none of these endpoints redirects
    socket_errors: int  # connect, read, write and timeout errors
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        """2xx answers per second."""
        return (self.answers - self.non_2xx) / self.seconds

    @property
    def failures(self) -> int:
        return self.non_2xx + self.socket_errors


class LoadError(RuntimeError):
    """wrk could not run or gave no summary."""


def wrk_path() -> str | None:
    return shutil.which("wrk")


def record_template(sample: Path, now: datetime) -> str:
    """The sample as JSON text, `{{id}}` for its record's ids (bare numbers, as YCLIENTS sends them) and
    `{{phone}}` for the client's phone."""
    body = json.loads(sample.read_text(encoding="utf-8"))
    data = body["data"]
    visit = (now.astimezone(MOSCOW) + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    changed = now.astimezone(MOSCOW).strftime("%Y-%m-%dT%H:%M:%S%z")
    body["resource_id"] = data["id"] = data["visit_id"] = data["client"]["id"] = "{{id}}"
    for document in data.get("documents", []):
        document["record_id"] = document["visit_id"] = "{{id}}"
    data["client"]["phone"] = "{{phone}}"
    data.update(date=visit.strftime("%Y-%m-%d %H:%M:%S"), datetime=visit.isoformat(),
                create_date=changed, last_change_date=changed)
    return json.dumps(body, ensure_ascii=False).replace('"{{id}}"', "{{id}}")


def fill(template: str, id_base: int, phone_base: int, n: int) -> str:
    """What the Lua script sends as its n-th body (n = 0 is never sent by wrk: a probe may use it)."""
    return (template.replace("{{id}}", str(id_base + n))
            .replace("{{phone}}", f"+7916{(phone_base + n) % 10_000_000:07d}"))


def write_script(path: Path, template: str, id_base: int, phone_base: int) -> Path:
    if "]==]" in template:
        raise ValueError("the body would end the Lua long string early")
    path.write_text(_LUA.substitute(template=template, block=BLOCK, id_base=id_base, phone_base=phone_base),
                    encoding="utf-8")
    return path


def run_wrk(url: str, script: Path, *, seconds: int, connections: int, log: Path) -> Load:
    """POST to `url` with `connections` open connections for `seconds` s; wrk's whole output goes to `log`."""
    threads = max(1, min(2, connections))  # the machine's cores; wrk needs a connection per thread
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LoadError(f"wrk did not run: {error}") from error
    log.write_text(done.stdout + done.stderr)
    line = next((line for line in done.stdout.splitlines() if line.startswith("WRK_SUMMARY ")), None)
    if done.returncode or line is None:
        raise LoadError(f"wrk exited {done.returncode} without its summary: {done.stderr.strip()[-500:]}")
    summary = json.loads(line.removeprefix("WRK_SUMMARY "))
    return Load(answers=summary["answers"], seconds=summary["microseconds"] / 1e6, non_2xx=summary["non_2xx"],
                socket_errors=summary["socket_errors"], p50_ms=summary["p50"] / 1000, p99_ms=summary["p99"] / 1000)
