"""The YCLIENTS write-back target: the report in a record custom field (by its code) and/or our one line in the
record's comment (shared/docs/yclients.md §3.4–3.6, §5 items 5 and 6).

`PUT /record` is a full update: a field left out is a 422, or worse, erased. So the record is read first and sent
back whole with the change, `send_sms: false` (or the patient may get YCLIENTS' own SMS about the "change") and
`save_if_busy: true` (re-saving the same slot is not a conflict). The administrator's comment is kept byte for
byte (connector.core.notice_line). The `record/update` webhook our PUT causes carries the comment without our
line once parsed (connector.sources.yclients), and custom fields are no part of the facts: the intake judges it
a duplicate and plans nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.core.notice_line import with_notice
from connector.sources.crm import CrmError, Report
from connector.sources.yclients_api import YclientsApi, YclientsApiError
from connector.targets.settings import YclientsWriteback

__all__ = ["FIELD_LIMIT", "YclientsRecordTarget", "record_update"]

FIELD_LIMIT = 255  # a `text` custom field holds this many characters (§3.5)
# Sent back as they were read, when the record has them (§3.4's optional fields; activity_id for group events).
_KEPT = ("attendance", "api_id", "custom_color", "sms_remain_hours", "email_remain_hours",
         "technical_break_duration", "clients_count")
_SERVICE_KEYS = ("id", "first_cost", "discount", "cost", "amount")


class YclientsRecordTarget:
    """Writes reports onto YCLIENTS records through one tenant's REST client."""

    def __init__(self, api: YclientsApi, settings: YclientsWriteback):
        self.api, self.settings = api, settings

    def push(self, report: Report) -> None:
        if not report.branch_id:
            raise CrmError("yclients: record update: the booking has no company id", transient=False)
        try:
            record = self.api.get_record(report.branch_id, report.external_id)
            body = record_update(record, text=report.text, custom_field=self.settings.custom_field,
                                 comment=self.settings.comment)
            if body is not None:
                self.api.put_record(report.branch_id, report.external_id, body)
        except YclientsApiError as error:
            raise CrmError(str(error), transient=error.transient, retry_after=error.retry_after,
                           status_code=error.status_code) from None
        except ValueError as error:  # an id that cannot go into a path
            raise CrmError(f"yclients: record update: {error}", transient=False) from None


def record_update(record: Mapping[str, Any], *, text: str, custom_field: str | None,
                  comment: bool) -> dict[str, Any] | None:
    """The whole record as `PUT /record` wants it back, with our report in it; None when the record already
    says exactly that (a push repeated after a lost answer writes nothing, and causes no echo)."""
    old_fields = _custom_fields(record.get("custom_fields"))
    fields = {**old_fields, custom_field: text[:FIELD_LIMIT]} if custom_field else old_fields
    old_comment = record.get("comment") if isinstance(record.get("comment"), str) else ""
    new_comment = with_notice(old_comment, text) if comment else old_comment
    if new_comment == old_comment and fields == old_fields:
        return None
    staff = record.get("staff")
    staff = staff if isinstance(staff, Mapping) else {}
    body: dict[str, Any] = {
        "staff_id": record.get("staff_id") or staff.get("id"),
        "services": [{key: service[key] for key in _SERVICE_KEYS if key in service}
                     for service in record.get("services") or [] if isinstance(service, Mapping)],
        "client": _client(record.get("client")),
        "datetime": record.get("datetime"),
        "seance_length": record.get("seance_length"),
        "comment": new_comment,
        "custom_fields": fields,
        "record_labels": _label_ids(record.get("record_labels")),
        "save_if_busy": True,
        "send_sms": False,
    }
    body.update({key: record[key] for key in _KEPT if record.get(key) is not None})
    if record.get("activity_id"):  # a group event's record (0 on an ordinary one)
        body["activity_id"] = record["activity_id"]
    return body


def _custom_fields(raw: Any) -> dict[str, Any]:
    """`custom_fields` is `{}`, `[]` or an object keyed by code (§5.8): the object, or nothing."""
    return dict(raw) if isinstance(raw, Mapping) else {}


def _client(raw: Any) -> dict[str, Any]:
    client = raw if isinstance(raw, Mapping) else {}
    phone = "".join(ch for ch in str(client.get("phone") or "") if ch.isdigit())  # 7916…, as PUT bodies have it
    out = {"phone": phone, "name": client.get("name") or ""}
    if client.get("email"):
        out["email"] = client["email"]
    if client.get("id") is not None:
        out["id"] = client["id"]
    return out


def _label_ids(raw: Any) -> list[Any]:
    labels = raw if isinstance(raw, list) else []
    return [label.get("id") if isinstance(label, Mapping) else label for label in labels
            if not isinstance(label, Mapping) or label.get("id") is not None]
