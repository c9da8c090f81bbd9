"""What the clinic reads on its booking: which audit lines become reports, their Russian text, which unsent report
a newer one replaces, when a failed push goes again; and our one line in a YCLIENTS comment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.core.model import AuditWhat as W
from connector.core.model import JobKind
from connector.core.notice_line import PREFIX, with_notice, without_notice
from connector.core.writeback import (
    BASE_DELAY,
    MAX_TRIES,
    JobView,
    Line,
    drafts,
    retry_at,
    superseded,
    worth_reading,
)

AT = datetime(2026, 12, 2, 15, 2, tzinfo=UTC)  # 18:02 in Moscow, 20:02 in Yekaterinburg
FINAL, STEPS = ["final"], ["final", "steps"]


def view(kind=JobKind.REMINDER, **kw) -> JobView:
    return JobView(kind, booking_id=7, tz=kw.pop("tz", "Europe/Moscow"), **kw)


def texts(lines, jobs, report=STEPS) -> list[tuple[str, str]]:
    return [(d.status, d.text) for d in drafts(lines, jobs, report=report)]


FINALS = [
    # (line, job view, (status, text))
    (W.JOB_DELIVERED, view(delivered_on="max"), ("delivered", "Напоминание доставлено в MAX 02.12 18:02")),
    (W.JOB_DELIVERED, view(delivered_on="sms"), ("delivered", "Напоминание доставлено по SMS 02.12 18:02")),
    (W.JOB_READ, view(JobKind.CONFIRMATION, delivered_on="telegram"),
     ("read", "Подтверждение записи прочитано в Telegram 02.12 18:02")),
    (W.JOB_UNCONFIRMED, view(JobKind.RESCHEDULE, last_tried_on="whatsapp"),
     ("unconfirmed", "Уведомление о переносе отправлено в WhatsApp, доставка не подтверждена 02.12 18:02")),
    (W.JOB_EXPIRED, view(JobKind.CANCELLATION), ("expired", "Уведомление об отмене не отправлено: время приёма "
                                                            "наступило 02.12 18:02")),
    (W.JOB_FAILED, view(JobKind.RESULTS_READY, last_tried_on="sms"),
     ("failed", "Сообщение о готовности результатов не доставлено ни по одному каналу 02.12 18:02")),
    (W.JOB_FAILED, view(JobKind.RECALL, tz="Asia/Yekaterinburg"),
     ("failed", "Приглашение на повторный приём не доставлено ни по одному каналу 02.12 20:02")),
    (W.JOB_DELIVERED, view(delivered_on="viber"), ("delivered", "Напоминание доставлено через viber 02.12 18:02")),
    (W.JOB_DELIVERED, view(), ("delivered", "Напоминание доставлено через канал 02.12 18:02")),
]


@pytest.mark.parametrize(("what", "job", "expected"), FINALS)
def test_a_final_outcome_reads_as_the_administrator_expects(what, job, expected):
    for report in (FINAL, STEPS):
        assert texts([Line(what, AT, 1)], {1: job}, report) == [expected]


def test_the_final_report_carries_what_the_generic_json_needs():
    [draft] = drafts([Line(W.JOB_DELIVERED, AT, 1)], {1: view(delivered_on="max")}, report=FINAL)
    assert (draft.booking_id, draft.job_id, draft.at) == (7, 1, AT)
    assert dict(draft.details) == {"job_id": 1, "kind": "reminder", "channel": "max"}


def test_steps_are_reported_only_when_asked():
    lines = [Line(W.ATTEMPT_SENT, AT, 1, "max"), Line(W.ATTEMPT_DELIVERED, AT, 1, "max"),
             Line(W.JOB_DELIVERED, AT, 1)]
    jobs = {1: view(delivered_on="max")}
    assert texts(lines, jobs, FINAL) == [("delivered", "Напоминание доставлено в MAX 02.12 18:02")]
    assert texts(lines, jobs, STEPS) == [("sent", "Напоминание отправлено в MAX 02.12 18:02"),
                                         ("delivered", "Напоминание доставлено в MAX 02.12 18:02")]


@pytest.mark.parametrize(("missed", "why"), [
    (W.ATTEMPT_NOT_REGISTERED, "пациента нет в MAX"),
    (W.ATTEMPT_EXPIRED, "MAX не ответил"),
    (W.ATTEMPT_FAILED, "MAX не доставил"),
    (W.ATTEMPT_REJECTED, "MAX не принял сообщение"),
    (W.ATTEMPT_UNKNOWN, "MAX не ответил"),
])
def test_a_fall_through_names_both_channels(missed, why):
    lines = [Line(missed, AT, 1, "max"), Line(W.JOB_SCHEDULED, AT, 1)]
    [draft] = drafts(lines, {1: view(next_channel="telegram")}, report=STEPS)
    assert (draft.status, draft.text) == ("fallback", f"Напоминание: {why}, отправляем в Telegram 02.12 18:02")
    assert draft.details["previous"] == "max" and draft.details["channel"] == "telegram"


def test_a_job_scheduled_again_without_a_missed_step_reports_nothing():
    assert texts([Line(W.JOB_SCHEDULED, AT, 1)], {1: view(next_channel="max")}) == []


def test_a_missed_step_counts_once_and_only_for_its_own_job():
    lines = [Line(W.ATTEMPT_FAILED, AT, 1, "max"), Line(W.JOB_SCHEDULED, AT, 2), Line(W.JOB_SCHEDULED, AT, 1),
             Line(W.JOB_SCHEDULED, AT, 1)]
    jobs = {1: view(next_channel="sms"), 2: view(next_channel="telegram")}
    assert texts(lines, jobs) == [("fallback", "Напоминание: MAX не доставил, отправляем по SMS 02.12 18:02")]


def test_lines_of_unknown_jobs_and_of_other_things_are_passed():
    lines = [Line(W.JOB_DELIVERED, AT, 9), Line(W.JOB_PLANNED, AT, 1), Line(W.ATTEMPT_QUEUED, AT, 1, "max"),
             Line(W.JOB_CANCELLED, AT, 1)]
    assert texts(lines, {1: view()}) == []


@pytest.mark.parametrize(("what", "final", "steps"), [
    (W.JOB_DELIVERED, True, True), (W.JOB_FAILED, True, True), (W.JOB_UNCONFIRMED, True, True),
    (W.ATTEMPT_SENT, False, True), (W.JOB_SCHEDULED, False, True), (W.ATTEMPT_NOT_REGISTERED, False, True),
    (W.JOB_PLANNED, False, False), (W.ATTEMPT_QUEUED, False, False), (W.BOOKING_CREATED, False, False),
])
def test_worth_reading_filters_before_any_query(what, final, steps):
    assert (worth_reading(what, FINAL), worth_reading(what, STEPS)) == (final, steps)


@pytest.mark.parametrize(("keys", "replaced"), [
    ([], set()),
    ([(1, "yclients")], set()),
    ([(1, "yclients"), (1, "generic"), (1, "yclients")], {0}),
    ([(1, "yclients"), (2, "yclients"), (1, "yclients"), (1, "yclients")], {0, 2}),
])
def test_a_newer_report_replaces_an_older_unsent_one_of_the_same_booking_and_target(keys, replaced):
    assert superseded(keys) == replaced


@pytest.mark.parametrize(("tries", "retry_after", "seconds"), [
    (1, None, BASE_DELAY), (2, None, 2 * BASE_DELAY), (4, None, 8 * BASE_DELAY), (7, None, 64 * BASE_DELAY),
    (1, 120.0, 120.0),  # the target's Retry-After wins
    (2, 0.0, 0.0),
])
def test_a_transient_failure_is_tried_again_later_and_later(tries, retry_after, seconds):
    assert retry_at(tries, retry_after, AT) == AT + timedelta(seconds=seconds)


def test_a_row_has_a_bounded_number_of_tries():
    assert retry_at(MAX_TRIES - 1, None, AT) is not None
    assert retry_at(MAX_TRIES, None, AT) is None
    assert retry_at(MAX_TRIES, 5.0, AT) is None


ADMIN = "Взять результаты ЭКГ.\nНе есть за 4 часа."


@pytest.mark.parametrize(("comment", "expected"), [
    (None, f"{PREFIX} доставлено"),
    ("", f"{PREFIX} доставлено"),
    (ADMIN, f"{ADMIN}\n{PREFIX} доставлено"),
    (f"{ADMIN}\n{PREFIX} отправлено", f"{ADMIN}\n{PREFIX} доставлено"),  # replaced in place
    (f"{PREFIX} отправлено\n{ADMIN}", f"{PREFIX} доставлено\n{ADMIN}"),  # wherever it is
    (f"до\n{PREFIX} отправлено\nпосле", f"до\n{PREFIX} доставлено\nпосле"),
    (f"ждём {PREFIX} в тексте", f"ждём {PREFIX} в тексте\n{PREFIX} доставлено"),  # mid-line is the admin's
])
def test_our_line_is_written_once_and_replaced_in_place(comment, expected):
    assert with_notice(comment, "  доставлено \n") == expected


@pytest.mark.parametrize("comment", [None, "", ADMIN, ADMIN + "\n", "\n" + ADMIN, "  пробелы  ", f"a {PREFIX} b"])
def test_the_administrators_text_comes_back_byte_for_byte(comment):
    written = comment
    for text in ("отправлено в MAX", "MAX не ответил, отправляем в Telegram", "доставлено в Telegram"):
        written = with_notice(written, text)
        assert written.count(f"\n{PREFIX}") + written.startswith(PREFIX) == 1
    assert without_notice(written) == (comment or "")
    assert without_notice(comment) == comment


def test_text_the_administrator_added_after_our_line_is_kept():
    assert without_notice(f"{ADMIN}\n{PREFIX} доставлено\nперезвонить") == f"{ADMIN}\nперезвонить"
    assert without_notice(f"{PREFIX} доставлено\nперезвонить") == "перезвонить"
