"""The template sandbox: what a clinic's Jinja template may see and do, and how it is checked and rendered."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from connector.core import phrases
from connector.core.model import BookingFacts, JobKind, Patient, Sex

__all__ = [
    "CONTEXT_NAMES",
    "WordingError",
    "build_context",
    "compile_template",
    "render",
    "validate_template",
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
    phrases.require_aware(now, "now")
    zone_name = facts.timezone or tz
    local = facts.starts_at.astimezone(phrases.zone(zone_name))
    today = now.astimezone(phrases.zone(zone_name)).date()
    services = ", ".join(s for s in (phrases.clean(x) for x in facts.services) if s)
    return {
        "greeting": phrases.greeting(facts.patient),
        "patient": phrases.patient_names(facts.patient),
        "doctor": phrases.clean(facts.doctor_name),
        "specialty": phrases.specialty(facts.doctor_specialty),
        "services": services,
        "when": phrases.when_phrase(facts.starts_at, now=now, tz=zone_name),
        "time": phrases.time_phrase(local),
        "date": phrases.date_phrase(local.date(), today),
        # The branch's own address from the source beats the tenant's general one.
        "address": phrases.clean(facts.address) or phrases.clean(address),
        "clinic": phrases.clean(clinic_name),
        "preparation": phrases.clean(facts.preparation),
        "kind": kind.value,
    }


def _sentence(value: object) -> str:
    """Ends a clinic-supplied phrase with a full stop unless it already ends a sentence."""
    text = str(value).strip()
    if text and text[-1] not in ".!?…":
        text += "."
    return text


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
def compile_template(source: str) -> Template:
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
    except SyntaxError as exc:
        # Python's compiler refusing the code Jinja generated (e.g. a macro naming one argument twice). Nothing
        # else escapes here: parsing and code generation raise only TemplateSyntaxError and its subclass.
        raise WordingError(f"template is not valid: {exc.msg}") from exc


_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _tidy(text: str) -> str:
    """Single spaces, no trailing whitespace, at most one blank line: every character of an SMS costs."""
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def render(template: Template, context: Mapping[str, object]) -> str:
    """The tidied text of a compiled template; raises WordingError when it fails or renders to nothing."""
    try:
        text = _tidy(template.render(context))
    except TemplateError as exc:  # SecurityError, UndefinedError and the like from a tenant's template
        raise WordingError(f"template failed to render: {exc}") from exc
    except Exception as exc:  # e.g. a ZeroDivisionError or TypeError in a template expression
        raise WordingError(f"template failed to render: {type(exc).__name__}: {exc}") from exc
    if not text:
        raise WordingError("template rendered an empty message")
    return text


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
    template = compile_template(source)
    for facts, clinic in ((_SAMPLE_FULL, "Клиника «Здоровье»"), (_SAMPLE_BARE, None)):
        for kind in JobKind:
            context = build_context(kind, facts, now=_SAMPLE_NOW, tz="Europe/Moscow", clinic_name=clinic)
            render(template, context)
