"""The tenant's `writeback:` block typed at start-up, the whole YCLIENTS record our PUT sends back, and the
YCLIENTS parser reading a comment without our line."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from connector.core.notice_line import PREFIX
from connector.sources.yclients import parse_record_webhook
from connector.targets.settings import GenericWriteback, YclientsWriteback
from connector.targets.yclients import FIELD_LIMIT, record_update
from connector.tenants import TenantConfigError, demo_tenant
from tests.fixtures import sample
from tests.unit.test_tenants import MINIMAL, load_text

ENV = {"TOKEN": "a-long-enough-token-123", "HOOK_SECRET": "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="}


def test_the_block_is_typed_at_start_up(tmp_path):
    tenants = load_text(tmp_path, MINIMAL + (
        "    writeback:\n"
        "      yclients: {custom_field: notify_status, comment: true}\n"
        "      amocrm: {note: true, field_id: 123456}\n"
        "      bitrix24: {comment: true, field: UF_CRM_NOTIFY}\n"
        "      generic: {url: 'https://clinic.example/hooks/notify', secret: '${HOOK_SECRET}'}\n"
        "      report: [final, steps]\n"), ENV)
    settings = tenants["clinic"].writeback
    assert settings.yclients == YclientsWriteback("notify_status", True)
    assert settings.generic == GenericWriteback("https://clinic.example/hooks/notify", ENV["HOOK_SECRET"])
    assert (settings.amocrm.field_id, settings.bitrix24.field) == (123456, "UF_CRM_NOTIFY")
    assert settings.report == ("final", "steps")
    assert settings.targets == ("yclients", "amocrm", "bitrix24", "generic")


def test_no_block_reports_nothing_and_the_default_is_the_final_outcome(tmp_path):
    assert load_text(tmp_path, MINIMAL, ENV)["clinic"].writeback is None
    tenant = replace(demo_tenant("t" * 20), writeback_block={"yclients": {"comment": True}})
    assert tenant.writeback.report == ("final",) and tenant.writeback.targets == ("yclients",)


@pytest.mark.parametrize(("block", "named"), [
    ("{yclients: {comment: true, coment: true}}", "tenants[0].writeback.yclients.coment: Unknown field"),
    ("{yclients: {}}", "writeback.yclients._schema: write custom_field: <code>, comment: true, or both"),
    ("{yclients: {comment: false, custom_field: null}}", "writeback.yclients"),
    ("{generic: {url: 'https://x.example/h', secret: literal-secret-value}}",
     "tenants[0].writeback.generic.secret: a secret must be an ${ENV_VAR} reference"),
    ("{generic: {url: 'ftp://x.example/h', secret: '${HOOK_SECRET}'}}", "writeback.generic.url"),
    ("{generic: {url: 'https://x.example/h'}}", "writeback.generic.secret: Missing data"),
    ("{amocrm: {field_id: '12'}}", "writeback.amocrm.field_id"),
    ("{report: [steps]}", "writeback.report: write [final] or [final, steps]"),
    ("{report: [final, everything]}", "writeback.report"),
    ("{pigeon: {}}", "writeback.pigeon: Unknown field"),
    ("[yclients]", "writeback: write target name"),
])
def test_a_bad_block_is_named_with_its_key_path(tmp_path, block, named):
    with pytest.raises(TenantConfigError) as error:
        load_text(tmp_path, MINIMAL + f"    writeback: {block}\n", ENV)
    assert named in str(error.value)


def test_a_tenant_made_in_code_is_checked_too():
    with pytest.raises(TenantConfigError, match="writeback.report"):
        replace(demo_tenant("t" * 20), writeback_block={"report": ["steps"]})


def recorded() -> dict:
    return copy.deepcopy(json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))["data"])


def test_the_whole_record_goes_back_with_our_report_and_without_an_sms():
    record = recorded()
    record["custom_fields"] = {"other_field": "kept"}
    record["record_labels"] = [{"id": 5, "title": "VIP"}]
    body = record_update(record, text="Напоминание доставлено в MAX 02.12 18:02", custom_field="notify_status",
                         comment=True)
    assert body["staff_id"] == 2001
    assert body["services"] == [{"id": 6137968, "first_cost": 3500, "discount": 0, "cost": 3500, "amount": 1}]
    assert body["client"] == {"phone": "79161234560", "name": "Иван", "email": "smirnov@example.com",
                              "id": 86694283}
    assert (body["datetime"], body["seance_length"]) == ("2026-12-03T10:00:00+03:00", 1800)
    assert body["comment"] == record["comment"] + f"\n{PREFIX} Напоминание доставлено в MAX 02.12 18:02"
    assert body["custom_fields"] == {"other_field": "kept", "notify_status": "Напоминание доставлено в MAX 02.12 18:02"}
    assert body["record_labels"] == [5]
    assert (body["send_sms"], body["save_if_busy"]) == (False, True)
    assert (body["attendance"], body["sms_remain_hours"], body["email_remain_hours"]) == (0, 2, 24)
    assert "activity_id" not in body  # 0: an ordinary record, not a group event


def test_a_field_alone_leaves_the_comment_as_it_is_and_is_cut_to_its_size():
    record = recorded()
    body = record_update(record, text="x" * 300, custom_field="notify", comment=False)
    assert body["comment"] == record["comment"]
    assert body["custom_fields"] == {"notify": "x" * FIELD_LIMIT}


def test_a_record_that_already_says_it_is_not_written_again():
    record = recorded()
    record["comment"] = None
    body = record_update(record, text="готово", custom_field="notify", comment=True)
    record.update(comment=body["comment"], custom_fields=body["custom_fields"])
    assert record_update(record, text="готово", custom_field="notify", comment=True) is None
    assert record_update(record, text="готово", custom_field=None, comment=True) is None


def test_a_group_events_record_keeps_its_activity():
    record = recorded()
    record.update(activity_id=42, staff_id=None, staff=None)
    body = record_update(record, text="готово", custom_field="notify", comment=False)
    assert body["activity_id"] == 42 and body["staff_id"] is None


def test_the_parser_reads_the_comment_without_our_line():
    body = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
    plain = parse_record_webhook(body).facts
    body["data"]["comment"] = f"{body['data']['comment']}\n{PREFIX} Напоминание доставлено в MAX 02.12 18:02"
    body["data"]["custom_fields"] = {"notify_status": "Напоминание доставлено в MAX 02.12 18:02"}
    assert parse_record_webhook(body).facts == plain
    body["data"]["comment"] = f"{PREFIX} доставлено"
    assert parse_record_webhook(body).facts.comment is None


def test_the_registry_builds_a_target_only_for_a_tenant_set_up_for_it():
    from connector.sources.amocrm_fetch import AmocrmNoteTarget
    from connector.sources.bitrix24_fetch import Bitrix24CommentTarget
    from connector.targets.generic import GenericTarget
    from connector.targets.yclients import YclientsRecordTarget
    from connector.usecases.writeback_targets import TARGETS

    bare = demo_tenant("t" * 20)
    RUNTIME = SimpleNamespace(sessions=None)  # noqa: N806 - only the amoCRM OAuth pair would need the database
    full = replace(bare, sources={
        "yclients": {"partner_token": "p", "user_token": "u"},
        "amocrm": {"subdomain": "clinic", "token": "long-lived-token"},
        "bitrix24": {"webhook_url": "https://portal.example/rest/1/code", "application_token": "app"}},
        writeback_block={"yclients": {"comment": True}, "bitrix24": {"comment": True}, "amocrm": {"note": True},
                         "generic": {"url": "https://clinic.example/h", "secret": "s" * 16}})
    assert {name: type(factory(full, RUNTIME)) for name, factory in TARGETS.items()} == {
        "yclients": YclientsRecordTarget, "amocrm": AmocrmNoteTarget, "bitrix24": Bitrix24CommentTarget,
        "generic": GenericTarget}
    assert full.writeback_bitrix24 == full.writeback.bitrix24
    assert all(factory(bare, RUNTIME) is None for factory in TARGETS.values())
    no_credentials = replace(full, sources={"yclients": {}})
    assert all(TARGETS[name](no_credentials, RUNTIME) is None for name in ("yclients", "amocrm", "bitrix24"))
    assert bare.writeback_bitrix24 is None
