"""A bench ledger filled fast on PostgreSQL: bulk `INSERT … SELECT generate_series` statements writing the rows
the intake and the worker would have written (bench/backlog.py), not a call through them per booking.

Two shapes, both of tenant `bench` (one SMS.ru step) and source `generic`, one patient per booking:
- the future: visits 2 to 90 days ahead, two reminders scheduled each (`reminder:P1D@…`, `reminder:PT2H@…`;
  no confirmation, as the safety-net sync plans a booking made long before), a `job.planned` line each;
- the history: visits over the past year, a confirmation and two reminders each, every one delivered through
  one SMS.ru attempt, with the trail the worker writes (queued, awaiting delivery, delivered).
Every booking has its applied inbound event and its `booking.created` line. A booking's rows (patient, booking,
inbound event) come from a series over booking numbers and its jobs from one over job numbers, through the same
SQL expressions of the number; attempts and trail lines read back the jobs just added (ids above the old maximum).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

TENANT = "bench"
TABLES = ("audit_event", "delivery_attempt", "notification_job", "inbound_event", "booking", "patient_channel",
          "patient_link", "early_receipt", "sandbox_callback", "worker_heartbeat", "sync_state", "patient")


@dataclass(frozen=True)
class Shape:
    """When booking n's visit is and when it was booked (SQL over n and :now), and its jobs."""

    visit: str
    booked: str
    jobs_per_booking: int  # 2: the reminders; 3: a confirmation first
    job_status: str

    def at(self, n: str) -> tuple[str, str]:
        """(visit, booked) of booking number `n` (an SQL expression)."""
        return self.visit.format(n=n), self.booked.format(n=n)


# Visits spread over their range in an order unrelated to the ids, as bookings come in.
FUTURE = Shape(visit="(:now + interval '2 days' + (({n}::bigint * 7919) % 7603200) * interval '1 second')",
               booked="(:now - (({n}::bigint * 104729) % 2592000) * interval '1 second')", jobs_per_booking=2,
               job_status="scheduled")
HISTORY = Shape(visit="(:now - interval '1 day' - (({n}::bigint * 7919) % 31536000) * interval '1 second')",
                booked="(:now - interval '4 days' - (({n}::bigint * 7919) % 31536000) * interval '1 second')",
                jobs_per_booking=3, job_status="delivered")

ISO_Z = "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'"  # the plan key's visit, as connector.core.planning writes it
ISO_US = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'"  # datetime.isoformat() of a UTC time, as the trail says it
DELIVERED_AFTER = "interval '70 seconds'"  # the SMS.ru receipt, after the job came due


def fill(connection: Connection, shape: Shape, *, jobs: int, now: datetime) -> None:
    """Add `jobs` jobs of this shape (with their bookings, patients, inbound events, attempts and trail)."""
    if jobs <= 0:
        return
    bases = {table: _max_id(connection, table) for table in ("patient", "booking", "inbound_event",
                                                                "notification_job", "delivery_attempt")}
    count = -(-jobs // shape.jobs_per_booking)
    params = {"now": now, "count": count, "jobs": jobs, "tenant": TENANT, "p0": bases["patient"],
              "b0": bases["booking"], "e0": bases["inbound_event"], "j0": bases["notification_job"],
              "a0": bases["delivery_attempt"]}
    for statement in _booking_statements(shape) + _job_statements(shape):
        connection.execute(text(statement), params)
    for table in ("patient", "booking", "inbound_event"):  # ids were given: the sequences catch up
        connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                f"(SELECT max(id) FROM {table}))"))


def make_due(connection: Connection, *, jobs: int, now: datetime) -> None:
    """`jobs` more future jobs, all due at `now` (their plan moved there too, so none looks like a fallback)."""
    before = _max_id(connection, "notification_job")
    fill(connection, FUTURE, jobs=jobs, now=now)
    connection.execute(text("UPDATE notification_job SET due_at = :now, planned_at = :now WHERE id > :before"),
                       {"now": now, "before": before})


def empty(connection: Connection) -> None:
    connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))


def _max_id(connection: Connection, table: str) -> int:
    return int(connection.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar_one())


def _booking_statements(shape: Shape) -> list[str]:
    visit, booked = shape.at("(:b0 + n)")
    series = "FROM generate_series(1, :count) AS n"
    phone = "'+7916' || lpad((:p0 + n)::text, 7, '0')"
    patient = f"""INSERT INTO patient (id, tenant_id, phone, first_name, sex, opt_outs, created_at, updated_at)
        SELECT :p0 + n, :tenant, {phone}, 'Иван', 'unknown', '[]', {booked}, {booked} {series}"""
    booking = f"""INSERT INTO booking (id, tenant_id, source, external_id, patient_id, starts_at, timezone, state,
            services, content_hash, created_at, updated_at)
        SELECT :b0 + n, :tenant, 'generic', (:b0 + n)::text, :p0 + n, {visit}, 'Europe/Moscow', 'active', '[]',
            md5('a' || (:b0 + n)) || md5('b' || (:b0 + n)), {booked}, {booked} {series}"""
    facts = f"""json_build_object('external_id', (:b0 + n)::text, 'starts_at', to_char(({visit}) AT TIME ZONE
        'UTC', {ISO_US}), 'state', 'active', 'timezone', NULL, 'duration_s', NULL, 'patient', json_build_object(
        'phone', {phone}, 'first_name', 'Иван', 'last_name', NULL, 'patronymic', NULL, 'sex', 'unknown',
        'external_id', NULL), 'doctor_name', NULL, 'doctor_specialty', NULL, 'services', json_build_array(),
        'preparation', NULL, 'comment', NULL, 'branch_id', NULL, 'address', NULL)"""
    parsed = f"""json_build_object('shape', 1, 'action', 'upsert', 'external_id', (:b0 + n)::text, 'version', NULL,
        'confirm_new', true, 'facts', {facts})"""
    inbound = f"""INSERT INTO inbound_event (id, tenant_id, source, received_at, headers, body, body_truncated,
            external_id, booking_id, outcome, parsed, applied_at)
        SELECT :e0 + n, :tenant, 'generic', {booked}, '{{}}', '{{}}', false, (:b0 + n)::text, :b0 + n,
            'applied', {parsed}, {booked} {series}"""
    created = f"""INSERT INTO audit_event (tenant_id, booking_id, inbound_event_id, at, what)
        SELECT :tenant, :b0 + n, :e0 + n, {booked}, 'booking.created' {series}"""
    statements = [patient, booking, inbound, created]
    if shape.job_status == "delivered":
        statements.append(f"""INSERT INTO patient_channel (patient_id, channel, opted_out, last_delivered_at,
                updated_at)
            SELECT :p0 + n, 'sms', false, {visit} - interval '2 hours' + {DELIVERED_AFTER},
                {visit} - interval '2 hours' + {DELIVERED_AFTER} {series}""")
    return statements


def _job_statements(shape: Shape) -> list[str]:
    """Jobs from a series over job numbers (booking n = j / per + 1), then their attempts and trail from them."""
    per = shape.jobs_per_booking
    # k: 0 the confirmation (history only), then the day-before and the two-hours-before reminders
    k = f"(j % {per} + {3 - per})"
    n = f"(j / {per} + 1)"
    visit, booked = shape.at(f"(:b0 + {n})")
    due = f"CASE {k} WHEN 0 THEN {booked} WHEN 1 THEN {visit} - interval '1 day' ELSE {visit} - interval '2 hours' END"
    key = (f"CASE {k} WHEN 0 THEN 'confirmation' ELSE 'reminder:' || CASE {k} WHEN 1 THEN 'P1D' ELSE 'PT2H' END "
           f"|| '@' || to_char(({visit}) AT TIME ZONE 'UTC', {ISO_Z}) END")
    delivered = shape.job_status == "delivered"
    done = f"({due}) + {DELIVERED_AFTER}" if delivered else booked
    jobs = f"""INSERT INTO notification_job (tenant_id, booking_id, patient_id, kind, plan_key, planned_at, due_at,
            status, status_reason, cascade_step, rendered_text, created_at, updated_at)
        SELECT :tenant, :b0 + {n}, :p0 + {n}, CASE {k} WHEN 0 THEN 'confirmation' ELSE 'reminder' END, {key},
            {due}, {due}, '{shape.job_status}', {"'sms via smsru: delivered'" if delivered else 'NULL'}, 0,
            {_TEXT if delivered else 'NULL'}, {booked}, {done}
        FROM generate_series(0, :jobs - 1) AS j"""
    planned = f"""INSERT INTO audit_event (tenant_id, booking_id, job_id, inbound_event_id, at, what, detail)
        SELECT tenant_id, booking_id, id, booking_id - :b0 + :e0, created_at, 'job.planned',
            kind || ' due ' || to_char(due_at AT TIME ZONE 'UTC', {ISO_US})
        FROM notification_job WHERE id > :j0"""
    return [jobs, planned] + (_delivery_statements() if delivered else [])


_TEXT = ("CASE WHEN j % 3 = 0 THEN 'Здравствуйте, Иван! Вы записаны на приём. С уважением, Клиника' "
         "ELSE 'Иван, напоминаем о приёме. С уважением, Клиника' END")


def _delivery_statements() -> list[str]:
    """One delivered SMS.ru attempt per job just added, and the five lines the worker and the receipt write."""
    attempts = """INSERT INTO delivery_attempt (job_id, step, channel, provider, message_id, provider_message_id,
            status, tries, created_at, started_at, delivered_at, updated_at)
        SELECT id, 0, 'sms', 'smsru', md5('ours' || id), md5('smsru' || id), 'delivered', 1,
            due_at + interval '30 milliseconds', due_at + interval '60 milliseconds', updated_at, updated_at
        FROM notification_job WHERE id > :j0"""
    trail = f"""INSERT INTO audit_event (tenant_id, booking_id, job_id, attempt_id, at, what, detail)
        SELECT j.tenant_id, j.booking_id, j.id, CASE WHEN t.attempt THEN a.id END,
            CASE WHEN t.what LIKE '%delivered' THEN a.delivered_at ELSE a.created_at + t.after END, t.what,
            CASE t.ord WHEN 2 THEN 'sms via smsru: queued; waiting until '
                || to_char((a.created_at + interval '1 hour') AT TIME ZONE 'UTC', {ISO_US}) ELSE t.detail END
        FROM delivery_attempt a JOIN notification_job j ON j.id = a.job_id
        CROSS JOIN (VALUES (0, 'attempt.queued', true, interval '0', 'step 1: sms via smsru'),
                           (1, 'attempt.queued', true, interval '50 milliseconds', 'sms via smsru: queued'),
                           (2, 'job.awaiting_delivery', false, interval '50 milliseconds', NULL),
                           (3, 'attempt.delivered', true, interval '0', 'sms via smsru reports delivered'),
                           (4, 'job.delivered', false, interval '0', 'sms via smsru: delivered'))
            AS t(ord, what, attempt, after, detail)
        WHERE a.id > :a0"""
    return [attempts, trail]
