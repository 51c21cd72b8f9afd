"""No Moneyhub token reaches a connection that is not a registration here.

Moneyhub's data token reaches every connection of one Moneyhub user, so each link gets a user
of its own; what a link leaves behind when its callback never comes or fails is deleted, and a
token is released only once its user holds nothing beyond what is registered here. People
linked under the old one-user-per-person model are reconciled the same way.
"""

from __future__ import annotations

import time

import pytest

from aggregator.upstream.contract import (
    DATA_SCOPES,
    Institution,
    LinkDenied,
    LinkedInstitution,
    LinkInvalid,
    Person,
    Registration,
    UpstreamUnavailable,
)
from plugins.moneyhub.plugin import MoneyhubPlugin
from plugins.moneyhub.users import ABANDONED_AFTER
from tests.fakes.moneyhub.catalog import BANKS_BY_ID
from tests.fixtures.moneyhub import MoneyhubFake
from tests.moneyhub.journeys import approve, begin, link, person, registration
from tests.moneyhub.reach import data_tokens, reached

MODELO = "b9be1fc1e54ae6d4229967411dc28545"
TEST_BANK = "235bd1c410e96b29dd34aa751d5cb054"


def stored(plugin: MoneyhubPlugin, who: Person, linked: LinkedInstitution) -> Registration:
    """Store ``linked`` as the core does after a link, and give the plugin's view of it."""
    registrations = plugin.context.notices.store.registrations  # type: ignore[attr-defined]
    return registrations.plugin_view(registrations.save_linked(who.id, "moneyhub", linked), who)


def abandon_a_link(plugin: MoneyhubPlugin, who: Person, bank: str) -> str:
    """The person approves at Moneyhub; the callback never reaches us. The link's user id."""
    start, remember, _ = begin(plugin, who, bank)
    approve(start)
    return remember["user_id"]


# ------------------------------------------------------------------------ abandoned links


def test_an_abandoned_link_is_deleted_at_the_next_link_once_it_cannot_complete(
    make_plugin, moneyhub_fake: MoneyhubFake, monkeypatch
):
    now = [time.time()]
    monkeypatch.setattr(moneyhub_fake.controls.settings, "clock", lambda: now[0])
    plugin, alex = make_plugin(clock=lambda: now[0]), person()
    kept = stored(plugin, alex, link(plugin, alex, MODELO)[0])
    lost = link(plugin, alex, MODELO)[0]  # completed, but the core never stored it
    abandoned = abandon_a_link(plugin, alex, TEST_BANK)
    assert moneyhub_fake.controls.connections(abandoned), "Moneyhub connected bank B"

    now[0] += ABANDONED_AFTER - 60
    link(plugin, alex, TEST_BANK)
    assert moneyhub_fake.controls.user(abandoned) is not None, "its callback may still come"

    now[0] += 120
    link(plugin, alex, TEST_BANK)
    assert moneyhub_fake.controls.user(abandoned) is None
    assert moneyhub_fake.controls.user(lost.metadata["moneyhub_user_id"]) is None
    assert moneyhub_fake.controls.user(kept.metadata["moneyhub_user_id"]) is not None
    assert plugin.access_token(kept, DATA_SCOPES).token.access_token


@pytest.mark.parametrize("callback", ["forged code", "refused"])
def test_a_failed_callback_deletes_its_moneyhub_user_at_once(make_plugin, moneyhub_fake,
                                                              callback):
    plugin, alex = make_plugin(), person()
    start, remember, state = begin(plugin, alex, MODELO)
    if callback == "refused":
        moneyhub_fake.controls.deny_authorization()
    params = approve(start)
    if callback == "forged code":
        params["code"] = "forged"
    with pytest.raises(LinkDenied if callback == "refused" else LinkInvalid):
        plugin.complete_link(alex, params, remember)
    assert moneyhub_fake.controls.user(remember["user_id"]) is None


def test_deleting_a_person_deletes_the_users_of_unfinished_links(make_plugin, moneyhub_fake):
    plugin, alex = make_plugin(), person()
    abandon_a_link(plugin, alex, MODELO)
    begin(plugin, alex, TEST_BANK)  # not even approved
    plugin.forget_person(alex)
    assert moneyhub_fake.controls.users() == []


# ------------------------------------------------------------------------ before a release


def test_a_connection_beyond_the_registration_is_deleted_before_a_token_is_released(
    make_plugin, moneyhub_fake
):
    plugin, alex = make_plugin(), person()
    reg = registration(alex, link(plugin, alex, MODELO)[0])
    user_id = reg.metadata["moneyhub_user_id"]
    stray = moneyhub_fake.controls.create_connection(user_id, BANKS_BY_ID[TEST_BANK])
    token = plugin.access_token(reg, DATA_SCOPES).token
    assert moneyhub_fake.controls.connection(stray.id) is None
    assert reached(reg.endpoint, token.access_token) == {reg.external_id}


def test_no_token_while_a_stray_connection_cannot_be_deleted(make_plugin, moneyhub_fake):
    plugin, alex = make_plugin(), person()
    reg = registration(alex, link(plugin, alex, MODELO)[0])
    user_id = reg.metadata["moneyhub_user_id"]
    moneyhub_fake.controls.create_connection(user_id, BANKS_BY_ID[TEST_BANK])
    moneyhub_fake.controls.fail("users.delete_connection", 503)
    with pytest.raises(UpstreamUnavailable, match="not registered here"):
        plugin.access_token(reg, DATA_SCOPES)
    assert data_tokens(moneyhub_fake, user_id) == []


# ------------------------------------------------------------------------ the old model


def legacy_person(plugin: MoneyhubPlugin, fake: MoneyhubFake
                  ) -> tuple[Person, str, list[Registration], str]:
    """Someone linked before users were per link: one shared Moneyhub user with Modelo and the
    test bank registered here (one share group), and a third connection never registered."""
    alex = person()
    user = fake.controls.create_user(plugin.settings.client_id, alex.id)
    plugin.context.cache.set("user", user.user_id, person_id=alex.id)
    plugin.context.cache.set(f"owner:{user.user_id}", alex.id)
    registrations = []
    for bank_id in (MODELO, TEST_BANK):
        bank = BANKS_BY_ID[bank_id]
        connection = fake.controls.create_connection(user.user_id, bank)
        registrations.append(stored(plugin, alex, LinkedInstitution(
            institution=Institution(bank.id, bank.name),
            external_id=connection.id,
            endpoint=fake.data_api_url,
            secrets={},
            metadata={"moneyhub_user_id": user.user_id, "bank_id": bank.id},
            share_group="moneyhub:legacy",
        )))
    stray = fake.controls.create_connection(user.user_id, BANKS_BY_ID[MODELO])
    return alex, user.user_id, registrations, stray.id


def test_old_model_registrations_are_reconciled_before_a_release(make_plugin, moneyhub_fake):
    plugin = make_plugin()
    _, user_id, (modelo, test_bank), stray = legacy_person(plugin, moneyhub_fake)
    token = plugin.access_token(modelo, DATA_SCOPES).token
    assert moneyhub_fake.controls.connection(stray) is None
    assert reached(modelo.endpoint, token.access_token) == {modelo.external_id,
                                                            test_bank.external_id}, (
        "the person's two registrations, still one share group, and nothing else"
    )


def test_an_old_model_user_goes_with_its_last_registration(make_plugin, moneyhub_fake):
    plugin = make_plugin()
    alex, user_id, (modelo, test_bank), stray = legacy_person(plugin, moneyhub_fake)
    registrations = plugin.context.notices.store.registrations
    plugin.unlink(modelo)
    registrations.delete(registrations.get(alex.id, modelo.id))  # as the core does next
    assert moneyhub_fake.controls.connection(modelo.external_id) is None
    assert moneyhub_fake.controls.connection(stray) is None, "not registered here either"
    assert [c.id for c in moneyhub_fake.controls.connections(user_id)] == [test_bank.external_id]
    plugin.unlink(test_bank)
    assert moneyhub_fake.controls.user(user_id) is None
    assert plugin.context.cache.get("user", person_id=alex.id) is None


def test_a_link_begun_under_the_old_model_is_refused(make_plugin, moneyhub_fake):
    plugin, alex = make_plugin(), person()
    start, remember, _ = begin(plugin, alex, MODELO)
    del remember["dedicated"]  # what a pending link stored before the change carries
    with pytest.raises(LinkInvalid, match="connect the bank again"):
        plugin.complete_link(alex, approve(start), remember)
