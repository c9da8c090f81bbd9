"""The words patients read: a short, warm, formal Russian text for each notification kind, and its rendering."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from connector.core.model import BookingFacts, JobKind
from connector.core.templates import build_context, compile_template, render

__all__ = ["preparation_for", "render_message"]

# The built-in texts are templates like a tenant's own (see `templates.CONTEXT_NAMES` for what they see), and a
# tenant may replace any of them. Shared fragments below each start with their own space, so an absent part
# leaves nothing behind; the output is still normalised when rendered.
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


def preparation_for(services: Sequence[str], table: Mapping[str, str]) -> str | None:
    """The clinic's preparation text for the booked services (the tenant's `preparations`, keyed by service
    title, case and spacing ignored); several services give their texts in order, each once."""
    wanted = {" ".join(title.split()).casefold(): text for title, text in table.items()}
    texts = [wanted.get(" ".join(title.split()).casefold()) for title in services]
    unique = list(dict.fromkeys(text.strip() for text in texts if text and text.strip()))
    return " ".join(unique) or None


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
    template = compile_template(source) if source is not None else compile_template(_BUILT_IN[kind])
    context = build_context(kind, facts, now=now, tz=tz, clinic_name=clinic_name, address=address)
    return render(template, context)
