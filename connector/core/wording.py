"""The words patients read: renders each notification kind as a short, warm, formal Russian text.

Built-in templates cover every `JobKind`; a tenant may replace any of them with its own Jinja template
(plain text, sandboxed). Templates see a small context of ready-made phrases: see `CONTEXT_NAMES`.
Dates are phrased in the visit's local zone relative to a `now` the caller passes in; nothing here reads
the clock or does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date
from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from connector.core.model import BookingFacts, JobKind, Patient, Sex

__all__ = [
    "CONTEXT_NAMES",
    "PatientNames",
    "WordingError",
    "build_context",
    "greeting",
    "render_message",
    "validate_template",
    "when_phrase",
]


class WordingError(ValueError):
    """A message template is malformed, unsafe, refers to unknown names, or renders to nothing.

    Not a jinja2.TemplateError: callers catch this (or ValueError) alone, so every Jinja error is wrapped here.
    """


# The names a template may use; `validate_template` rejects anything else, so a typo in a tenant's
# override fails at start-up rather than in front of a patient.
CONTEXT_NAMES = frozenset(
    {
        "greeting",
        "patient",
        "doctor",
        "specialty",
        "services",
        "when",
        "time",
        "date",
        "address",
        "clinic",
        "preparation",
        "kind",
    }
)

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


def _names(patient: Patient) -> PatientNames:
    return PatientNames(
        first_name=_tidy_name(patient.first_name),
        patronymic=_tidy_name(patient.patronymic),
        last_name=_tidy_name(patient.last_name),
    )


def greeting(patient: Patient) -> str:
    """«Уважаемый Иван Петрович», «Уважаемая Елена», «Здравствуйте, Иван Петрович» or «Здравствуйте».

    The surname is never used: addressing a patient by it reads as cold and bureaucratic.
    """
    names = _names(patient)
    if not names.first_name:
        return "Здравствуйте"
    name = f"{names.first_name} {names.patronymic}".strip()
    if patient.sex is Sex.MALE:
        return f"Уважаемый {name}"
    if patient.sex is Sex.FEMALE:
        return f"Уважаемая {name}"
    # Without the sex we cannot agree «Уважаемый/Уважаемая»; a wrong guess offends more than a neutral hello.
    return f"Здравствуйте, {name}"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone: {name!r}") from exc


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value!r}")


def _date_phrase(day: date, today: date) -> str:
    if day.year == today.year:
        return format_date(day, "d MMMM", locale="ru")  # «3 декабря»
    # Not Babel's "long" format: it puts a narrow no-break space before «г.», which some SMS gateways and
    # older phones show as a box.
    return format_date(day, "d MMMM y 'г'.", locale="ru")  # «3 января 2027 г.»


def _time_phrase(moment: datetime) -> str:
    return f"{moment.hour}:{moment.minute:02d}"  # 24 h, «9:00», «10:00»


def when_phrase(starts_at: datetime, *, now: datetime, tz: str) -> str:
    """«сегодня, 3 декабря, в 10:00», «завтра, …» or «в среду, 3 декабря, в 10:00», in zone `tz`.

    «Сегодня» and «завтра» compare local calendar dates, not UTC ones: 22:30Z on 2 December is already
    3 December in Moscow.
    """
    _require_aware(starts_at, "starts_at")
    _require_aware(now, "now")
    zone = _zone(tz)
    local = starts_at.astimezone(zone)
    today = now.astimezone(zone).date()
    if local.date() == today:
        day = "сегодня"
    elif local.date() == today + timedelta(days=1):
        day = "завтра"
    else:
        day = _WEEKDAY_ACCUSATIVE[local.weekday()]
    return f"{day}, {_date_phrase(local.date(), today)}, в {_time_phrase(local)}"


def _specialty(value: str | None) -> str:
    text = " ".join((value or "").split())
    # Mid-sentence: «Вас ждёт кардиолог», so «Кардиолог» loses its capital; «МРТ-диагност» keeps it.
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        text = text[0].lower() + text[1:]
    return text


def _clean(value: str | None) -> str:
    return " ".join((value or "").split())


def build_context(
    kind: JobKind,
    facts: BookingFacts,
    *,
    now: datetime,
    tz: str,
    clinic_name: str | None = None,
    address: str | None = None,
) -> dict[str, object]:
    """The values a template sees, keyed by `CONTEXT_NAMES`; an unknown value is "", never None."""
    _require_aware(now, "now")
    zone_name = facts.timezone or tz
    local = facts.starts_at.astimezone(_zone(zone_name))
    today = now.astimezone(_zone(zone_name)).date()
    services = ", ".join(s for s in (_clean(x) for x in facts.services) if s)
    return {
        "greeting": greeting(facts.patient),
        "patient": _names(facts.patient),
        "doctor": _clean(facts.doctor_name),
        "specialty": _specialty(facts.doctor_specialty),
        "services": services,
        "when": when_phrase(facts.starts_at, now=now, tz=zone_name),
        "time": _time_phrase(local),
        "date": _date_phrase(local.date(), today),
        # The branch's own address from the source beats the tenant's general one.
        "address": _clean(facts.address) or _clean(address),
        "clinic": _clean(clinic_name),
        "preparation": _clean(facts.preparation),
        "kind": kind.value,
    }


def _sentence(value: object) -> str:
    """Ends a clinic-supplied phrase with a full stop unless it already ends a sentence."""
    text = str(value).strip()
    if text and text[-1] not in ".!?…":
        text += "."
    return text


# Shared fragments of the built-in texts. Each starts with its own space, so an absent part leaves
# nothing behind; the output is still normalised in `_tidy`.
_SERVICES = "{% if services %} ({{ services }}){% endif %}"
_RECEIVES = (
    "{% if doctor or specialty %} Вас примет {{ specialty or 'доктор' }}"
    "{% if doctor %} {{ doctor }}{% endif %}.{% endif %}"
)
_ADDRESS = "{% if address %} Адрес: {{ address|sentence }}{% endif %}"
_PREPARATION = "{% if preparation %} Подготовка: {{ preparation|sentence }}{% endif %}"
_CLOSING = "{% if clinic %} С уважением, {{ clinic }}{% endif %}"

_BUILT_IN: dict[JobKind, str] = {
    JobKind.CONFIRMATION: (
        "{{ greeting }}! Вы записаны на приём {{ when }}"
        + _SERVICES
        + "."
        + _RECEIVES
        + _ADDRESS
        + _PREPARATION
        + _CLOSING
    ),
    JobKind.REMINDER: (
        "{{ greeting }}! "
        "{% if doctor or specialty %}"
        "Напоминаем: {{ when }} Вас ждёт {{ specialty or 'доктор' }}{% if doctor %} {{ doctor }}{% endif %}"
        "{% else %}"
        "Напоминаем о Вашем приёме {{ when }}"
        "{% endif %}" + _SERVICES + "." + _ADDRESS + _PREPARATION + _CLOSING
    ),
    JobKind.RESCHEDULE: (
        "{{ greeting }}! Ваш приём перенесён: теперь он состоится {{ when }}"
        + _SERVICES
        + "."
        + _RECEIVES
        + _ADDRESS
        + _PREPARATION
        + " Если новое время Вам не подходит, пожалуйста, свяжитесь с клиникой."
        + _CLOSING
    ),
    JobKind.CANCELLATION: (
        "{{ greeting }}! Ваш приём {{ when }}" + _SERVICES + " отменён."
        " Чтобы записаться снова, свяжитесь с клиникой." + _CLOSING
    ),
    JobKind.RESULTS_READY: (
        "{{ greeting }}! Результаты Ваших исследований готовы" + _SERVICES + "."
        " Чтобы узнать их, свяжитесь с клиникой." + _CLOSING
    ),
    JobKind.RECALL: (
        "{{ greeting }}! Приглашаем Вас на профилактический осмотр: регулярные визиты помогают"
        " сохранить здоровье. Чтобы записаться, свяжитесь с клиникой." + _CLOSING
    ),
}


def _environment() -> ImmutableSandboxedEnvironment:
    # Plain text, not HTML: escaping would turn «"» into «&#34;» in an SMS. The sandbox (immutable, so a
    # template cannot alter the values either) and StrictUndefined make a tenant's mistake or mischief
    # an error instead of a silently blank or leaking message.
    env = ImmutableSandboxedEnvironment(
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["sentence"] = _sentence
    return env


_ENV = _environment()


def _unsafe_attributes(tree: nodes.Template) -> list[str]:
    """Underscore attributes named anywhere in the template, taken or not at render time."""
    found = [node.attr for node in tree.find_all(nodes.Getattr) if node.attr.startswith("_")]
    for node in tree.find_all(nodes.Getitem):
        if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            if node.arg.value.startswith("_"):
                found.append(node.arg.value)
    return found


@lru_cache(maxsize=256)
def _compile(source: str) -> Template:
    """Parses and checks a template once; raises WordingError naming what is wrong."""
    try:
        tree = _ENV.parse(source)
        unsafe = _unsafe_attributes(tree)
        if unsafe:
            raise WordingError(f"template uses private attributes, not allowed: {', '.join(sorted(set(unsafe)))}")
        unknown = meta.find_undeclared_variables(tree) - CONTEXT_NAMES - set(_ENV.globals)
        if unknown:
            raise WordingError(
                f"template uses unknown names: {', '.join(sorted(unknown))};"
                f" available: {', '.join(sorted(CONTEXT_NAMES))}"
            )
        return _ENV.from_string(source)
    except TemplateSyntaxError as exc:
        # Also TemplateAssertionError: an unknown filter is found only when Jinja generates code, after parsing.
        raise WordingError(f"template syntax error at line {exc.lineno}: {exc.message}") from exc
    except TemplateError as exc:
        raise WordingError(f"template is not valid: {exc}") from exc


_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _tidy(text: str) -> str:
    """Single spaces, no trailing whitespace, at most one blank line: every character of an SMS costs."""
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _render(template: Template, context: Mapping[str, object]) -> str:
    try:
        text = _tidy(template.render(context))
    except TemplateError as exc:  # SecurityError, UndefinedError and the like from a tenant's template
        raise WordingError(f"template failed to render: {exc}") from exc
    except Exception as exc:  # e.g. a ZeroDivisionError or TypeError in a template expression
        raise WordingError(f"template failed to render: {type(exc).__name__}: {exc}") from exc
    if not text:
        raise WordingError("template rendered an empty message")
    return text


def render_message(
    kind: JobKind,
    facts: BookingFacts,
    *,
    now: datetime,
    tz: str,
    clinic_name: str | None = None,
    address: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> str:
    """The text of one notification.

    `tz` is the tenant's zone; the booking's own `facts.timezone` wins when the source gave one, since the
    patient comes to that branch's clock. `address` is the tenant's fallback when the facts carry none.
    `overrides` maps a kind's value («reminder», …) to a tenant template replacing the built-in one.
    Raises WordingError when an override is bad, ValueError for a naive datetime or unknown zone.
    """
    source = (overrides or {}).get(kind.value)
    template = _compile(source) if source is not None else _compile(_BUILT_IN[kind])
    context = build_context(kind, facts, now=now, tz=tz, clinic_name=clinic_name, address=address)
    return _render(template, context)


# Two sample visits for `validate_template`: everything known, and nothing but the time, so both
# branches of a template's `{% if %}` run at least once.
_SAMPLE_NOW = datetime.fromisoformat("2026-12-02T09:00:00+03:00")
_SAMPLE_FULL = BookingFacts(
    external_id="sample",
    starts_at=datetime.fromisoformat("2026-12-03T10:00:00+03:00"),
    patient=Patient(first_name="Иван", patronymic="Петрович", last_name="Иванов", sex=Sex.MALE),
    doctor_name="Сергеев Сергей Сергеевич",
    doctor_specialty="кардиолог",
    services=("Приём кардиолога первичный",),
    preparation="За 4 часа до приёма не есть и не пить.",
    address="ул. Лесная, д. 5",
)
_SAMPLE_BARE = BookingFacts(external_id="sample", starts_at=_SAMPLE_FULL.starts_at)


def validate_template(source: str) -> None:
    """Checks a tenant's template at start-up; raises WordingError saying what is wrong.

    Beyond syntax, it rejects unknown names and private attributes, and renders the template against a
    full and a bare sample visit so that runtime errors surface now, not at the first patient.
    """
    if not isinstance(source, str):
        raise WordingError(f"template must be a string, got {type(source).__name__}")
    template = _compile(source)
    for facts, clinic in ((_SAMPLE_FULL, "Клиника «Здоровье»"), (_SAMPLE_BARE, None)):
        for kind in JobKind:
            context = build_context(kind, facts, now=_SAMPLE_NOW, tz="Europe/Moscow", clinic_name=clinic)
            _render(template, context)


def preparation_for(services: Sequence[str], table: Mapping[str, str]) -> str | None:
    """The clinic's preparation text for the booked services (the tenant's `preparations`, keyed by service
    title, case and spacing ignored); several services give their texts in order, each once."""
    wanted = {" ".join(title.split()).casefold(): text for title, text in table.items()}
    texts = [wanted.get(" ".join(title.split()).casefold()) for title in services]
    unique = list(dict.fromkeys(text.strip() for text in texts if text and text.strip()))
    return " ".join(unique) or None
