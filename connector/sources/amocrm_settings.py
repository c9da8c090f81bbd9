"""A tenant's amoCRM settings (`sources.amocrm`, `writeback.amocrm`), typed at start-up.

`sources.amocrm` says which account posts to the tenant (its subdomain: a hook naming another is refused), where
its API is, how to authorise (a long-lived token, or OAuth whose single-use refresh token the database keeps
rotating: connector.store.crm_tokens) and which file of mappings/ reads its leads. `writeback.amocrm` says whether
a delivery report becomes a note on the lead, and which lead field (if any) also gets the latest report. A typo
fails `check` with its key path, not a webhook at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from connector.channels.settings import TimeoutSetting

__all__ = ["AmocrmOAuth", "AmocrmSchema", "AmocrmSource", "AmocrmWriteback", "AmocrmWritebackSchema"]

# An account's subdomain as amoCRM issues them: letters, digits, hyphens (it becomes part of a host name).
_SUBDOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class AmocrmOAuth:
    """An OAuth integration's credentials. `refresh_token` only seeds the database's pair (first use, or when the
    stored one was refused): amoCRM hands out a new refresh token on every refresh and revokes the old one."""

    client_id: str
    client_secret: str
    redirect_uri: str
    refresh_token: str

    def __repr__(self) -> str:  # never show the secrets
        return f"AmocrmOAuth(client_id={self.client_id!r})"


@dataclass(frozen=True)
class AmocrmSource:
    """`sources.amocrm`: exactly one of `token` (a long-lived token) and `oauth` is set."""

    subdomain: str
    token: str | None = None
    oauth: AmocrmOAuth | None = None
    base_url: str | None = None  # None: https://{subdomain}.amocrm.ru (a stand-in's URL in tests)
    mapping: str = "amocrm"
    timeout: Any = None  # seconds or [connect, read], kept as written: the REST client reads it

    @property
    def api_base(self) -> str:
        """Where the API lives: `base_url`, else the account's own host."""
        return (self.base_url or f"https://{self.subdomain}.amocrm.ru").rstrip("/")

    def __repr__(self) -> str:  # never show the token
        return f"AmocrmSource(subdomain={self.subdomain!r}, base_url={self.base_url!r}, mapping={self.mapping!r})"


@dataclass(frozen=True)
class AmocrmWriteback:
    """`writeback.amocrm`: a service note per report (default), and optionally a lead field holding the latest."""

    note: bool = True
    field_id: int | None = None


class _OAuthSchema(Schema):
    class Meta:
        unknown = RAISE

    client_id = fields.Str(required=True, validate=validate.Length(min=1))
    client_secret = fields.Str(required=True, validate=validate.Length(min=1))
    redirect_uri = fields.Str(required=True, validate=validate.Length(min=1))
    refresh_token = fields.Str(required=True, validate=validate.Length(min=1))

    @post_load
    def _typed(self, data: dict[str, Any], **kwargs: Any) -> AmocrmOAuth:
        return AmocrmOAuth(**data)


class _Token(fields.Field):
    """`token:` a long-lived token (text), or the OAuth block {client_id, client_secret, redirect_uri,
    refresh_token}."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | AmocrmOAuth:
        if isinstance(value, str):
            if not value.strip():
                raise ValidationError("the token is empty (is its ${ENV} variable set?)")
            return value.strip()
        if isinstance(value, dict):
            return _OAuthSchema().load(value)
        raise ValidationError("write a long-lived token, or {client_id, client_secret, redirect_uri, refresh_token}")


class AmocrmSchema(Schema):
    """`sources.amocrm` of a tenant → AmocrmSource."""

    class Meta:
        unknown = RAISE

    subdomain = fields.Str(required=True)
    base_url = fields.Str(allow_none=True, validate=validate.URL(schemes={"http", "https"}, require_tld=False))
    token = _Token(required=True)
    mapping = fields.Str(validate=validate.Length(min=1))
    timeout = TimeoutSetting(allow_none=True)

    @post_load
    def _typed(self, data: dict[str, Any], **kwargs: Any) -> AmocrmSource:
        subdomain = data.pop("subdomain").strip().lower()
        if not _SUBDOMAIN.fullmatch(subdomain):
            raise ValidationError(f"not an amoCRM subdomain: {subdomain!r} (the part before .amocrm.ru)",
                                  field_name="subdomain")
        token = data.pop("token")
        if isinstance(token, AmocrmOAuth):
            return AmocrmSource(subdomain=subdomain, oauth=token, **data)
        return AmocrmSource(subdomain=subdomain, token=token, **data)


class AmocrmWritebackSchema(Schema):
    """`writeback.amocrm` of a tenant → AmocrmWriteback."""

    class Meta:
        unknown = RAISE

    note = fields.Bool()
    field_id = fields.Int(allow_none=True, strict=True, validate=validate.Range(min=1))

    @post_load
    def _typed(self, data: dict[str, Any], **kwargs: Any) -> AmocrmWriteback:
        return AmocrmWriteback(**data)
