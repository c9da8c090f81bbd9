"""The tenants file (YAML): each clinic's settings, validated at start-up so a typo fails the deploy.

Secrets are written as `${ENV_VAR}` references and resolved from the environment here; a literal secret in
the file is an error, as is a reference to a variable that is not set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates

from connector.channels.settings import PROVIDERS, AccountLimits, ProviderBlocks, ProviderSettings, typed_providers
from connector.core.cascade import ON_UNKNOWN
from connector.core.model import Policy, QuietHours
from connector.sources.amocrm_settings import AmocrmSource
from connector.sources.bitrix24_settings import Bitrix24Source, Bitrix24Writeback
from connector.sources.settings import DurationSetting, GenericSource, SourceBlocks, YclientsSource, typed_sources
from connector.targets.settings import WritebackBlock, WritebackSettings, typed_writeback

CHANNELS = ("max", "telegram", "whatsapp", "sms")
NOTICE_KINDS = ("confirmation", "reschedule", "cancellation")
TEMPLATE_KINDS = ("confirmation", "reminder", "reschedule", "cancellation", "results_ready", "recall")
_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
# webhook_url: a Bitrix24 inbound webhook's URL holds its secret code in the path.
_SECRET_KEY = re.compile(r"token|secret|password|passwd|psw|api_?key|api_?id|webhook_url", re.IGNORECASE)
ROLES = ("viewer", "operator", "admin")  # each may do what the ones before it may (connector.web.access)
API_SCOPES = ("read", "send", "admin")
# What werkzeug's generate_password_hash makes (`python -m connector hash-password`): method$salt$hash.
_PASSWORD_HASH = re.compile(r"^(scrypt:\d+:\d+:\d+|pbkdf2:sha(256|512):\d+)\$[^$]+\$[0-9a-f]{32,}$")


class TenantConfigError(ValueError):
    """The tenants file is unusable; the message names the file and the bad key."""


@dataclass(frozen=True)
class CascadeStep:
    channel: str
    provider: str
    timeout: timedelta
    until: str = "delivered"  # or "read": the step is done only when the patient has read it
    sent_is_final: bool | None = None  # None: as the provider declares (no receipts → a send is final)
    on_unknown: str | None = None  # next | wait | resend after a lost answer; None: next, wait on the last step


@dataclass(frozen=True)
class ApiToken:
    """One bearer token of a tenant's JSON API; several per tenant, so one can be rotated without downtime."""

    name: str
    token: str = field(repr=False)
    scopes: frozenset[str] = frozenset({"read"})


@dataclass(frozen=True)
class StaffUser:
    """Someone who may sign in to the status pages: the tenants file's `staff`, or the built-in `admin`."""

    login: str
    name: str
    password_hash: str = field(repr=False)
    role: str = "viewer"
    tenants: frozenset[str] | None = None  # None: every tenant ("*")
    # What a session's credentials mark is made from (connector.web.access): the password hash, unless set. The
    # built-in admin sets its password, because its hash is salted anew in every process.
    credential: str = field(default="", repr=False)


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    timezone: str
    webhook_token: str
    policy: Policy
    cascade: tuple[CascadeStep, ...]
    webhook_secret: str | None = None
    address: str | None = None
    providers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    templates: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    remember_not_registered: timedelta = timedelta(days=30)  # how long "not on this messenger" is believed
    preparations: Mapping[str, str] = field(default_factory=dict)  # service title → what to do before the visit
    api_tokens: tuple[ApiToken, ...] = ()  # the JSON API's bearer tokens for this tenant (connector.web.auth)
    writeback_block: Mapping[str, Any] | None = None  # `writeback:` as written; None: nothing is reported back
    # Typed from `sources` and `providers` when the tenant is made (__post_init__), so nothing reads them later.
    yclients: YclientsSource | None = field(init=False, repr=False, compare=False)
    generic: GenericSource | None = field(init=False, repr=False, compare=False)
    amocrm: AmocrmSource | None = field(init=False, repr=False, compare=False)
    bitrix24: Bitrix24Source | None = field(init=False, repr=False, compare=False)
    provider_settings: Mapping[str, ProviderSettings] = field(init=False, repr=False, compare=False)
    writeback: WritebackSettings | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The tenants file was checked by key path when loaded; a tenant made in code (the demo, a test) is
        # checked here, so a block that cannot be used fails where the tenant is made, never at a send.
        try:
            sources = typed_sources(self.sources)
            typed = typed_providers(self.providers)
            writeback = typed_writeback(self.writeback_block)
        except ValueError as error:
            raise TenantConfigError(f"tenant {self.id}: {error}") from error
        for name in ("yclients", "generic", "amocrm", "bitrix24"):
            object.__setattr__(self, name, sources.get(name))
        object.__setattr__(self, "provider_settings", typed)
        object.__setattr__(self, "writeback", writeback)

    @property
    def channels(self) -> tuple[str, ...]:
        """The cascade's channels, each once, in the order it tries them."""
        return tuple(dict.fromkeys(step.channel for step in self.cascade))

    @property
    def writeback_bitrix24(self) -> Bitrix24Writeback | None:
        """`writeback.bitrix24`, which the Bitrix24 fetcher must know (its field is never read as a fact)."""
        return self.writeback.bitrix24 if self.writeback is not None else None

    def provider_block(self, provider: str) -> Mapping[str, Any]:
        """The adapter's own settings, as written (none for a provider without a block: the sandbox)."""
        return self.providers.get(provider) or {}

    def limits(self, provider: str) -> AccountLimits:
        """How hard the worker may drive this tenant's account with `provider`."""
        settings = self.provider_settings.get(provider)
        return settings.limits if settings else AccountLimits()


def demo_cascade(step_seconds: float = 20) -> tuple[CascadeStep, ...]:
    """The default cascade; the demo's steps are short so a fallback shows within a minute."""
    step = timedelta(seconds=step_seconds)
    return (
        CascadeStep("max", "sandbox", step),
        CascadeStep("telegram", "sandbox", step),
        CascadeStep("whatsapp", "sandbox", step),
        CascadeStep("sms", "sandbox", step * 1.5),
    )


DEFAULT_CASCADE = demo_cascade()
DEFAULT_QUIET_HOURS = QuietHours(time(21, 0), time(9, 0))


def demo_tenant(webhook_token: str, *, step_seconds: float = 20,
                quiet_hours: QuietHours | None = DEFAULT_QUIET_HOURS) -> Tenant:
    """The embedded default: one clinic in Moscow, sandbox channels, no credentials."""
    return Tenant(
        id="demo",
        name="Демо-клиника «Здоровье»",
        timezone="Europe/Moscow",
        webhook_token=webhook_token,
        policy=Policy(timezone="Europe/Moscow", quiet_hours=quiet_hours),
        cascade=demo_cascade(step_seconds),
        address="ул. Лесная, д. 5",
        # the late receipt of digit 9 must come after MAX's step has timed out
        providers={"sandbox": {"delay": min(2.0, step_seconds / 4), "read_delay": min(4.0, step_seconds / 2),
                               "late_after": step_seconds * 1.5}},
        sources={"yclients": {}, "generic": {"mapping": "generic"}},
    )


def parse_quiet_hours(text: str) -> QuietHours | None:
    """"21:00-09:00", or "off"."""
    if text.strip().lower() in ("off", "none", ""):
        return None
    start, _, end = text.partition("-")
    try:
        return QuietHours(time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))
    except ValueError as error:
        raise TenantConfigError(f"quiet hours {text!r}: write e.g. 21:00-09:00, or off") from error


# --- the schema -------------------------------------------------------------------------------------------


class _ClockTime(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return time.fromisoformat(str(value))
        except ValueError as error:
            raise ValidationError(f"not a time of day: {value!r} (write e.g. 21:00)") from error


class _QuietHoursSchema(Schema):
    class Meta:
        unknown = RAISE

    start = _ClockTime(required=True)
    end = _ClockTime(required=True)


class _NoticesSchema(Schema):
    class Meta:
        unknown = RAISE

    confirmation = fields.Bool(load_default=True)
    reschedule = fields.Bool(load_default=True)
    cancellation = fields.Bool(load_default=True)


class _StepSchema(Schema):
    class Meta:
        unknown = RAISE

    channel = fields.Str(required=True, validate=validate.OneOf(CHANNELS))
    provider = fields.Str(required=True, validate=validate.OneOf(PROVIDERS))
    timeout = DurationSetting(load_default=timedelta(minutes=10))
    until = fields.Str(load_default="delivered", validate=validate.OneOf(("delivered", "read")))
    sent_is_final = fields.Bool(load_default=None, allow_none=True)
    on_unknown = fields.Str(load_default=None, allow_none=True, validate=validate.OneOf(ON_UNKNOWN))


class _ApiTokenSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.Str(required=True, validate=validate.Length(min=1, max=64))
    token = fields.Str(required=True, validate=validate.Length(min=16))
    scopes = fields.List(fields.Str(validate=validate.OneOf(API_SCOPES)), load_default=["read"],
                         validate=validate.Length(min=1))


class _StaffTenants(fields.Field):
    """A list of tenant ids, or "*" for every tenant."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value == "*":
            return None
        if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
            return frozenset(value)
        raise ValidationError('write a list of tenant ids, or "*" for every tenant')


class _StaffSchema(Schema):
    class Meta:
        unknown = RAISE

    login = fields.Str(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.@-]{1,64}$"))
    name = fields.Str(required=True, validate=validate.Length(min=1, max=120))
    password_hash = fields.Str(required=True)
    tenants = _StaffTenants(required=True)
    role = fields.Str(required=True, validate=validate.OneOf(ROLES))


class _TenantSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.Str(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,62}$"))
    name = fields.Str(load_default=None)
    timezone = fields.Str(load_default="Europe/Moscow")
    webhook_token = fields.Str(required=True, validate=validate.Length(min=16))
    webhook_secret = fields.Str(load_default=None)
    address = fields.Str(load_default=None)
    # marshmallow hands load_default values over as they are: they are given already deserialised
    quiet_hours = fields.Nested(_QuietHoursSchema, allow_none=True,
                                load_default={"start": DEFAULT_QUIET_HOURS.start, "end": DEFAULT_QUIET_HOURS.end})
    reminders = fields.List(DurationSetting(), load_default=[timedelta(days=1), timedelta(hours=2)])
    remember_not_registered = DurationSetting(load_default=timedelta(days=30))
    preparations = fields.Dict(keys=fields.Str(), values=fields.Str(), load_default={})
    notices = fields.Nested(_NoticesSchema, load_default={})
    cascade = fields.List(fields.Nested(_StepSchema), load_default=None, validate=validate.Length(min=1))
    providers = ProviderBlocks()  # the settings every provider takes are typed there (warmup, rate, …)
    templates = fields.Dict(keys=fields.Str(validate=validate.OneOf(TEMPLATE_KINDS)), values=fields.Str())
    sources = SourceBlocks()  # checked by key path, kept as written: Tenant types them (yclients, generic)
    api_tokens = fields.List(fields.Nested(_ApiTokenSchema), load_default=[])
    writeback = WritebackBlock(load_default=None)  # likewise: Tenant.writeback

    @validates("timezone")
    def _known_zone(self, value: str, **kwargs) -> None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValidationError(f"unknown time zone {value!r} (write e.g. Europe/Moscow)") from error


class _FileSchema(Schema):
    class Meta:
        unknown = RAISE

    tenants = fields.List(fields.Nested(_TenantSchema), required=True, validate=validate.Length(min=1))
    staff = fields.List(fields.Nested(_StaffSchema), load_default=[])


# --- loading ----------------------------------------------------------------------------------------------


def load_tenants(path: str | Path, environ: Mapping[str, str] | None = None) -> dict[str, Tenant]:
    loaded = _load_file(path, environ)
    tenants = [_build(item) for item in loaded["tenants"]]
    ids = [tenant.id for tenant in tenants]
    if len(set(ids)) != len(ids):
        raise TenantConfigError(f"{path}: tenants: the same id appears twice")
    _check_templates(path, tenants)
    _check_api_tokens(path, tenants)
    _check_staff(path, loaded["staff"], set(ids))
    return {tenant.id: tenant for tenant in tenants}


def load_staff(path: str | Path, environ: Mapping[str, str] | None = None) -> dict[str, StaffUser]:
    """The tenants file's `staff`, by login (checked with the tenants by `load_tenants`)."""
    loaded = _load_file(path, environ)
    _check_staff(path, loaded["staff"], {item["id"] for item in loaded["tenants"]})
    return {item["login"]: StaffUser(login=item["login"], name=item["name"], password_hash=item["password_hash"],
                                     role=item["role"], tenants=item["tenants"]) for item in loaded["staff"]}


def _load_file(path: str | Path, environ: Mapping[str, str] | None) -> dict[str, Any]:
    environ = os.environ if environ is None else environ
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise TenantConfigError(f"{path}: cannot read the tenants file: {error}") from error
    try:
        resolved = _resolve_references(raw, environ, trail="")
        loaded = _FileSchema().load(resolved)
    except ValidationError as error:
        raise TenantConfigError(f"{path}: {'; '.join(_flatten(error.messages))}") from error
    except _ReferenceError as error:
        raise TenantConfigError(f"{path}: {error}") from error
    return loaded


def _build(item: dict[str, Any]) -> Tenant:
    quiet = item["quiet_hours"]
    notices = item["notices"]
    cascade = item["cascade"]
    steps = tuple(CascadeStep(**step) for step in cascade) if cascade else DEFAULT_CASCADE
    return Tenant(
        id=item["id"],
        name=item["name"] or item["id"],
        timezone=item["timezone"],
        webhook_token=item["webhook_token"],
        webhook_secret=item["webhook_secret"],
        address=item["address"],
        policy=Policy(
            timezone=item["timezone"],
            reminder_offsets=tuple(item["reminders"]),
            quiet_hours=QuietHours(quiet["start"], quiet["end"]) if quiet else None,
            confirmation=notices.get("confirmation", True),
            reschedule=notices.get("reschedule", True),
            cancellation=notices.get("cancellation", True),
        ),
        cascade=steps,
        providers=item.get("providers") or {},
        templates=item.get("templates") or {},
        sources=item.get("sources") or {},
        remember_not_registered=item["remember_not_registered"],
        preparations=item["preparations"],
        api_tokens=tuple(ApiToken(name=token["name"], token=token["token"], scopes=frozenset(token["scopes"]))
                         for token in item["api_tokens"]),
        writeback_block=item["writeback"],
    )


def _check_api_tokens(path: str | Path, tenants: list[Tenant]) -> None:
    for index, tenant in enumerate(tenants):
        names = [token.name for token in tenant.api_tokens]
        if len(set(names)) != len(names):
            raise TenantConfigError(f"{path}: tenants[{index}].api_tokens: the same name appears twice")


def _check_staff(path: str | Path, staff: list[dict[str, Any]], tenant_ids: set[str]) -> None:
    logins = [item["login"] for item in staff]
    if len(set(logins)) != len(logins):
        raise TenantConfigError(f"{path}: staff: the same login appears twice")
    for index, item in enumerate(staff):
        unknown = sorted((item["tenants"] or frozenset()) - tenant_ids)
        if unknown:
            raise TenantConfigError(f"{path}: staff[{index}].tenants: no tenant {', '.join(map(repr, unknown))}")


def _check_templates(path: str | Path, tenants: list[Tenant]) -> None:
    from connector.core.templates import WordingError, validate_template

    for index, tenant in enumerate(tenants):
        for kind, source in tenant.templates.items():
            try:
                validate_template(source)
            except WordingError as error:
                raise TenantConfigError(f"{path}: tenants[{index}].templates.{kind}: {error}") from error


class _ReferenceError(ValueError):
    pass


def _resolve_references(node: Any, environ: Mapping[str, str], trail: str) -> Any:
    """Replace `${VAR}` by the variable's value; refuse a secret written literally."""
    if isinstance(node, dict):
        return {key: _resolve_value(key, value, environ, f"{trail}.{key}" if trail else str(key))
                for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve_references(value, environ, f"{trail}[{i}]") for i, value in enumerate(node)]
    return node


def _resolve_value(key: Any, value: Any, environ: Mapping[str, str], trail: str) -> Any:
    if not isinstance(value, str):
        return _resolve_references(value, environ, trail)
    match = _REFERENCE.match(value.strip())
    if match:
        name = match.group(1)
        if name not in environ or environ[name] == "":
            raise _ReferenceError(f"{trail}: the environment variable {name} is not set")
        return environ[name]
    if key == "password_hash" and value:
        if not _PASSWORD_HASH.match(value.strip()):
            raise _ReferenceError(f"{trail}: not a password hash (make one with `python -m connector "
                                  f"hash-password`; never write the password itself)")
        return value.strip()
    if isinstance(key, str) and _SECRET_KEY.search(key) and value:
        raise _ReferenceError(f"{trail}: a secret must be an ${{ENV_VAR}} reference, not a literal value")
    return value


def _flatten(messages: Any, trail: str = "") -> list[str]:
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            step = f"[{key}]" if isinstance(key, int) else (f".{key}" if trail else str(key))
            out.extend(_flatten(value, trail + step))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{trail}: {' '.join(messages)}"]
    return [f"{trail}: {messages}"]
