"""The Russian grammar of patient texts: greeting, name parts, date, time and «когда» phrases, the specialty."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date

from connector.core.model import Patient, Sex

__all__ = [
    "PatientNames",
    "clean",
    "date_phrase",
    "greeting",
    "patient_names",
    "require_aware",
    "specialty",
    "time_phrase",
    "when_phrase",
    "zone",
]

# Babel has the month names but only the nominative weekday («среда»); after «в» Russian needs the
# accusative, and «вторник» takes «во» for ease of pronunciation.
_WEEKDAY_ACCUSATIVE = (
    "в понедельник",
    "во вторник",
    "в среду",
    "в четверг",
    "в пятницу",
    "в субботу",
    "в воскресенье",
)


@dataclass(frozen=True)
class PatientNames:
    """The patient's name parts as templates see them: each tidied, "" when unknown."""

    first_name: str = ""
    patronymic: str = ""
    last_name: str = ""


def _tidy_name(value: str | None) -> str:
    text = " ".join((value or "").split())
    # Sources often shout («ИВАН») or whisper («иван»); a mixed-case name is left as the clinic typed it.
    if text.islower() or text.isupper():
        text = text.title()
    return text


def patient_names(patient: Patient) -> PatientNames:
    """The patient's name parts, each tidied."""
    return PatientNames(
        first_name=_tidy_name(patient.first_name),
        patronymic=_tidy_name(patient.patronymic),
        last_name=_tidy_name(patient.last_name),
    )


def greeting(patient: Patient) -> str:
    """«Уважаемый Иван Петрович», «Уважаемая Елена», «Здравствуйте, Иван Петрович» or «Здравствуйте».

    The surname is never used: addressing a patient by it reads as cold and bureaucratic.
    """
    names = patient_names(patient)
    if not names.first_name:
        return "Здравствуйте"
    name = f"{names.first_name} {names.patronymic}".strip()
    if patient.sex is Sex.MALE:
        return f"Уважаемый {name}"
    if patient.sex is Sex.FEMALE:
        return f"Уважаемая {name}"
    # Without the sex we cannot agree «Уважаемый/Уважаемая»; a wrong guess offends more than a neutral hello.
    return f"Здравствуйте, {name}"


def zone(name: str) -> ZoneInfo:
    """The zone named `name`; ValueError when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone: {name!r}") from exc


def require_aware(value: datetime, what: str) -> None:
    """ValueError for a naive datetime: a local date phrase needs to know which zone the instant is in."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value!r}")


def date_phrase(day: date, today: date) -> str:
    """«3 декабря», with the year («3 января 2027 г.») when it is not this one."""
    if day.year == today.year:
        return format_date(day, "d MMMM", locale="ru")  # «3 декабря»
    # Not Babel's "long" format: it puts a narrow no-break space before «г.», which some SMS gateways and
    # older phones show as a box.
    return format_date(day, "d MMMM y 'г'.", locale="ru")  # «3 января 2027 г.»


def time_phrase(moment: datetime) -> str:
    """«9:00», «10:00»: the 24-hour clock, no leading zero."""
    return f"{moment.hour}:{moment.minute:02d}"


def when_phrase(starts_at: datetime, *, now: datetime, tz: str) -> str:
    """«сегодня, 3 декабря, в 10:00», «завтра, …» or «в среду, 3 декабря, в 10:00», in zone `tz`.

    «Сегодня» and «завтра» compare local calendar dates, not UTC ones: 22:30Z on 2 December is already
    3 December in Moscow.
    """
    require_aware(starts_at, "starts_at")
    require_aware(now, "now")
    local_zone = zone(tz)
    local = starts_at.astimezone(local_zone)
    today = now.astimezone(local_zone).date()
    if local.date() == today:
        day = "сегодня"
    elif local.date() == today + timedelta(days=1):
        day = "завтра"
    else:
        day = _WEEKDAY_ACCUSATIVE[local.weekday()]
    return f"{day}, {date_phrase(local.date(), today)}, в {time_phrase(local)}"


def specialty(value: str | None) -> str:
    """The doctor's specialty as it reads mid-sentence, "" when unknown."""
    text = clean(value)
    # Mid-sentence: «Вас ждёт кардиолог», so «Кардиолог» loses its capital; «МРТ-диагност» keeps it.
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        text = text[0].lower() + text[1:]
    return text


def clean(value: str | None) -> str:
    """A clinic-supplied value with its whitespace collapsed, "" for None."""
    return " ".join((value or "").split())
