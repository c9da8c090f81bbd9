"""Command line: `python -m connector release|worker|check|replay|resend|cancel|send-now|retry-writeback|demo|
hash-password`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from connector.config import Settings, load_settings

if TYPE_CHECKING:  # imported when needed below: `demo` runs without the database layer
    from connector.entrypoints.bootstrap import Runtime


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from connector.entrypoints.demo import run

        return run(args.url.rstrip("/"))
    if args.command == "hash-password":
        return _hash_password()

    from connector.entrypoints.bootstrap import build_runtime
    from connector.tenants import TenantConfigError

    try:
        settings = load_settings()  # a worker setting that cannot be used stops `check` too
        runtime = build_runtime(settings)
    except (TenantConfigError, ValueError) as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    if args.command == "check":
        print(f"configuration ok: tenants {', '.join(sorted(runtime.tenants))}")
        return 0
    if args.command == "release":
        return _release(settings, runtime)
    if args.command == "replay":
        return _replay(runtime, args.ids)
    if args.command in ("resend", "cancel", "send-now", "retry-writeback"):
        return _act(runtime, args)
    return _work(runtime)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m connector")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("release", help="migrate the database and check the configuration (run before each deploy)")
    sub.add_parser("check", help="validate the tenants file and the mappings, then exit")
    sub.add_parser("worker", help="run the scheduler: dispatch due jobs, advance cascades, poll statuses")
    replay = sub.add_parser("replay", help="apply rejected inbound events again, their bodies parsed anew")
    replay.add_argument("ids", nargs="+", type=int, metavar="inbound_event_id")
    by = argparse.ArgumentParser(add_help=False)
    by.add_argument("--by", default=f"командная строка ({os.environ.get('USER') or 'без имени'})",
                    help="who asks: written in the audit trail (default: the shell's user)")
    resend = sub.add_parser("resend", parents=[by], help="send failed or expired jobs again")
    resend.add_argument("ids", nargs="+", type=int, metavar="job_id")
    resend.add_argument("--from-step", type=int, default=1, help="the cascade's step to start from, counted from 1")
    cancel = sub.add_parser("cancel", parents=[by], help="cancel jobs still waiting to be sent")
    cancel.add_argument("ids", nargs="+", type=int, metavar="job_id")
    send_now = sub.add_parser("send-now", parents=[by], help="send waiting jobs at the next pass (not after the visit)")
    send_now.add_argument("ids", nargs="+", type=int, metavar="job_id")
    retry = sub.add_parser("retry-writeback", parents=[by], help="push failed reports to the CRM again")
    retry.add_argument("ids", nargs="+", type=int, metavar="writeback_id")
    demo = sub.add_parser("demo", help="post one booking per last digit to a running service and watch them")
    demo.add_argument("--url", default="http://127.0.0.1:8000")
    sub.add_parser("hash-password", help="print a password hash for a staff user's password_hash in the tenants file "
                                         "(the password is read twice from the terminal, or one line from stdin)")
    return parser


def _release(settings: Settings, runtime: Runtime) -> int:
    from connector.store.migrate import upgrade

    upgrade(settings.database_url)
    print(f"database migrated; tenants: {', '.join(sorted(runtime.tenants))}", flush=True)
    if not settings.config_path:
        where = "$CONNECTOR_DEMO_TOKEN" if os.environ.get("CONNECTOR_DEMO_TOKEN") else "instance/demo_token"
        print(f"demo tenant webhook: POST /webhooks/yclients/demo?token=<the token in {where}>", flush=True)
        where = ("$CONNECTOR_STATUS_PASSWORD" if os.environ.get("CONNECTOR_STATUS_PASSWORD")
                 else "instance/status_password")
        print(f"status pages: /status/demo, sign in as admin with the password in {where}", flush=True)
    elif not runtime.staff:
        print("no staff users in the tenants file: nobody can sign in to the status pages (see README, Access)",
              flush=True)
    return 0


def _hash_password() -> int:
    """The password never appears on the command line (shell history, `ps`): typed twice, or piped in."""
    from getpass import getpass

    from werkzeug.security import generate_password_hash

    if sys.stdin.isatty():
        password = getpass("Пароль: ")
        if getpass("Ещё раз: ") != password:
            print("the two passwords differ; nothing made", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        print("a staff password needs at least 8 characters", file=sys.stderr)
        return 1
    print(generate_password_hash(password), flush=True)
    return 0


def _replay(runtime: Runtime, ids: list[int]) -> int:
    """One line per event: its id, its outcome now, and why (exit 1 when any is still not applied)."""
    from connector.usecases.replay import replay

    results = replay(runtime, ids, apply=_apply_here_or_wait)
    for result in results:
        print(f"{result.event_id}\t{result.outcome}" + (f"\t{result.detail}" if result.detail else ""), flush=True)
    return 0 if all(result.outcome != "rejected" for result in results) else 1


def _act(runtime: Runtime, args: argparse.Namespace) -> int:
    """One line per job (or write-back): its id, ok or refused, and what became of it (exit 1 when any was
    refused)."""
    from connector.usecases import staff_actions

    def one(job_id: int) -> staff_actions.Done:
        if args.command == "resend":
            return staff_actions.resend(runtime, job_id, staff=args.by, from_step=args.from_step - 1)
        if args.command == "cancel":
            return staff_actions.cancel(runtime, job_id, staff=args.by)
        if args.command == "retry-writeback":
            return staff_actions.retry_writeback(runtime, job_id, staff=args.by)
        return staff_actions.send_now(runtime, job_id, staff=args.by)

    results = [one(job_id) for job_id in args.ids]
    for done in results:
        print(f"{done.id}\t{'ok' if done.ok else 'refused'}\t{done.message}", flush=True)
    return 0 if all(done.ok for done in results) else 1


def _apply_here_or_wait(runtime: Runtime, ids: Sequence[int], patience: float = 30.0) -> None:
    """Apply the replayed events here, unless a worker runs on this SQLite file: only one process may apply there,
    so its intake does it, and this waits (up to `patience` seconds) until they are no longer pending."""
    import time

    from connector.entrypoints.worker import SecondWorkerError, hold_sqlite_lock
    from connector.store.inbound import outcomes_of
    from connector.usecases.intake import drain

    try:
        lock = hold_sqlite_lock(runtime)
    except SecondWorkerError:
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            with runtime.sessions() as session:
                if "pending" not in outcomes_of(session, ids):
                    return
            time.sleep(0.5)
        return
    try:
        drain(runtime)
    finally:
        if lock is not None:
            lock.close()


def _work(runtime: Runtime) -> int:
    from connector.entrypoints.worker import SecondWorkerError, run_worker

    try:
        run_worker(runtime)
    except SecondWorkerError as error:
        print(f"worker not started: {error}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
