"""amoCRM webhook bodies (form-encoded, API v2 shape, batched) as Hints: one per lead, the account checked."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from connector.sources.amocrm import parse_hints
from connector.sources.amocrm_settings import AmocrmSource
from connector.sources.brackets import parse_form
from connector.sources.crm import Hint
from connector.sources.errors import PayloadError
from connector.sources.signatures import AuthError
from tests.fixtures import sample

CLINIC = AmocrmSource(subdomain="clinic", token="long-lived")
ACCOUNT = {"account[subdomain]": "clinic", "account[id]": "31415926",
           "account[_links][self]": "https://clinic.amocrm.ru"}


def body(pairs: dict[str, str] | list[tuple[str, str]], account: dict[str, str] | None = None) -> dict:
    items = list(pairs.items()) if isinstance(pairs, dict) else list(pairs)
    items += list((ACCOUNT if account is None else account).items())
    return parse_form(urlencode(items).encode())


def test_the_sample_status_hook_names_its_lead():
    raw = sample("amocrm", "lead_status_webhook.txt").read_bytes()
    assert parse_hints(parse_form(raw), CLINIC) == [Hint("24681357")]


def test_a_batch_gives_one_hint_per_lead_in_the_order_first_named():
    hook = body([("leads[status][0][id]", "101"), ("leads[status][0][status_id]", "55501"),
                 ("leads[status][1][id]", "102"), ("leads[update][0][id]", "103"),
                 ("leads[update][1][id]", "101"), ("leads[add][0][id]", "104")])
    # add, update, status: each lead once, whatever number of events names it
    assert parse_hints(hook, CLINIC) == [Hint("104"), Hint("103"), Hint("101"), Hint("102")]


def test_a_deleted_lead_is_a_deleted_hint():
    hook = body({"leads[delete][0][id]": "201", "leads[delete][0][status_id]": "55501",
                 "leads[delete][1][id]": "202", "leads[update][0][id]": "203"})
    assert parse_hints(hook, CLINIC) == [Hint("203"), Hint("201", deleted=True), Hint("202", deleted=True)]


def test_a_lead_updated_then_deleted_in_one_batch_is_one_deleted_hint():
    hook = body({"leads[update][0][id]": "301", "leads[delete][0][id]": "301"})
    assert parse_hints(hook, CLINIC) == [Hint("301", deleted=True)]


def test_a_lead_deleted_and_restored_in_one_batch_is_read_again_not_deleted():
    hook = body({"leads[delete][0][id]": "302", "leads[restore][0][id]": "302"})
    assert parse_hints(hook, CLINIC) == [Hint("302")]


def test_a_changed_contact_has_its_linked_leads_read_again():
    hook = body([("contacts[update][0][id]", "11223344"), ("contacts[update][0][name]", "Смирнов Иван"),
                 ("contacts[update][0][linked_leads_id][24681357][ID]", "24681357"),
                 ("contacts[update][0][linked_leads_id][24681358][ID]", "24681358"),
                 ("contacts[add][0][id]", "11223345"), ("contacts[add][0][linked_leads_id][0]", "501"),
                 ("leads[update][0][id]", "24681357")])
    # the leads the body names first, then each contact's leads (newest first), each lead once
    assert parse_hints(hook, CLINIC) == [Hint("24681357"), Hint("501"), Hint("24681358")]


def test_a_contact_with_many_leads_has_only_its_newest_read_again():
    hook = body([(f"contacts[update][0][linked_leads_id][{lead}][ID]", str(lead)) for lead in range(1, 31)])
    assert parse_hints(hook, CLINIC) == [Hint(str(lead)) for lead in range(30, 10, -1)]


def test_a_deleted_contact_reads_nothing_again():
    hook = body({"contacts[delete][0][id]": "11223344", "contacts[delete][0][linked_leads_id][7][ID]": "7"})
    assert parse_hints(hook, CLINIC) == []


@pytest.mark.parametrize("pairs", [
    {"contacts[update][0][id]": "11223344", "contacts[update][0][name]": "Смирнов Иван"},
    {"leads[note][0][note][id]": "5", "leads[note][0][note][element_id]": "101"},  # our own notes echo back
    {"leads[responsible][0][id]": "101"},
    {"unsorted[add][0][uid]": "x"},
], ids=["contacts", "notes", "responsible", "unsorted"])
def test_a_hook_about_no_lead_change_gives_no_hint(pairs):
    assert parse_hints(body(pairs), CLINIC) == []


def test_the_account_is_compared_without_regard_to_case():
    assert parse_hints(body({"leads[add][0][id]": "7"}, {"account[subdomain]": "Clinic"}), CLINIC) == [Hint("7")]


@pytest.mark.parametrize("account", [
    {"account[subdomain]": "otherclinic", "account[id]": "27182818"},
    {"account[id]": "31415926"},
    {},
], ids=["another account", "no subdomain", "no account"])
def test_a_body_from_another_account_is_refused(account):
    with pytest.raises(AuthError):
        parse_hints(body({"leads[status][0][id]": "24681357"}, account), CLINIC)


@pytest.mark.parametrize(("pairs", "field"), [
    ({"leads[status][0][id]": "abc"}, "leads[status][0][id]"),
    ({"leads[status][0][id]": ""}, "leads[status][0][id]"),
    ({"leads[status][0][id]": "0"}, "leads[status][0][id]"),
    ({"leads[update][0][name]": "no id"}, "leads[update][0][id]"),
    ({"leads[status][0]": "24681357"}, "leads[status][0]"),
    ({"leads[status]": "24681357"}, "leads[status]"),
    ({"leads": "24681357"}, "leads"),
    ({"contacts": "11223344"}, "contacts"),
    ({"contacts[update][0][linked_leads_id][x][ID]": "x"}, "contacts[update][0][linked_leads_id][0]"),
    ({"contacts[update][0][linked_leads_id]": "7"}, "contacts[update][0][linked_leads_id]"),
])
def test_a_malformed_body_names_the_field(pairs, field):
    with pytest.raises(PayloadError) as caught:
        parse_hints(body(pairs), CLINIC)
    assert caught.value.field == field


def test_a_body_that_is_not_a_form_object_is_malformed():
    with pytest.raises(PayloadError) as caught:
        parse_hints(["leads"], CLINIC)  # type: ignore[arg-type]
    assert caught.value.field == "body"
