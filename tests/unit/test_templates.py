"""The template sandbox: the context a template sees, tenant overrides, and templates refused as WordingError."""

from __future__ import annotations

import pytest

from connector.core.model import JobKind
from connector.core.templates import CONTEXT_NAMES, WordingError, build_context, validate_template
from connector.core.texts import render_message
from tests.unit.sample_visits import BARE, CLINIC, FULL, MSK, NOW, facts


def test_context_names() -> None:
    context = build_context(JobKind.REMINDER, FULL, now=NOW, tz=MSK, clinic_name=CLINIC)
    assert set(context) == CONTEXT_NAMES
    assert context["greeting"] == "Уважаемый Иван Петрович"
    assert context["time"] == "10:00"
    assert context["date"] == "3 декабря"
    assert context["when"] == "завтра, 3 декабря, в 10:00"
    assert context["kind"] == "reminder"
    assert context["clinic"] == CLINIC
    bare = build_context(JobKind.RECALL, BARE, now=NOW, tz=MSK)
    assert all(value is not None for value in bare.values())
    assert bare["doctor"] == bare["address"] == bare["clinic"] == bare["services"] == ""


OVERRIDE = (
    "{{ greeting }}! {{ patient.first_name }}, ждём Вас {{ when }}"
    "{% if doctor %} у доктора {{ doctor }}{% endif %}.\n"
    "{% if address %}\n"
    "Адрес: {{ address|sentence }}\n"
    "{% endif %}\n"
    "{{ clinic }}  {{ kind }} {{ date }} {{ time }}   "
)


def test_a_tenant_override_replaces_the_built_in_text() -> None:
    validate_template(OVERRIDE)
    text = render_message(
        JobKind.REMINDER, FULL, now=NOW, tz=MSK, clinic_name=CLINIC, overrides={"reminder": OVERRIDE}
    )
    assert text == (
        "Уважаемый Иван Петрович! Иван, ждём Вас завтра, 3 декабря, в 10:00"
        " у доктора Иванов Сергей Петрович.\n"
        "Адрес: ул. Лесная, д. 5.\n"
        "Клиника «Здоровье» reminder 3 декабря 10:00"
    )


def test_an_override_for_another_kind_leaves_this_one_alone() -> None:
    text = render_message(JobKind.CANCELLATION, BARE, now=NOW, tz=MSK, overrides={"reminder": OVERRIDE})
    assert text.startswith("Здравствуйте! Ваш приём завтра")


BAD_TEMPLATES = [
    pytest.param("{{ greeting ", id="unclosed-expression"),
    pytest.param("{% if doctor %}{{ doctor }}", id="unclosed-block"),
    pytest.param("{{ ''.__class__ }}", id="dunder-attribute"),
    pytest.param("{{ ''.__class__.__mro__[1].__subclasses__() }}", id="subclasses"),
    pytest.param("{{ patient['__class__'] }}", id="dunder-item"),
    pytest.param("{{ cycler.__init__.__globals__ }}", id="globals"),
    pytest.param("{{ patient._private }}", id="underscore-attribute"),
    pytest.param("{% set a = ['__cla', 'ss__']|join %}{{ greeting[a] }}", id="computed-dunder"),
    pytest.param("{{ greting }}, {{ when }}", id="unknown-name"),
    pytest.param("{% if address %}{{ adress }}{% endif %}", id="unknown-name-in-branch"),
    pytest.param("{{ patient.middle_name }}", id="unknown-attribute"),
    pytest.param("{{ 1 / 0 }}", id="runtime-error"),
    pytest.param("{{ greeting.upper.__self__ }}", id="method-self"),
    pytest.param("   {# nothing #}  ", id="renders-empty"),
    # Jinja checks filter names when it compiles, after parsing: its TemplateAssertionError must be wrapped too.
    pytest.param("{{ greeting|shout }}", id="unknown-filter"),
    # Python's own compiler refuses the code Jinja generates: a SyntaxError, not a Jinja error, must be wrapped too.
    pytest.param("{% macro line(a, a) %}{{ a }}{% endmacro %}{{ line(1, 2) }}", id="duplicate-macro-argument"),
]


@pytest.mark.parametrize("source", BAD_TEMPLATES)
def test_a_bad_template_fails_validation(source: str) -> None:
    with pytest.raises(WordingError):
        validate_template(source)


@pytest.mark.parametrize("source", BAD_TEMPLATES)
def test_a_bad_override_fails_rendering(source: str) -> None:
    with pytest.raises(WordingError):
        render_message(JobKind.REMINDER, FULL, now=NOW, tz=MSK, overrides={"reminder": source})


def test_wording_error_is_a_value_error_not_a_jinja_error() -> None:
    # Callers catch WordingError (or ValueError) alone; Jinja is an implementation detail of the template code.
    from jinja2 import TemplateError

    with pytest.raises(ValueError) as caught:
        validate_template("{{ greeting ")
    assert isinstance(caught.value, WordingError)
    assert not isinstance(caught.value, TemplateError)
    assert "line 1" in str(caught.value)


def test_a_template_that_is_not_text_fails_validation() -> None:
    with pytest.raises(WordingError, match="template must be a string, got int"):
        validate_template(42)  # type: ignore[arg-type]  # e.g. `reminder: 42` in the tenants file


def test_an_item_looked_up_by_an_ordinary_name_is_allowed() -> None:
    # Only underscore names are refused: patient['first_name'] is patient.first_name written another way.
    source = "{{ patient['first_name'] }}, ждём Вас {{ when }}"
    validate_template(source)
    text = render_message(JobKind.REMINDER, FULL, now=NOW, tz=MSK, overrides={"reminder": source})
    assert text == "Иван, ждём Вас завтра, 3 декабря, в 10:00"


def test_an_unknown_name_is_named_in_the_error() -> None:
    with pytest.raises(WordingError, match="greting"):
        validate_template("{{ greting }}")


def test_a_plain_text_template_is_not_escaped() -> None:
    text = render_message(
        JobKind.REMINDER,
        facts(address='ТЦ "Мир" & Ко <2 этаж>'),
        now=NOW,
        tz=MSK,
        overrides={"reminder": "{{ address }}"},
    )
    assert text == 'ТЦ "Мир" & Ко <2 этаж>'
