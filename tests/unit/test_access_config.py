"""Staff users and API tokens in the tenants file, the access rules they feed, and `hash-password`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from werkzeug.security import check_password_hash, generate_password_hash

from connector.tenants import TenantConfigError, load_staff, load_tenants
from connector.web.access import ROLES, Staff, safe_next

ROOT = Path(__file__).resolve().parents[2]
HASH = generate_password_hash("correct horse battery", method="pbkdf2:sha256:1000")
ENV = {"TOKEN": "a-long-enough-token-123", "OTHER": "another-long-token-456", "CRM_READ": "crm-read-token-0123456",
       "CRM_NEXT": "crm-next-token-0123456", "HASHED": HASH}
TENANTS = ("tenants:\n  - id: clinic\n    webhook_token: ${TOKEN}\n"
           "  - id: second\n    webhook_token: ${OTHER}\n")


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "tenants.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def staff_entry(login="anna", password_hash=HASH, tenants="[clinic]", role="operator", name="Анна Иванова") -> str:
    return (f"  - login: {login}\n    name: {name}\n    password_hash: '{password_hash}'\n"
            f"    tenants: {tenants}\n    role: {role}\n")


def test_staff_users_load_with_their_hash_tenants_and_role(tmp_path):
    path = write(tmp_path, TENANTS + "staff:\n" + staff_entry()
                 + staff_entry(login="boss", tenants='"*"', role="admin", password_hash="${HASHED}"))
    assert set(load_tenants(path, ENV)) == {"clinic", "second"}
    staff = load_staff(path, ENV)
    anna, boss = staff["anna"], staff["boss"]
    assert (anna.name, anna.role, anna.tenants) == ("Анна Иванова", "operator", frozenset({"clinic"}))
    assert check_password_hash(anna.password_hash, "correct horse battery")
    assert (boss.role, boss.tenants, boss.password_hash) == ("admin", None, HASH)
    assert HASH not in repr(anna)


def test_no_staff_section_means_no_staff(tmp_path):
    assert load_staff(write(tmp_path, TENANTS), ENV) == {}


@pytest.mark.parametrize(("entry", "named"), [
    (staff_entry(tenants="[clinic, nowhere]"), "staff[0].tenants: no tenant 'nowhere'"),
    (staff_entry(password_hash="correct horse battery"), "staff[0].password_hash: not a password hash"),
    (staff_entry(password_hash="plain:abc$def$0123"), "staff[0].password_hash: not a password hash"),
    (staff_entry(role="root"), "staff[0].role"),
    (staff_entry(tenants="all"), "staff[0].tenants"),
    (staff_entry(tenants="[]"), "staff[0].tenants"),
    (staff_entry(login="has space"), "staff[0].login"),
    (staff_entry() + staff_entry(name="Другая"), "staff: the same login appears twice"),
    (staff_entry() + "    password: secret\n", "staff[0].password: a secret must be an ${ENV_VAR} reference"),
])
def test_a_bad_staff_entry_is_named(tmp_path, entry, named):
    path = write(tmp_path, TENANTS + "staff:\n" + entry)
    for load in (load_tenants, load_staff):
        with pytest.raises(TenantConfigError) as caught:
            load(path, ENV)
        assert named in str(caught.value), str(caught.value)
        assert "correct horse battery" not in str(caught.value)


def test_api_tokens_load_per_tenant_with_their_scopes(tmp_path):
    path = write(tmp_path, TENANTS + "    api_tokens:\n"
                 "      - {name: crm, token: '${CRM_READ}'}\n"
                 "      - {name: crm-2026, token: '${CRM_NEXT}', scopes: [read, send]}\n")
    tenants = load_tenants(path, ENV)
    first, second = tenants["second"].api_tokens
    assert (first.name, first.token, first.scopes) == ("crm", ENV["CRM_READ"], frozenset({"read"}))
    assert second.scopes == frozenset({"read", "send"})
    assert ENV["CRM_READ"] not in repr(first)
    assert tenants["clinic"].api_tokens == ()


@pytest.mark.parametrize(("tokens", "named"), [
    ("      - {name: crm, token: crm-read-token-0123456}\n",
     "tenants[1].api_tokens[0].token: a secret must be an ${ENV_VAR} reference"),
    ("      - {name: crm, token: '${CRM_READ}', scopes: [write]}\n", "tenants[1].api_tokens[0].scopes"),
    ("      - {name: crm, token: '${CRM_READ}', scopes: []}\n", "tenants[1].api_tokens[0].scopes"),
    ("      - {name: crm, token: '${UNSET}'}\n", "UNSET is not set"),
    ("      - {name: crm, token: '${CRM_READ}'}\n      - {name: crm, token: '${CRM_NEXT}'}\n",
     "tenants[1].api_tokens: the same name appears twice"),
])
def test_a_bad_api_token_is_named(tmp_path, tokens, named):
    with pytest.raises(TenantConfigError) as caught:
        load_tenants(write(tmp_path, TENANTS + "    api_tokens:\n" + tokens), ENV)
    assert named in str(caught.value)
    assert ENV["CRM_READ"] not in str(caught.value)


def test_roles_are_a_ladder_and_tenants_a_fence():
    viewer = Staff("v", "V", "viewer", frozenset({"clinic"}))
    admin = Staff("a", "A", "admin", None)
    assert [viewer.may(role) for role in ROLES] == [True, False, False]
    assert [Staff("o", "O", "operator", None).may(role) for role in ROLES] == [True, True, False]
    assert all(admin.may(role) for role in ROLES)
    assert viewer.sees("clinic") and not viewer.sees("second")
    assert admin.sees("second")


@pytest.mark.parametrize(("target", "kept"), [
    ("/status/demo", True), ("/status/demo/bookings/3?x=1", True), (None, False), ("", False),
    ("//evil.example/", False), ("https://evil.example/", False), ("/\\evil.example", False),
    ("status/demo", False), ("javascript:alert(1)", False),
])
def test_next_is_only_a_local_path(target, kept):
    assert safe_next(target) == (target if kept else None)


def hash_password(stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "connector", "hash-password"], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)


def test_hash_password_prints_a_werkzeug_hash_the_tenants_file_accepts(tmp_path):
    made = hash_password("correct horse battery\n")
    assert made.returncode == 0, made.stderr
    printed = made.stdout.strip()
    assert printed.startswith(("scrypt:", "pbkdf2:")) and "correct horse" not in printed
    assert check_password_hash(printed, "correct horse battery")
    assert not check_password_hash(printed, "correct horse batter")
    path = write(tmp_path, TENANTS + "staff:\n" + staff_entry(password_hash=printed))
    assert check_password_hash(load_staff(path, ENV)["anna"].password_hash, "correct horse battery")


def test_hash_password_refuses_a_short_password():
    refused = hash_password("short\n")
    assert refused.returncode == 1 and refused.stdout == ""
    assert "at least 8 characters" in refused.stderr
