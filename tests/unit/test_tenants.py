"""The tenants file: defaults, ${ENV} secrets, and a clear error naming the bad key."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, time, timedelta
from pathlib import Path

import pytest

from connector.core.model import QuietHours
from connector.core.warmup import Warmup
from connector.tenants import TenantConfigError, load_tenants

ROOT = Path(__file__).resolve().parents[2]
ENV = {"ZDOROVIE_WEBHOOK_TOKEN": "a-long-enough-token-123", "TOKEN": "a-long-enough-token-123", "API": "k",
       "YCLIENTS_PARTNER_TOKEN": "p", "YCLIENTS_USER_TOKEN": "u"}
MINIMAL = "tenants:\n  - id: clinic\n    webhook_token: ${TOKEN}\n"


def load_text(tmp_path, text: str, env=ENV):
    path = tmp_path / "tenants.yaml"
    path.write_text(text, encoding="utf-8")
    return load_tenants(path, env)


def test_the_example_file_loads():
    tenants = load_tenants(ROOT / "connector.example.yaml", ENV)
    tenant = tenants["zdorovie"]
    assert tenant.webhook_token == ENV["ZDOROVIE_WEBHOOK_TOKEN"]
    assert [step.channel for step in tenant.cascade] == ["max", "telegram", "whatsapp", "sms"]
    assert tenant.cascade[3].timeout == timedelta(hours=1)
    assert tenant.sources["yclients"]["company_id"] == 512345


def test_defaults(tmp_path):
    tenant = load_text(tmp_path, MINIMAL)["clinic"]
    assert tenant.policy.quiet_hours == QuietHours(time(21), time(9))
    assert tenant.policy.reminder_offsets == (timedelta(days=1), timedelta(hours=2))
    assert tenant.timezone == tenant.policy.timezone == "Europe/Moscow"
    assert (tenant.policy.confirmation, tenant.policy.reschedule, tenant.policy.cancellation) == (True, True, True)
    assert [step.channel for step in tenant.cascade] == ["max", "telegram", "whatsapp", "sms"]


def test_quiet_hours_null_switches_them_off(tmp_path):
    assert load_text(tmp_path, MINIMAL + "    quiet_hours: null\n")["clinic"].policy.quiet_hours is None


def test_reminders_and_notices(tmp_path):
    tenant = load_text(tmp_path, MINIMAL + "    reminders: [P2D, PT3H]\n    notices: {confirmation: false}\n")["clinic"]
    assert tenant.policy.reminder_offsets == (timedelta(days=2), timedelta(hours=3))
    assert tenant.policy.confirmation is False and tenant.policy.reschedule is True


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("    quiet_hour: null\n", "quiet_hour"),
        ("    timezone: Mars/Olympus\n", "timezone"),
        ("    reminders: [1 day]\n", "reminders"),
        ("    quiet_hours: {start: '25:00', end: '09:00'}\n", "quiet_hours.start"),
        ("    cascade: [{channel: pigeon, provider: sandbox}]\n", "cascade[0].channel"),
        ("    cascade: [{channel: sms, provider: sandbox, timeout: soon}]\n", "cascade[0].timeout"),
        ("    cascade: [{channel: sms, provider: sandbox, on_unknown: retry}]\n", "cascade[0].on_unknown"),
        ("    providers: {smsru: {api_id: literal-secret-value}}\n", "providers.smsru.api_id"),
        ("    webhook_secret: whsec_literal\n", "webhook_secret"),
        ("    templates: {reminder: '{{ greeting '}\n", "templates.reminder"),
    ],
)
def test_a_bad_key_is_named(tmp_path, extra, named):
    with pytest.raises(TenantConfigError) as error:
        load_text(tmp_path, MINIMAL + extra)
    assert named in str(error.value) and "tenants.yaml" in str(error.value)


def test_on_unknown_is_carried_as_written(tmp_path):
    text = MINIMAL + ("    cascade: [{channel: max, provider: sandbox}, "
                      "{channel: sms, provider: sandbox, on_unknown: resend}]\n")
    assert [step.on_unknown for step in load_text(tmp_path, text)["clinic"].cascade] == [None, "resend"]


def test_a_literal_webhook_token_is_refused(tmp_path):
    with pytest.raises(TenantConfigError, match=r"webhook_token: a secret must be an \$\{ENV_VAR\} reference"):
        load_text(tmp_path, "tenants:\n  - id: clinic\n    webhook_token: a-long-enough-token-123\n")


def test_an_unset_variable_is_named(tmp_path):
    with pytest.raises(TenantConfigError, match="TOKEN is not set"):
        load_text(tmp_path, MINIMAL, env={})


def test_the_same_id_twice(tmp_path):
    with pytest.raises(TenantConfigError, match="same id"):
        load_text(tmp_path, MINIMAL + "  - id: clinic\n    webhook_token: ${TOKEN}\n")


def test_check_command_fails_the_deploy_with_the_key_named(tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text(MINIMAL + "    quiet_hour: null\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "connector", "check"], cwd=ROOT, capture_output=True, text=True,
                            env={"CONNECTOR_CONFIG": str(path), "TOKEN": ENV["TOKEN"], "PATH": "/usr/bin:/bin",
                                 "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "CONNECTOR_API_TOKEN": "x",
                                 "CONNECTOR_DEMO_TOKEN": "y"})
    assert result.returncode == 2
    assert "quiet_hour" in result.stderr


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("    cascade: [{channel: sms, provider: smsru}]\n", "provider 'smsru' has no entry under providers"),
        ("    cascade: [{channel: max, provider: smsru}]\n    providers: {smsru: {api_id: '${API}'}}\n",
         "smsru does not carry max"),
        ("    providers: {smsru: {api_id: '${API}', timeout: soon}}\n", "providers.smsru"),
    ],
)
def test_providers_are_checked_at_start_up(tmp_path, extra, named):
    from connector.entrypoints.bootstrap import check_providers

    with pytest.raises(TenantConfigError, match=named):
        for tenant in load_text(tmp_path, MINIMAL + extra).values():
            check_providers(tenant)


SMSRU = "    providers:\n      smsru:\n        api_id: ${API}\n"


@pytest.mark.parametrize(
    ("block", "named"),
    [
        ("warmup: {since: yesterday}", "tenants[0].providers.smsru.warmup.since: not a date: 'yesterday'"),
        ("warmup: {since: 2026-12-01T10:00:00}", "providers.smsru.warmup.since: not a date"),
        ("warmup: {start: -1}", "providers.smsru.warmup.start"),
        ("warmup: {start: many}", "providers.smsru.warmup.start"),
        ("warmup: {start: 2.5}", "providers.smsru.warmup.start"),
        ("warmup: {growth: 0}", "providers.smsru.warmup.growth"),
        ("warmup: {growth: .inf}", "providers.smsru.warmup.growth"),
        ("warmup: {growth: fast}", "providers.smsru.warmup.growth"),
        ("warmup: {ceiling: 0}", "providers.smsru.warmup.ceiling"),
        ("warmup: {startt: 10}", "providers.smsru.warmup.startt"),
        ("warmup: 100", "providers.smsru.warmup"),
        ("rate_per_second: fast", "providers.smsru.rate_per_second"),
        ("rate_per_second: 0", "providers.smsru.rate_per_second"),
        ("rate_per_second: -3", "providers.smsru.rate_per_second"),
        ("max_in_flight: 0", "providers.smsru.max_in_flight"),
        ("max_in_flight: 2.5", "providers.smsru.max_in_flight"),
        ("max_in_flight: lots", "providers.smsru.max_in_flight"),
        ("timeout: soon", "providers.smsru.timeout"),
        ("timeout: [1, 2, 3]", "providers.smsru.timeout"),
    ],
)
def test_a_bad_provider_setting_is_named_with_its_key_path(tmp_path, block, named):
    with pytest.raises(TenantConfigError) as error:
        load_text(tmp_path, MINIMAL + SMSRU + f"        {block}\n")
    assert named in str(error.value)


@pytest.mark.parametrize(
    ("providers", "named"),
    [
        ("{pigeon: {}}", "providers.pigeon"),
        ("{smsru: just-text}", "providers.smsru"),
        ("[smsru]", "providers"),
    ],
)
def test_a_bad_providers_block_is_named(tmp_path, providers, named):
    with pytest.raises(TenantConfigError) as error:
        load_text(tmp_path, MINIMAL + f"    providers: {providers}\n")
    assert named in str(error.value)


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("{start: 50, growth: 1.5, since: 2026-12-01, ceiling: 2000}", Warmup(50, 1.5, date(2026, 12, 1), 2000)),
        ("{since: '2026-12-01'}", Warmup(since=date(2026, 12, 1))),  # quoted: still a date
        ("{start: 10, growth: 2}", Warmup(10, 2.0)),
        ("{}", Warmup()),
        ("null", None),
    ],
)
def test_provider_settings_are_typed_at_start_up(tmp_path, block, expected):
    text = MINIMAL + SMSRU + f"        warmup: {block}\n        rate_per_second: 5\n        max_in_flight: 3\n"
    settings = load_text(tmp_path, text)["clinic"].providers["smsru"]
    assert settings["warmup"] == expected
    assert (settings["rate_per_second"], settings["max_in_flight"], settings["api_id"]) == (5.0, 3, "k")


@pytest.mark.parametrize("command", ["check", "release"])
def test_check_and_release_name_a_bad_warm_up_date(tmp_path, command):
    path = tmp_path / "tenants.yaml"
    path.write_text(MINIMAL + SMSRU + "        warmup: {since: yesterday}\n", encoding="utf-8")
    env = {"CONNECTOR_CONFIG": str(path), "TOKEN": ENV["TOKEN"], "API": "k", "PATH": "/usr/bin:/bin",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "CONNECTOR_API_TOKEN": "x", "CONNECTOR_DEMO_TOKEN": "y"}
    result = subprocess.run([sys.executable, "-m", "connector", command], cwd=ROOT, capture_output=True, text=True,
                            env=env)
    assert result.returncode == 2
    assert "tenants[0].providers.smsru.warmup.since: not a date: 'yesterday'" in result.stderr
    assert not (tmp_path / "x.db").exists()  # nothing migrated: the deploy stops at the typo


YCLIENTS = "    sources:\n      yclients:\n"


@pytest.mark.parametrize(
    ("block", "named"),
    [
        ("company_id: {id: 512345}", "tenants[0].sources.yclients.company_id: not a YCLIENTS company id"),
        ("company_id: true", "tenants[0].sources.yclients.company_id: not a YCLIENTS company id: True"),
        ("company_id: branch-one", "sources.yclients.company_id: not a YCLIENTS company id: 'branch-one'"),
        ("company_id: -5", "sources.yclients.company_id"),
        ("company_id: [512345, 2.5]", "sources.yclients.company_id"),
        ("company_id: []", "sources.yclients.company_id: write at least one company id"),
        ("backfill: 1 day", "tenants[0].sources.yclients.backfill: not an ISO 8601 duration"),
        ("backfill: 3", "sources.yclients.backfill"),
        ("timeout: soon", "sources.yclients.timeout"),
        ("partner_token: [a, b]", "sources.yclients.partner_token"),
        ("compnay_id: 512345", "sources.yclients.compnay_id"),
    ],
)
def test_a_bad_yclients_setting_is_named_with_its_key_path(tmp_path, block, named):
    with pytest.raises(TenantConfigError) as error:
        load_text(tmp_path, MINIMAL + YCLIENTS + f"        {block}\n")
    assert named in str(error.value)


@pytest.mark.parametrize(
    ("sources", "named"),
    [
        ("{generic: {mapping: 5}}", "tenants[0].sources.generic.mapping: Not a valid string"),
        ("{generic: {mapping: [generic]}}", "sources.generic.mapping"),
        ("{generic: {mapping: ''}}", "sources.generic.mapping"),
        ("{generic: {mpping: generic}}", "sources.generic.mpping"),
        ("{pigeon: {}}", "sources.pigeon"),
        ("{yclients: just-text}", "sources.yclients"),
        ("[yclients]", "sources"),
    ],
)
def test_a_bad_sources_block_is_named(tmp_path, sources, named):
    with pytest.raises(TenantConfigError) as error:
        load_text(tmp_path, MINIMAL + f"    sources: {sources}\n")
    assert named in str(error.value)


@pytest.mark.parametrize(
    ("block", "named"),
    [
        ("bot_name: [ClinicBot]", "providers.smsru.bot_name"),
        ("bot_name: 12", "providers.smsru.bot_name"),
    ],
)
def test_a_bad_bot_name_is_named(tmp_path, block, named):
    with pytest.raises(TenantConfigError) as error:
        load_text(tmp_path, MINIMAL + SMSRU + f"        {block}\n")
    assert named in str(error.value)


@pytest.mark.parametrize(
    ("block", "company_ids", "backfill"),
    [
        ("company_id: 512345", {"512345"}, timedelta(days=1)),
        ("company_id: '512345'", {"512345"}, timedelta(days=1)),  # the same branch, written as text
        ("company_id: [512345, '77', 512345]\n        backfill: PT6H", {"512345", "77"}, timedelta(hours=6)),
        ("backfill: P3D", set(), timedelta(days=3)),  # no branch named: any is accepted
    ],
)
def test_yclients_settings_are_typed_at_start_up(tmp_path, block, company_ids, backfill):
    text = MINIMAL + YCLIENTS + f"        {block}\n        partner_token: ${{YCLIENTS_PARTNER_TOKEN}}\n"
    source = load_text(tmp_path, text)["clinic"].yclients
    assert source is not None
    assert (source.company_ids, source.backfill, source.partner_token) == (company_ids, backfill, "p")
    assert source.client_settings() == {"partner_token": "p"}


def test_sources_and_provider_settings_are_typed_from_the_example_file():
    from connector.channels.settings import AccountLimits

    tenant = load_tenants(ROOT / "connector.example.yaml", ENV)["zdorovie"]
    assert tenant.yclients is not None and tenant.yclients.company_ids == {"512345"}
    assert (tenant.yclients.partner_token, tenant.yclients.user_token) == ("p", "u")
    assert tenant.generic is not None and tenant.generic.mapping == "generic"
    assert tenant.limits("pigeon") == AccountLimits(None, None)  # no block: no limit of its own


def test_account_limits_and_bot_name_are_typed(tmp_path):
    from connector.channels.settings import AccountLimits

    text = MINIMAL + SMSRU + "        rate_per_second: 5\n        max_in_flight: 3\n        bot_name: ClinicBot\n"
    tenant = load_text(tmp_path, text)["clinic"]
    assert tenant.limits("smsru") == AccountLimits(rate_per_second=5.0, max_in_flight=3)
    assert tenant.provider_settings["smsru"].bot_name == "ClinicBot"
    assert tenant.generic is None and tenant.yclients is None


def test_a_tenant_made_in_code_is_checked_when_made():
    from dataclasses import replace

    from connector.tenants import demo_tenant

    demo = demo_tenant("a-long-enough-token-123")
    with pytest.raises(TenantConfigError, match=r"tenant demo: sources\.yclients\.company_id"):
        replace(demo, sources={"yclients": {"company_id": {"id": 1}}})
    with pytest.raises(TenantConfigError, match=r"tenant demo: providers\.smsru\.rate_per_second"):
        replace(demo, providers={"smsru": {"api_id": "k", "rate_per_second": -1}})
    changed = replace(demo, sources={"yclients": {"company_id": [7, 8]}})
    assert changed.yclients is not None and changed.yclients.company_ids == {"7", "8"}  # typed again, not stale


@pytest.mark.parametrize(
    ("block", "named"),
    [
        (YCLIENTS + "        company_id: {id: 512345}\n", "tenants[0].sources.yclients.company_id"),
        (YCLIENTS + "        backfill: yesterday\n", "tenants[0].sources.yclients.backfill"),
        ("    sources: {generic: {mapping: 5}}\n", "tenants[0].sources.generic.mapping"),
        (SMSRU + "        rate_per_second: -1\n", "tenants[0].providers.smsru.rate_per_second"),
    ],
)
def test_check_names_a_bad_typed_block(tmp_path, block, named):
    path = tmp_path / "tenants.yaml"
    path.write_text(MINIMAL + block, encoding="utf-8")
    env = {"CONNECTOR_CONFIG": str(path), "TOKEN": ENV["TOKEN"], "API": "k", "PATH": "/usr/bin:/bin",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "CONNECTOR_API_TOKEN": "x", "CONNECTOR_DEMO_TOKEN": "y"}
    result = subprocess.run([sys.executable, "-m", "connector", "check"], cwd=ROOT, capture_output=True, text=True,
                            env=env)
    assert result.returncode == 2
    assert named in result.stderr
