"""Only the sandbox reports on itself (it lives in our process and cannot call back over HTTP); the Channel port
knows nothing of it, and an account says so once, when it is built."""

from __future__ import annotations

import json
from dataclasses import replace

from connector.channels.base import Channel, OutboundMessage, Recipient, SendResult
from connector.core.model import AttemptStatus
from connector.entrypoints.bootstrap import Accounts
from connector.tenants import demo_tenant


def message(phone: str, channel: str = "max") -> OutboundMessage:
    return OutboundMessage("m1", "demo", channel, Recipient(phone), "text")


def test_the_port_has_no_self_reporting():
    assert not hasattr(Channel, "scheduled_reports") and not hasattr(Channel, "reports_after")


def test_a_sandbox_account_reports_what_its_sends_will_cause():
    tenant = demo_tenant("t" * 32)
    account = Accounts({"demo": tenant}).get("demo", "sandbox")
    assert account.reporter is not None
    sent = SendResult(AttemptStatus.SENT, provider_message_id="sbx-m1")
    # digit 1: MAX delivered, then read, each after its configured delay
    reports = account.reporter.reports_after(message("+79161234561"), sent)
    assert [(delay, json.loads(body)) for delay, body in reports] == [
        (2.0, {"id": "sbx-m1", "status": "delivered"}), (4.0, {"id": "sbx-m1", "status": "read"})]
    # a send that did not go out causes nothing
    assert account.reporter.reports_after(message("+79161234562"),
                                          SendResult(AttemptStatus.NOT_REGISTERED)) == []


def test_a_real_provider_account_reports_nothing_itself():
    tenant = demo_tenant("t" * 32)
    tenant = replace(tenant, providers={"smsru": {"api_id": "k"}})
    assert Accounts({"demo": tenant}).get("demo", "smsru").reporter is None
