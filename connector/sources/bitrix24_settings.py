"""`sources.bitrix24` and `writeback.bitrix24` of a tenant, typed at start-up (a typo fails `check`, not a webhook).

The portal is reached through an inbound REST webhook URL, `https://{portal}/rest/{user_id}/{code}/`: the code in
its path is the credential, so the URL is a secret like the application token. Write both as `${ENV}` references
in the tenants file (the tenants loader resolves them before this schema sees them, and refuses a literal secret
where the key says so); neither is ever shown by these classes' repr, put in an error message or logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from connector.channels.settings import TimeoutSetting

__all__ = ["Bitrix24Schema", "Bitrix24Source", "Bitrix24Writeback", "Bitrix24WritebackSchema"]

DEFAULT_MAPPING = "bitrix24"
UF_CODE = re.compile(r"UF_CRM_[A-Z0-9_]{1,60}")  # a deal's user field as `useOriginalUfNames: Y` names it


@dataclass(frozen=True)
class Bitrix24Source:
    """`sources.bitrix24`: where the portal's REST API is, and the token its outgoing webhook proves itself with."""

    webhook_url: str = field(repr=False)  # no trailing slash: `{webhook_url}/crm.item.get.json`
    application_token: str = field(repr=False)  # auth[application_token] of every outgoing webhook call
    mapping: str = DEFAULT_MAPPING  # the file of mappings/ (its `source: bitrix24`) that reads this portal's deals
    timeout: Any = None  # seconds or [connect, read], as written: the REST client reads it


@dataclass(frozen=True)
class Bitrix24Writeback:
    """`writeback.bitrix24`: a timeline comment on the deal, and/or the text in one of its user fields."""

    comment: bool = True
    field: str | None = None  # a UF_CRM_* code; the mapping must never read it (else its echo would plan)


def _webhook_url(value: str) -> None:
    """An http(s) URL with a host and a path, nothing after it: the methods are appended to it."""
    parts = urlsplit(value)
    # The messages never quote the value: it holds the webhook's secret code.
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError("write the inbound webhook's URL, https://{portal}/rest/{user_id}/{code}/")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValidationError("the inbound webhook's URL takes no query, fragment or user:password@")
    if not parts.path.strip("/"):
        raise ValidationError("the inbound webhook's URL has no path: expected /rest/{user_id}/{code}/")


class Bitrix24Schema(Schema):
    class Meta:
        unknown = RAISE

    webhook_url = fields.Str(required=True, validate=_webhook_url)
    application_token = fields.Str(required=True, validate=validate.Length(min=1))
    mapping = fields.Str(validate=validate.Length(min=1))
    timeout = TimeoutSetting(allow_none=True)

    @post_load
    def _typed(self, data: dict[str, Any], **kwargs: Any) -> Bitrix24Source:
        data["webhook_url"] = data["webhook_url"].strip().rstrip("/")
        data["application_token"] = data["application_token"].strip()
        if not data["application_token"]:
            raise ValidationError("must not be blank", field_name="application_token")
        return Bitrix24Source(**data)


def _uf_code(value: str) -> None:
    if not UF_CODE.fullmatch(value):
        raise ValidationError("write a deal user field's code, e.g. UF_CRM_1725365197399")


class Bitrix24WritebackSchema(Schema):
    class Meta:
        unknown = RAISE

    comment = fields.Bool()
    field = fields.Str(allow_none=True, validate=_uf_code)

    @post_load
    def _typed(self, data: dict[str, Any], **kwargs: Any) -> Bitrix24Writeback:
        typed = Bitrix24Writeback(**data)
        if not typed.comment and typed.field is None:
            raise ValidationError("nothing to write: set comment: true, or a field")
        return typed
