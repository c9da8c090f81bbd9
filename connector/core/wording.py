"""The console's Russian: the ledger's statuses, kinds, channels, outcomes and audit lines as a person would say
them, with times in the clinic's zone («напоминание запланировано на 03.12 09:00», not
«reminder due 2026-12-03T09:00:00+00:00»).

The use cases write audit details in English with UTC ISO times (the trail is also read by engineers and by
`grep`). Where a line's detail has a known shape it is worded from its parts; an unknown shape keeps its text,
with its ISO times shown in the clinic's zone, so a new message reads imperfectly rather than not at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from connector.core.model import AuditWhat

__all__ = [
    "ATTEMPT_STATUS",
    "AUDIT",
    "BOOKING_STATE",
    "CHANNEL",
    "INBOUND_OUTCOME",
    "INBOUND_REASON",
    "JOB_KIND",
    "JOB_STATUS",
    "WRITEBACK",
    "audit_line",
    "duration_phrase",
    "local_time",
    "reason_phrase",
    "said",
]

JOB_STATUS = {
    "scheduled": "запланировано",
    "sending": "отправляется",
    "awaiting_delivery": "ждём отчёта о доставке",
    "delivered": "доставлено",
    "read": "прочитано",
    "unconfirmed": "доставка не подтверждена",
    "failed": "не доставлено",
    "expired": "не успели до приёма",
    "cancelled": "отменено",
    "skipped": "не отправлялось",
}

ATTEMPT_STATUS = {
    "queued": "в очереди",
    "sent": "отправлено",
    "delivered": "доставлено",
    "read": "прочитано",
    "failed": "не доставлено",
    "not_registered": "нет в мессенджере",
    "rejected": "отклонено провайдером",
    "expired": "нет отчёта вовремя",
    "withdrawn": "отозвано до отправки",
}

JOB_KIND = {
    "confirmation": "подтверждение записи",
    "reminder": "напоминание",
    "reschedule": "сообщение о переносе",
    "cancellation": "сообщение об отмене",
    "results_ready": "сообщение о готовых результатах",
    "recall": "приглашение на повторный приём",
}

CHANNEL = {
    "max": "MAX",
    "telegram": "Telegram",
    "whatsapp": "WhatsApp",
    "sms": "SMS",
    "viber": "Viber",
    "vk": "ВКонтакте",
}

INBOUND_OUTCOME = {
    "pending": "ждёт обработки",
    "applied": "применено",
    "duplicate": "повтор",
    "stale": "устарело",
    "ignored": "без последствий",
    "held": "отложено",
    "rejected": "отклонено",
}

INBOUND_REASON = {
    "unknown_source": "неизвестный источник",
    "unknown_tenant": "неизвестная клиника",
    "unknown_provider": "неизвестный провайдер",
    "unauthorized": "неверный токен или подпись",
    "body_too_large": "слишком большое тело",
    "malformed_json": "тело не JSON",
    "malformed_form": "тело не форма",
    "invalid_payload": "в теле не хватает полей или они неверны",
    "unprocessable": "не удалось обработать",
    "fetch_failed": "не удалось получить запись из CRM",
}

BOOKING_STATE = {
    "active": "активна",
    "cancelled": "отменена",
    "attended": "пациент пришёл",
    "no_show": "пациент не пришёл",
}

# Every line of the trail by its name (a test holds this complete for AuditWhat).
AUDIT = {
    "booking.created": "запись создана",
    "booking.updated": "запись изменена",
    "booking.time_moved": "приём перенесён",
    "booking.active": "запись снова активна",
    "booking.cancelled": "запись отменена",
    "booking.attended": "пациент пришёл",
    "booking.no_show": "пациент не пришёл",
    "inbound.pending": "событие ждёт обработки",
    "inbound.applied": "событие применено",
    "inbound.duplicate": "повтор события",
    "inbound.stale": "устаревшее событие",
    "inbound.ignored": "событие без последствий",
    "inbound.held": "отчёт отложен",
    "inbound.rejected": "событие отклонено",
    "job.planned": "запланировано",
    "job.deferred": "отложено",
    "job.recipient": "сменился получатель",
    "job.scheduled": "снова в очереди",
    "job.sending": "отправляется",
    "job.awaiting_delivery": "ждём отчёта о доставке",
    "job.delivered": "доставлено",
    "job.read": "прочитано",
    "job.unconfirmed": "доставка не подтверждена",
    "job.failed": "не доставлено",
    "job.expired": "не успели до приёма",
    "job.cancelled": "отменено",
    "job.skipped": "не будет отправлено",
    "step.skipped": "шаг пропущен",
    "attempt.queued": "попытка поставлена в очередь",
    "attempt.sent": "отправлено провайдеру",
    "attempt.delivered": "доставлено",
    "attempt.read": "прочитано",
    "attempt.failed": "не доставлено",
    "attempt.not_registered": "пациента нет в мессенджере",
    "attempt.rejected": "провайдер отклонил",
    "attempt.expired": "нет отчёта о доставке вовремя",
    "attempt.unknown": "исход отправки неизвестен",
    "attempt.withdrawn": "попытка отозвана",
    "staff.resend": "отправлено ещё раз по просьбе сотрудника",
    "staff.cancel": "отменено сотрудником",
    "staff.send_now": "отправлено сейчас по просьбе сотрудника",
    "staff.replay": "событие обработано заново по просьбе сотрудника",
    "staff.phone_shown": "сотрудник открыл телефон пациента",
    "staff.retry_writeback": "запись в CRM повторена по просьбе сотрудника",
    "staff.opt_outs": "сотрудник записал, куда пациент просит не писать",
}

WRITEBACK = {
    "pending": "ждёт записи в CRM",
    "sending": "записывается",
    "sent": "записано в CRM",
    "failed": "не записано в CRM",
    "replaced": "заменено более новым",
}


def said(table: Mapping[str, str], value: str | None) -> str:
    """`value` in Russian from `table`; an unknown value as it is (a new status shows, untranslated)."""
    if not value:
        return ""
    return table.get(value, value)


def local_time(moment: datetime, zone: ZoneInfo, now: datetime, *, seconds: bool = False) -> str:
    """«03.12 09:00» in the clinic's zone; with the year («03.01.2027 09:00») when it is not this one; with the
    seconds («03.12 09:00:05») where several things happen in one minute (a cascade's steps)."""
    local, today = moment.astimezone(zone), now.astimezone(zone)
    clock = "%H:%M:%S" if seconds else "%H:%M"
    if local.year == today.year:
        return local.strftime(f"%d.%m {clock}")
    return local.strftime(f"%d.%m.%Y {clock}")


def channel_memory(channel: str, *, opted_out: bool, not_registered_until: datetime | None,
                   last_delivered_at: datetime | None, zone: ZoneInfo, now: datetime) -> str | None:
    """What the cascade knows of a patient on one channel, as support reads it («MAX: нет в мессенджере, не
    пробуем до 04.01.2027 12:00»); None when it knows nothing worth saying."""
    parts = []
    if opted_out:
        parts.append("пациент отказался от сообщений")
    if not_registered_until is not None and not_registered_until > now:
        parts.append(f"нет в мессенджере, не пробуем до {local_time(not_registered_until, zone, now)}")
    if last_delivered_at is not None:
        parts.append(f"последняя доставка {local_time(last_delivered_at, zone, now)}")
    return f"{said(CHANNEL, channel)}: {', '.join(parts)}" if parts else None


def duration_phrase(value: timedelta) -> str:
    """«5 мин», «1 ч 30 мин», «2 дн»; «45 с» under a minute."""
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{seconds} с"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days} дн" if days else "", f"{hours} ч" if hours else "", f"{minutes} мин" if minutes else ""]
    return " ".join(part for part in parts if part)


_ISO = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[+-]\d{2}:\d{2}|Z)?"
_ISO_RE = re.compile(_ISO)
_DURATION = r"(?:\d+ days?, )?\d+:\d{2}:\d{2}"
_DURATION_RE = re.compile(r"^(?:(\d+) days?, )?(\d+):(\d{2}):(\d{2})$")

_PLANNED = re.compile(rf"^(?P<kind>\w+) due (?P<at>{_ISO})(?:; (?P<rest>.*))?$")


def audit_line(what: str, detail: str | None, *, zone: ZoneInfo, now: datetime) -> str:
    """One line of the trail as a sentence: what happened, and why, worded."""
    title = said(AUDIT, what)
    if what in (AuditWhat.JOB_PLANNED, AuditWhat.JOB_SKIPPED) and detail:
        found = _PLANNED.match(detail)
        if found is not None:
            when = local_time(_parse_iso(found["at"]), zone, now)
            verb = "запланировано на" if what == AuditWhat.JOB_PLANNED else "не будет отправлено: срок был"
            head = f"{said(JOB_KIND, found['kind'])} {verb} {when}"
            rest = found["rest"]
            return f"{head}; {reason_phrase(rest, zone=zone, now=now)}" if rest else head
    worded = reason_phrase(detail, zone=zone, now=now)
    if not worded:
        return title
    # «MAX (sandbox): не доставлено: …» already says what happened: «не доставлено: » before it would say it twice
    # (and «пациента нет в мессенджере» before «MAX (sandbox): нет в мессенджере»: the status is the same word)
    status = ATTEMPT_STATUS.get(what.rpartition(".")[2]) if what.startswith("attempt.") else None
    said_already = any(re.search(rf"(?:^|: ){re.escape(words)}(?=$|[;:( ])", worded)
                       for words in (title, status) if words)
    return worded if said_already else f"{title}: {worded}"


def reason_phrase(text: str | None, *, zone: ZoneInfo, now: datetime) -> str:
    """A reason or a note of the ledger (a job's `status_reason`, an audit detail, an attempt's error) in
    Russian, clause by clause; a clause of unknown shape is kept, its ISO times in the clinic's zone."""
    if not text:
        return ""
    return "; ".join(_clause(part, zone, now) for part in text.split("; "))


def _clause(text: str, zone: ZoneInfo, now: datetime) -> str:
    for pattern, word in _CLAUSES:
        found = pattern.match(text)
        if found is not None:
            return word(found, _Context(zone, now))
    return _ISO_RE.sub(lambda m: local_time(_parse_iso(m.group(0)), zone, now), text)


class _Context:
    """What a clause's wording needs besides its own parts."""

    def __init__(self, zone: ZoneInfo, now: datetime):
        self.zone, self.now = zone, now

    def at(self, iso: str) -> str:
        return local_time(_parse_iso(iso), self.zone, self.now)

    def clause(self, text: str) -> str:
        return _clause(text, self.zone, self.now)


def _parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:  # the ledger writes aware times; a bare one is UTC, as the ledger stores them
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    return moment


def _channel(name: str) -> str:
    return said(CHANNEL, name)


def _duration(text: str) -> str:
    found = _DURATION_RE.match(text)
    assert found is not None  # only called on text the clause's pattern matched as a duration
    days, hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return duration_phrase(timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds))


def _status(text: str) -> str:
    return ATTEMPT_STATUS.get(text, JOB_STATUS.get(text, text))


_Word = Callable[[re.Match[str], _Context], str]


def _fixed(phrase: str) -> _Word:
    return lambda _found, _context: phrase


_FIXED = {
    # the cascade (connector.core.cascade)
    "no channel left": "каналов больше нет",
    "no channel left, never confirmed": "каналов больше нет, доставка так и не подтверждена",
    "the step waits until read": "шаг ждёт прочтения",
    "the channel has no receipts, so a send counts as final": "у канала нет отчётов о доставке: отправка окончательна",
    "the pending fall back is withdrawn": "запасной шаг больше не нужен",
    "the job is done, whatever the send in flight returns": "сообщение доставлено, что бы ни ответила отправка",
    "the job had failed, the receipt wins": "сообщение считалось недоставленным, отчёт это исправил",
    "the job was unconfirmed, the receipt confirms it": "отчёт подтвердил доставку",
    "no moment outside the quiet hours before the visit: the next step goes now":
        "до приёма нет времени вне тихих часов: следующий шаг уходит сразу",
    # preparation (connector.core.preparation) and the worker
    "the tenant is no longer configured": "клиника больше не настроена",
    "no phone number for the patient": "у пациента нет телефона",
    "no channel left to try": "не осталось каналов",
    "sent_timeout": "нет отчёта о доставке вовремя",
    "sent_timeout: no delivery receipt in time": "отчёт о доставке не пришёл вовремя",
    "never started: nothing went to the provider": "не начиналась: провайдеру ничего не ушло",
    "worker stopped mid-send": "воркер остановился во время отправки",
    "on_unknown=wait: no other message": "другое сообщение не отправляем",
    "awaiting receipts for it": "ждём отчётов по нему",
    "on_unknown=resend: sent once more on the same step": "отправляем ещё раз тем же каналом",
    "moving to the next channel": "переходим к следующему каналу",
    # planning (connector.core.planning) and the intake (connector.core.intake)
    "booking cancelled": "запись отменена",
    "patient did not come": "пациент не пришёл",
    "patient attended": "пациент пришёл",
    "no longer planned": "больше не запланировано",
    "visit moved": "приём перенесён",
    "superseded by a later change": "заменено более поздним изменением",
    "booking active again": "запись снова активна",
    "deleted at the source": "удалена в источнике",
    "this webhook id was already received": "этот вебхук уже получен",
    "older than the version we hold": "старше версии, которая у нас есть",
    "delete for a booking we never held": "удаление записи, которой у нас не было",
    "already cancelled": "уже отменена",
    "an update that carries no booking": "изменение без записи",
    "nothing changed": "ничего не изменилось",
}


def _via(found: re.Match[str], context: _Context) -> str:
    rest = found["rest"]
    where = f"{_channel(found['channel'])} ({found['provider']})"
    return f"{where}: {context.clause(rest)}" if rest else where


def _quiet(found: re.Match[str], _context: _Context) -> str:
    window = found["window"].replace("-", "–")
    if found["how"] == "out of":
        return f"перенесено из тихих часов {window} на {found['to']}"
    return f"перенесено до тихих часов {window}, на {found['to']}"


_CLAUSES: list[tuple[re.Pattern[str], _Word]] = [
    (re.compile(f"^{re.escape(english)}$"), _fixed(russian)) for english, russian in _FIXED.items()
] + [
    # «max via sandbox: delivered», «late receipt from step 2 (telegram): read»
    (re.compile(r"^(?P<channel>\w+) via (?P<provider>[\w.-]+)(?:: (?P<rest>.*))?$"), _via),
    (re.compile(r"^late receipt from step (?P<n>\d+) \((?P<channel>\w+)\): (?P<rest>.*)$"),
     lambda f, c: f"поздний отчёт по шагу {f['n']} ({_channel(f['channel'])}): {c.clause(f['rest'])}"),
    (re.compile(r"^(?P<channel>\w+) via (?P<provider>[\w.-]+) reports (?P<status>.+)$"),
     lambda f, c: f"{_channel(f['channel'])} ({f['provider']}) сообщает: {_status(f['status'])}"),
    (re.compile(r"^step (?P<n>\d+): (?P<channel>\w+) via (?P<provider>[\w.-]+)$"),
     lambda f, c: f"шаг {f['n']}: {_channel(f['channel'])} ({f['provider']})"),
    (re.compile(r"^step (?P<n>\d+) \((?P<channel>\w+)\): (?P<rest>.*)$"),
     lambda f, c: f"шаг {f['n']} ({_channel(f['channel'])}): {c.clause(f['rest'])}"),
    (re.compile(r"^falling back to step (?P<n>\d+) \((?P<channel>\w+)\)$"),
     lambda f, c: f"переходим к шагу {f['n']} ({_channel(f['channel'])})"),
    (re.compile(rf"^waiting until (?P<at>{_ISO})$"), lambda f, c: f"ждём до {c.at(f['at'])}"),
    (re.compile(rf"^waiting for a receipt until (?P<at>{_ISO})$"),
     lambda f, c: f"ждём отчёта до {c.at(f['at'])}"),
    (re.compile(rf"^visit now at (?P<at>{_ISO})$"), lambda f, c: f"приём теперь {c.at(f['at'])}"),
    (re.compile(rf"^sent_timeout, still (?P<status>\w+) after (?P<d>{_DURATION})$"),
     lambda f, c: f"за {_duration(f['d'])} нет отчёта о доставке (статус «{_status(f['status'])}»)"),
    (re.compile(rf"^delivered but not read in time \((?P<d>{_DURATION})\)$"),
     lambda f, c: f"доставлено, но не прочитано за {_duration(f['d'])}"),
    (re.compile(r"^(?P<status>\w+) at the deadline$"), lambda f, c: f"к сроку: {_status(f['status'])}"),
    (re.compile(r"^(?P<status>\w+) \(recorded before the deadline\)$"),
     lambda f, c: f"{_status(f['status'])} (отчёт пришёл до срока)"),
    (re.compile(r"^still (?P<status>\w+), no receipt within the provider's status window.*$"),
     lambda f, c: f"всё ещё «{_status(f['status'])}»: провайдер не прислал отчёт за отведённое время"),
    (re.compile(r"^moved (?P<how>out of|before) quiet hours (?P<window>[\d:-]+) to (?P<to>\d{2}:\d{2}) local$"),
     _quiet),
    (re.compile(r"^sent at once despite quiet hours (?P<window>[\d:-]+): the visit starts before they end$"),
     lambda f, c: f"отправлено сразу, несмотря на тихие часы {f['window'].replace('-', '–')}: приём раньше"),
    (re.compile(r"^skipped: due inside quiet hours (?P<window>[\d:-]+).*$"),
     lambda f, c: f"срок попал в тихие часы {f['window'].replace('-', '–')}, а другого времени до приёма нет"),
    (re.compile(r"^patient opted out of (?P<channel>\w+)$"),
     lambda f, c: f"пациент отказался от {_channel(f['channel'])}"),
    (re.compile(r"^patient is not on (?P<channel>\w+) \(remembered\)$"),
     lambda f, c: f"пациента нет в {_channel(f['channel'])} (известно по прошлым попыткам)"),
    (re.compile(r"^provider (?P<provider>[\w.-]+) has no address for the patient$"),
     lambda f, c: f"у провайдера {f['provider']} нет адреса пациента"),
    (re.compile(r"^warm-up cap of (?P<provider>[\w.-]+) reached$"),
     lambda f, c: f"исчерпан дневной предел прогрева {f['provider']}"),
    (re.compile(r"^recipient changed: (?P<before>.+) → (?P<after>.+)$"),
     lambda f, c: f"получатель сменился: {_who(f['before'])} → {_who(f['after'])}"),
    (re.compile(r"^could not be prepared: (?P<why>.*)$"), lambda f, c: f"не удалось подготовить: {f['why']}"),
    (re.compile(r"^the message could not be rendered: (?P<why>.*)$"),
     lambda f, c: f"текст не удалось составить: {f['why']}"),
    (re.compile(r"^released: the worker's pass failed before its send \((?P<why>.*)\)$"),
     lambda f, c: f"возвращено в очередь: проход воркера сорвался до отправки ({f['why']})"),
    (re.compile(r"^it goes with the next pass$"), _fixed("уйдёт со следующим проходом")),
    (re.compile(r"^the call never began .*$"), _fixed("вызов не начинался, ничего не ушло")),
    (re.compile(r"^nothing went out$"), _fixed("ничего не ушло")),
    # a status, as a send's answer says it (connector.usecases.sending.attempt_detail) and the cascade's notes end
    (re.compile(r"^(?P<status>[a-z_]+)(?: after (?P<tries>\d+) tries)?(?: \(a call's answer was lost: "
                r"(?P<lost>[^)]*)\))?(?: \((?P<error>.*)\))?$"), lambda f, c: _answer(f)),
]


def _answer(found: re.Match[str]) -> str:
    tries = f" с {found['tries']}-й попытки" if found["tries"] else ""
    lost = f" (ответ на один из вызовов потерялся: {found['lost']})" if found["lost"] else ""
    error = f": {found['error']}" if found["error"] else ""
    return f"{_status(found['status'])}{tries}{lost}{error}"


def _who(text: str) -> str:
    if text == "no patient":
        return "нет пациента"
    return text.replace("patient #", "пациент №")
