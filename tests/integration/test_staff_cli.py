"""`python -m connector resend|cancel|send-now <job id>…`, as support runs them on the server: one line per job,
exit 1 when any was refused, each action in the trail with who asked."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from connector.store.models import AuditEvent, Booking, DeliveryAttempt, NotificationJob, Writeback
from connector.tenants import demo_tenant
from connector.usecases.intake import drain
from connector.web import create_app
from tests.conftest import DEMO_TOKEN, make_runtime
from tests.integration.test_console import Clock, book, work

ROOT = Path(__file__).resolve().parents[2]


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url, "CONNECTOR_DEMO_TOKEN": DEMO_TOKEN,
           "CONNECTOR_API_TOKEN": "api-token-0123456789abcdef", "CONNECTOR_LINK_SECRET": "s" * 16,
           "LOG_LEVEL": "WARNING", "USER": "oncall"}
    return subprocess.run([sys.executable, "-m", "connector", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_resend_and_cancel_from_the_command_line(database_url):
    runtime = make_runtime(database_url, [demo_tenant(DEMO_TOKEN, quiet_hours=None)])  # whatever the hour now
    # the command line runs on the real clock: the visit is days ahead of it
    now = datetime.now(UTC)
    runtime.clock = Clock(now)
    client = create_app(runtime).test_client()
    book(client, 7001, "+7 (916) 123-45-67", visit=(now + timedelta(days=3)).replace(hour=9, minute=0))  # all fail
    work(runtime)
    with runtime.sessions() as session:
        jobs = {job.kind: job.id for job in session.scalars(select(NotificationJob).order_by(NotificationJob.id))}
    failed, reminder = jobs["confirmation"], jobs["reminder"]
    with runtime.sessions() as session:
        assert session.get(NotificationJob, failed).status == "failed"

    result = run_cli(database_url, "resend", str(failed), str(reminder), "999", "--from-step", "4")
    assert result.stdout.splitlines() == [
        f"{failed}\tok\tсообщение №{failed} уйдёт ещё раз с шага 4 (SMS)",
        f"{reminder}\trefused\tсообщение №{reminder}: ещё раз отправляется только недоставленное или просроченное "
        "сообщение",
        "999\trefused\tсообщения №999 нет"], result
    assert result.returncode == 1
    result = run_cli(database_url, "cancel", str(reminder), "--by", "Дежурный инженер")
    assert result.stdout == f"{reminder}\tok\tсообщение №{reminder} отменено\n" and result.returncode == 0, result

    with runtime.sessions() as session:
        job = session.get(NotificationJob, failed)
        assert (job.status, job.cascade_step) == ("scheduled", 3)
        assert session.scalars(select(NotificationJob.status).where(NotificationJob.id == reminder)).one() == \
            "cancelled"
        lines = {(line.what, line.detail) for line in session.scalars(
            select(AuditEvent).where(AuditEvent.what.like("staff.%")))}
        assert lines == {("staff.resend", "командная строка (oncall): с шага 4 (SMS)"),
                         ("staff.cancel", "Дежурный инженер")}
    runtime.clock.now = datetime.now(UTC)
    work(runtime, passes=1)
    with runtime.sessions() as session:
        assert session.scalars(select(DeliveryAttempt.channel).where(DeliveryAttempt.job_id == failed)
                               .order_by(DeliveryAttempt.id.desc()).limit(1)).one() == "sms"
    runtime.engine.dispose()


def test_a_failed_write_back_is_pushed_again_unless_a_newer_one_followed(database_url):
    runtime = make_runtime(database_url)
    client = create_app(runtime).test_client()
    book(client, 7002, "+7 (916) 123-45-60")
    drain(runtime)  # the intake makes the booking
    now = runtime.clock()
    with runtime.sessions.begin() as session:
        booking_id = session.scalars(select(Booking.id)).one()

        def row(status: str) -> Writeback:
            return Writeback(tenant_id="demo", booking_id=booking_id, target="yclients", status=status, text="…",
                             word="failed", details={}, at=now, tries=8, next_try_at=now, created_at=now,
                             updated_at=now, last_error="HTTP 403")

        old, latest, other = row("failed"), row("failed"), row("sent")
        session.add_all([old, latest])
        session.flush()
        other.target = "generic"  # another target's newer report does not hold this one back
        session.add(other)
        session.flush()
        ids = old.id, latest.id
    session_lines = run_cli(database_url, "retry-writeback", *map(str, ids), "--by", "Дежурный")
    assert session_lines.stdout.splitlines() == [
        f"{ids[0]}\trefused\tзапись в CRM №{ids[0]}: после неё в CRM ушла более новая запись: старая затёрла бы её",
        f"{ids[1]}\tok\tзапись в CRM №{ids[1]} уйдёт ещё раз"], session_lines
    with runtime.sessions() as session:
        assert [(w.status, w.tries) for w in session.scalars(select(Writeback).where(Writeback.id.in_(ids))
                                                            .order_by(Writeback.id))] == [("failed", 8), ("pending", 0)]
    runtime.engine.dispose()
