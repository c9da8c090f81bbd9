"""The settings every provider account takes (warm-up, rate, sends at once, timeout, bot name), typed at start-up.

A provider block is otherwise the adapter's own (credentials, sender, base_url), checked when the adapter is
built (connector.entrypoints.bootstrap.check_providers). These few are read by the worker on every pass, so a typo here
must fail `check` and `release` with its key path, not every dispatch pass at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from marshmallow import EXCLUDE, INCLUDE, RAISE, Schema, ValidationError, fields, post_load, validate

from connector.core.warmup import Warmup
from connector.transport.wire import request_timeout

PROVIDERS = ("sandbox", "wahelp", "smsru", "smsc", "max_bot", "telegram_bot")


@dataclass(frozen=True)
class AccountLimits:
    """How hard the worker may drive one provider account."""

    rate_per_second: float | None = None  # None: as fast as the sends come
    max_in_flight: int | None = None  # sends at once; None: as many as the worker's pool


@dataclass(frozen=True)
class ProviderSettings:
    """What the connector itself reads of a provider block; the adapter's own keys stay in the block."""

    limits: AccountLimits = field(default_factory=AccountLimits)
    bot_name: str | None = None  # the clinic's MAX / Telegram bot, for invitation links; None: no links


class _Day(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        # YAML reads 2026-12-01 as a date already; quoted, it is text. A date with a time is not a day.
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        try:
            return date.fromisoformat(value)
        except (TypeError, ValueError) as error:
            raise ValidationError(f"not a date: {value!r} (write e.g. 2026-12-01)") from error


class TimeoutSetting(fields.Field):
    """Seconds, or [connect, read]: checked here, kept as written (the adapter reads it itself)."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            request_timeout(value, "provider")
        except ValueError as error:
            raise ValidationError(str(error)) from error
        return value  # kept as written: the adapter reads it itself


class _WarmupSchema(Schema):
    class Meta:
        unknown = RAISE

    start = fields.Int(strict=True, load_default=50, validate=validate.Range(min=0))
    growth = fields.Float(load_default=1.5, allow_nan=False, validate=validate.Range(min=0, min_inclusive=False))
    since = _Day(load_default=None, allow_none=True)
    ceiling = fields.Int(strict=True, load_default=None, allow_none=True, validate=validate.Range(min=1))

    @post_load
    def _typed(self, data: dict[str, Any], **kwargs) -> Warmup:
        return Warmup(**data)


class _SettingsSchema(Schema):
    class Meta:
        unknown = INCLUDE  # the adapter's own keys pass through to it

    rate_per_second = fields.Float(allow_none=True, allow_nan=False,
                                   validate=validate.Range(min=0, min_inclusive=False))
    max_in_flight = fields.Int(strict=True, validate=validate.Range(min=1))
    timeout = TimeoutSetting(allow_none=True)
    warmup = fields.Nested(_WarmupSchema, allow_none=True)
    bot_name = fields.Str(allow_none=True)


class ProviderBlocks(fields.Field):
    """`providers:` of a tenant: provider name → its block, the shared settings typed, errors by key path."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("write provider name: {settings}")
        loaded, errors = {}, {}
        for name, block in value.items():
            if name not in PROVIDERS:
                errors[name] = [f"unknown provider (one of {', '.join(PROVIDERS)})"]
            elif not isinstance(block, dict | None):
                errors[name] = ["write its settings as key: value"]
            else:
                try:
                    loaded[name] = _SettingsSchema().load(block or {})
                except ValidationError as error:
                    errors[name] = error.messages
        if errors:
            raise ValidationError(errors)
        return loaded


def warmup_of(settings: Mapping[str, Any]) -> Warmup | None:
    """An account's warm-up; a block given in code rather than loaded from the file is checked here too."""
    value = settings.get("warmup")
    if value is None or isinstance(value, Warmup):
        return value
    try:
        return _WarmupSchema().load(value)
    except ValidationError as error:
        raise ValueError(_named(error, "warmup.")) from error


# What provider_settings reads: the warm-up is left to the dispatcher, which holds only that account's jobs
# when a block given in code cannot be used (warmup_of).
_TYPED = ("rate_per_second", "max_in_flight", "bot_name")


def typed_providers(blocks: Mapping[str, Mapping[str, Any] | None]) -> dict[str, ProviderSettings]:
    """The typed settings of every provider block; ValueError naming the key path of one that cannot be used."""
    typed = {}
    for name, block in blocks.items():
        try:
            typed[name] = provider_settings(block or {})
        except ValueError as error:
            raise ValueError(f"providers.{name}.{error}") from error
    return typed


def provider_settings(block: Mapping[str, Any]) -> ProviderSettings:
    """The typed settings of one provider block (ValueError naming the key when one cannot be used)."""
    try:
        loaded = _SettingsSchema(only=_TYPED, unknown=EXCLUDE).load(dict(block))
    except ValidationError as error:
        raise ValueError(_named(error)) from error
    limits = AccountLimits(loaded.get("rate_per_second"), loaded.get("max_in_flight"))
    return ProviderSettings(limits, loaded.get("bot_name") or None)  # an empty name makes no link


def _named(error: ValidationError, prefix: str = "") -> str:
    """One line per bad key, the key named: "warmup.since: not a date: 'yesterday'"."""
    messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
    return "; ".join(f"{prefix}{key}: {' '.join(map(str, text)) if isinstance(text, list) else text}"
                     for key, text in messages.items())
