"""The console's Russian: every status and audit name has its words, and the ledger's English notes with UTC
times read as a person would say them, in the clinic's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.core import wording
from connector.core.model import AttemptStatus, AuditWhat, BookingState, InboundOutcome, JobKind, JobStatus
from connector.core.wording import audit_line, duration_phrase, local_time, reason_phrase, said
from connector.core.writeback import WritebackStatus

MOSCOW = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("table", "values"), [
    (wording.JOB_STATUS, JobStatus), (wording.ATTEMPT_STATUS, AttemptStatus), (wording.JOB_KIND, JobKind),
    (wording.INBOUND_OUTCOME, InboundOutcome), (wording.BOOKING_STATE, BookingState), (wording.AUDIT, AuditWhat),
    (wording.WRITEBACK, WritebackStatus),
])
def test_every_value_of_the_ledger_has_russian_words(table, values):
    for value in values:
        assert table[value.value] and table[value.value] != value.value
        assert not any("a" <= ch <= "z" for ch in table[value.value]), table[value.value]


@pytest.mark.parametrize(("status", "words"), [
    ("scheduled", "запланировано"), ("awaiting_delivery", "ждём отчёта о доставке"), ("delivered", "доставлено"),
    ("read", "прочитано"), ("failed", "не доставлено"), ("cancelled", "отменено"),
])
def test_job_statuses_as_the_issue_words_them(status, words):
    assert said(wording.JOB_STATUS, status) == words


def test_an_unknown_value_shows_as_it_is_and_nothing_shows_as_nothing():
    assert said(wording.CHANNEL, "pigeon") == "pigeon"
    assert said(wording.CHANNEL, "max") == "MAX"
    assert said(wording.JOB_STATUS, None) == "" and said(wording.JOB_STATUS, "") == ""


def test_times_are_local_with_the_year_only_when_it_is_another():
    assert local_time(datetime(2026, 12, 3, 6, 0, tzinfo=UTC), MOSCOW, NOW) == "03.12 09:00"
    assert local_time(datetime(2026, 12, 31, 22, 0, tzinfo=UTC), MOSCOW, NOW) == "01.01.2027 01:00"
    assert local_time(datetime(2026, 12, 3, 6, 0, 5, tzinfo=UTC), MOSCOW, NOW, seconds=True) == "03.12 09:00:05"


@pytest.mark.parametrize(("value", "words"), [
    (timedelta(seconds=45), "45 с"), (timedelta(minutes=5), "5 мин"), (timedelta(hours=1, minutes=30), "1 ч 30 мин"),
    (timedelta(days=2), "2 дн"), (timedelta(days=1, hours=2), "1 дн 2 ч"),
])
def test_durations(value, words):
    assert duration_phrase(value) == words


def line(what: str, detail: str | None) -> str:
    return audit_line(what, detail, zone=MOSCOW, now=NOW)


@pytest.mark.parametrize(("what", "detail", "words"), [
    ("job.planned", "reminder due 2026-12-03T06:00:00+00:00", "напоминание запланировано на 03.12 09:00"),
    ("job.planned", "confirmation due 2026-12-02T18:30:00+00:00; moved out of quiet hours 21:00-09:00 to 09:00 "
     "local", "подтверждение записи запланировано на 02.12 21:30; перенесено из тихих часов 21:00–09:00 на 09:00"),
    ("job.skipped", "reminder due 2026-12-02T19:00:00+00:00; skipped: due inside quiet hours 21:00-09:00, the visit "
     "starts before they end at 09:00 local and 2026-12-02 20:45 local, before they begin, is already past",
     "напоминание не будет отправлено: срок был 02.12 22:00; срок попал в тихие часы 21:00–09:00, а другого "
     "времени до приёма нет"),
    ("job.planned", "a note of another shape", "запланировано: a note of another shape"),
    ("job.planned", None, "запланировано"),
    ("booking.created", None, "запись создана"),
    ("booking.time_moved", "visit now at 2026-12-04T07:00:00+00:00", "приём перенесён: приём теперь 04.12 10:00"),
    ("booking.cancelled", "deleted at the source", "запись отменена: удалена в источнике"),
    ("attempt.queued", "step 1: max via sandbox", "попытка поставлена в очередь: шаг 1: MAX (sandbox)"),
    ("attempt.delivered", "telegram via sandbox reports DELIVRD",
     "доставлено: Telegram (sandbox) сообщает: DELIVRD"),
    ("attempt.read", "max via sandbox reports read", "MAX (sandbox) сообщает: прочитано"),
    ("attempt.failed", "max via sandbox", "не доставлено: MAX (sandbox)"),
    ("attempt.not_registered", "max via sandbox: not_registered (sandbox: not on max)",
     "MAX (sandbox): нет в мессенджере: sandbox: not on max"),
    # the title is left out only where the detail says the same words, not their negation
    ("job.delivered", "max via sandbox: failed", "доставлено: MAX (sandbox): не доставлено"),
    ("job.scheduled", "max via sandbox: failed; falling back to step 2 (telegram)",
     "снова в очереди: MAX (sandbox): не доставлено; переходим к шагу 2 (Telegram)"),
    ("job.failed", "sms via smsru: not_registered; no channel left",
     "не доставлено: SMS (smsru): нет в мессенджере; каналов больше нет"),
    ("job.awaiting_delivery", "max via sandbox: sent; waiting until 2026-12-02T12:05:00+00:00",
     "ждём отчёта о доставке: MAX (sandbox): отправлено; ждём до 02.12 15:05"),
    ("job.delivered", "max via wahelp: sent; the channel has no receipts, so a send counts as final",
     "доставлено: MAX (wahelp): отправлено; у канала нет отчётов о доставке: отправка окончательна"),
    ("job.read", "late receipt from step 1 (max): read; the pending fall back is withdrawn",
     "поздний отчёт по шагу 1 (MAX): прочитано; запасной шаг больше не нужен"),
    ("job.scheduled", "max via sandbox: sent_timeout, still sent after 0:00:20; falling back to step 2 (telegram); "
     "moved before quiet hours 21:00-09:00 to 20:45 local",
     "снова в очереди: MAX (sandbox): за 20 с нет отчёта о доставке (статус «отправлено»); переходим к шагу 2 "
     "(Telegram); перенесено до тихих часов 21:00–09:00, на 20:45"),
    ("job.unconfirmed", "sms via smsc: sent_timeout, still queued after 1 day, 0:00:00; no channel left; waiting for "
     "a receipt until 2026-12-03T12:00:00+00:00",
     "доставка не подтверждена: SMS (smsc): за 1 дн нет отчёта о доставке (статус «в очереди»); каналов больше нет; "
     "ждём отчёта до 03.12 15:00"),
    ("job.unconfirmed", "sms via smsc: still sent, no receipt within the provider's status window (1:00:00); "
     "no channel left, never confirmed",
     "доставка не подтверждена: SMS (smsc): всё ещё «отправлено»: провайдер не прислал отчёт за отведённое время; "
     "каналов больше нет, доставка так и не подтверждена"),
    ("job.scheduled", "max via sandbox: delivered but not read in time (0:05:00)",
     "снова в очереди: MAX (sandbox): доставлено, но не прочитано за 5 мин"),
    ("job.scheduled", "max via sandbox: queued at the deadline", "снова в очереди: MAX (sandbox): к сроку: в очереди"),
    ("job.delivered", "max via sandbox: delivered (recorded before the deadline)",
     "MAX (sandbox): доставлено (отчёт пришёл до срока)"),
    ("job.delivered", "max via sandbox: awaiting_delivery", "доставлено: MAX (sandbox): ждём отчёта о доставке"),
    ("job.scheduled", "sent at once despite quiet hours 21:00-09:00: the visit starts before they end",
     "снова в очереди: отправлено сразу, несмотря на тихие часы 21:00–09:00: приём раньше"),
    ("step.skipped", "step 1 (max): patient opted out of max", "шаг пропущен: шаг 1 (MAX): пациент отказался от MAX"),
    ("step.skipped", "step 2 (telegram): patient is not on telegram (remembered)",
     "шаг пропущен: шаг 2 (Telegram): пациента нет в Telegram (известно по прошлым попыткам)"),
    ("step.skipped", "step 3 (whatsapp): provider wahelp has no address for the patient",
     "шаг пропущен: шаг 3 (WhatsApp): у провайдера wahelp нет адреса пациента"),
    ("step.skipped", "step 1 (max): warm-up cap of sandbox reached",
     "шаг пропущен: шаг 1 (MAX): исчерпан дневной предел прогрева sandbox"),
    ("job.recipient", "recipient changed: patient #3 → patient #4", "сменился получатель: получатель сменился: "
     "пациент №3 → пациент №4"),
    ("job.recipient", "recipient changed: no patient → patient #4", "сменился получатель: получатель сменился: "
     "нет пациента → пациент №4"),
    ("job.failed", "could not be prepared: boom", "не доставлено: не удалось подготовить: boom"),
    ("job.failed", "the message could not be rendered: no such field",
     "не доставлено: текст не удалось составить: no such field"),
    ("job.scheduled", "released: the worker's pass failed before its send (OperationalError); it goes with the next "
     "pass", "снова в очереди: возвращено в очередь: проход воркера сорвался до отправки (OperationalError); уйдёт "
     "со следующим проходом"),
    ("attempt.withdrawn", "step 1 (max): the call never began (its worker stopped or its pass failed first); "
     "nothing went out", "попытка отозвана: шаг 1 (MAX): вызов не начинался, ничего не ушло; ничего не ушло"),
    ("attempt.unknown", "worker stopped mid-send; on_unknown=wait: no other message; awaiting receipts for it",
     "исход отправки неизвестен: воркер остановился во время отправки; другое сообщение не отправляем; ждём "
     "отчётов по нему"),
    ("attempt.expired", "sent_timeout: no delivery receipt in time",
     "нет отчёта о доставке вовремя: отчёт о доставке не пришёл вовремя"),
    ("job.cancelled", "visit moved", "отменено: приём перенесён"),
    ("inbound.duplicate", "nothing changed", "повтор события: ничего не изменилось"),
    ("job.skipped", "no phone number for the patient", "не будет отправлено: у пациента нет телефона"),
    ("staff.resend", "Анна Петрова: с шага 1", "отправлено ещё раз по просьбе сотрудника: Анна Петрова: с шага 1"),
    ("job.deferred", "until 2026-12-02T13:00:00+00:00 then", "отложено: until 02.12 16:00 then"),
    ("job.deferred", "until 2026-12-02T13:00:00Z or 2026-12-02 13:30", "отложено: until 02.12 16:00 or 02.12 16:30"),
    ("attempt.failed", "max via sandbox: failed (sandbox: simulated failure)",
     "MAX (sandbox): не доставлено: sandbox: simulated failure"),
    ("attempt.sent", "sms via smsru: sent after 3 tries (a call's answer was lost: timeout)",
     "SMS (smsru): отправлено с 3-й попытки (ответ на один из вызовов потерялся: timeout)"),
    ("a.new_line", "something", "a.new_line: something"),
])
def test_audit_lines_read_as_a_person_would_say_them(what, detail, words):
    assert line(what, detail) == words


def test_reasons_and_errors_are_worded_clause_by_clause():
    assert reason_phrase(None, zone=MOSCOW, now=NOW) == ""
    assert reason_phrase("sent_timeout", zone=MOSCOW, now=NOW) == "нет отчёта о доставке вовремя"
    assert reason_phrase("never started: nothing went to the provider", zone=MOSCOW, now=NOW) == \
        "не начиналась: провайдеру ничего не ушло"
    assert reason_phrase("HTTP 500 from the provider", zone=MOSCOW, now=NOW) == "HTTP 500 from the provider"


@pytest.mark.parametrize(("channel", "memory", "words"), [
    ("max", {"not_registered_until": NOW + timedelta(days=30)},
     "MAX: нет в мессенджере, не пробуем до 01.01.2027 15:00"),
    ("telegram", {"opted_out": True}, "Telegram: пациент отказался от сообщений"),
    ("sms", {"last_delivered_at": NOW - timedelta(hours=1)}, "SMS: последняя доставка 02.12 14:00"),
    ("whatsapp", {"opted_out": True, "last_delivered_at": NOW - timedelta(days=1)},
     "WhatsApp: пациент отказался от сообщений, последняя доставка 01.12 15:00"),
    ("max", {"not_registered_until": NOW - timedelta(seconds=1)}, None),  # the absence has run out: tried again
    ("max", {}, None),
])
def test_what_the_cascade_knows_of_a_patient_on_a_channel(channel, memory, words):
    known = {"opted_out": False, "not_registered_until": None, "last_delivered_at": None, **memory}
    assert wording.channel_memory(channel, zone=MOSCOW, now=NOW, **known) == words
