"""The consent page: what the person sees, and that nothing more is shared than they ticked."""

from __future__ import annotations

import html
import re
from urllib.parse import unquote

import pytest

from tests.oauth.apps import (
    REDIRECT,
    authorization_url,
    consent_form,
    decide,
    exchange,
    make_app,
    person_id_of,
    pkce,
    response_params,
    seed_registration,
    signed_up,
    walk,
)


def consent_page(server, app, agent, scope="openid accounts:read transactions:read"):
    _, challenge = pkce()
    page = walk(agent, authorization_url(server, client_id=app.client_id, response_type="code",
                                         redirect_uri=REDIRECT, scope=scope, state="st-1",
                                         code_challenge=challenge, code_challenge_method="S256"))
    assert page.status_code == 200, page.text
    return page


def grants_of(server, agent):
    return server.services.store.grants.for_person(person_id_of(server, agent))


def test_the_page_names_the_app_its_destination_the_scopes_and_ticks_every_institution(server, nat):
    astoria = seed_registration(server, nat, "Bank of Astoria")
    brill = seed_registration(server, nat, "Credit Union of Brill")
    app = make_app(server, client_name="Grapher", logo_uri="https://app.example/logo.png")
    page = consent_page(server, app, nat)
    text = html.unescape(page.text)
    assert "Grapher" in text and "app.example" in text and "https://app.example/logo.png" in text
    assert "See your accounts" in text and "See your transactions" in text
    assert "See your account balances" not in text, "only the requested scopes are listed"
    _, csrf, ticked = consent_form(page)
    assert csrf and sorted(ticked) == sorted([astoria.id, brill.id])
    assert 'name="decision" value="allow"' in page.text and 'name="decision" value="deny"' in page.text
    assert "<label" in page.text


def test_only_the_ticked_institutions_are_granted(server, nat):
    astoria = seed_registration(server, nat, "Bank of Astoria")
    seed_registration(server, nat, "Credit Union of Brill")
    app = make_app(server)
    response = decide(nat, consent_page(server, app, nat), registrations=[astoria.id])
    assert "code" in response_params(response)
    [grant] = grants_of(server, nat)
    assert grant.registration_ids == {astoria.id}
    assert grant.client_id == app.client_id
    assert set(grant.scopes) == {"openid", "accounts:read", "transactions:read"}


def test_a_consent_post_without_the_csrf_token_is_refused(server, nat):
    seed_registration(server, nat, "Bank of Astoria")
    app = make_app(server)
    page = consent_page(server, app, nat)
    action, _, ticked = consent_form(page)
    forged = nat.http.post(nat.url(action), data={"decision": "allow", "registration": ticked},
                           allow_redirects=False)
    assert forged.status_code == 400 and "Location" not in forged.headers
    assert grants_of(server, nat) == []
    wrong = nat.http.post(nat.url(action), data={"decision": "allow", "registration": ticked,
                                                 "csrf_token": "guess"}, allow_redirects=False)
    assert wrong.status_code == 400 and grants_of(server, nat) == []


def test_a_shared_connection_is_all_or_none(server, nat):
    first = seed_registration(server, nat, "Bank of Astoria", provider="moneyhub", share_group="mh-user")
    second = seed_registration(server, nat, "Monami Card", provider="moneyhub", share_group="mh-user")
    alone = seed_registration(server, nat, "Credit Union of Brill")
    app = make_app(server)
    page = consent_page(server, app, nat)
    assert "one shared connection" in page.text and "Tick all of them or none" in page.text

    partial = decide(nat, page, registrations=[first.id, alone.id])
    assert partial.status_code == 400 and "Location" not in partial.headers
    assert "can only be shared together" in html.unescape(partial.text)
    assert grants_of(server, nat) == [], "never silently share more (or less) than ticked"
    # the page comes back with the person's own ticks kept
    _, _, ticked = consent_form(partial)
    assert sorted(ticked) == sorted([first.id, alone.id])

    without_group = decide(nat, partial, registrations=[alone.id])
    assert "code" in response_params(without_group)
    assert grants_of(server, nat)[0].registration_ids == {alone.id}

    again = consent_page(server, app, nat, scope="openid accounts:read transactions:read "
                                                 "balances:read")
    whole = decide(nat, again, registrations=[first.id, second.id])
    assert "code" in response_params(whole)
    [grant] = grants_of(server, nat)
    assert grant.registration_ids == {first.id, second.id}


def test_someone_elses_registration_cannot_be_ticked(server, nat):
    seed_registration(server, nat, "Bank of Astoria")
    other = signed_up(server, "mallory")
    theirs = seed_registration(server, other, "Mallory Bank")
    app = make_app(server)
    response = decide(nat, consent_page(server, app, nat), registrations=[theirs.id])
    assert response.status_code == 400 and grants_of(server, nat) == []


def test_identity_only_requests_do_not_ask_about_institutions(server, nat):
    seed_registration(server, nat, "Bank of Astoria")
    app = make_app(server)
    page = consent_page(server, app, nat, scope="openid")
    assert 'name="registration"' not in page.text
    assert "code" in response_params(decide(nat, page))
    assert grants_of(server, nat)[0].registration_ids == frozenset()


def test_without_institutions_the_page_offers_to_connect_one_and_come_back(server, nat):
    app = make_app(server)
    page = consent_page(server, app, nat)
    assert "You have not connected any institution yet" in page.text
    link = re.search(r'href="(/connections/new\?next=[^"]+)"', page.text).group(1)
    resume = unquote(html.unescape(link).split("next=", 1)[1])
    assert resume.startswith("/authorize/continue/")
    chooser = nat.http.get(nat.url(html.unescape(link)))
    assert chooser.status_code == 200
    # coming back (as the registry does after a link) shows the consent page again
    back = walk(nat, resume)
    assert back.status_code == 200 and 'name="decision"' in back.text


@pytest.fixture
def sandbox_server(make_as, sandbox_bank):
    pytest.importorskip("plugins.sandbox.plugin", reason="the sandbox plugin is not in this checkout")
    return make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN="initial-access-token-for-the-tests",
                   AGGREGATOR_PLUGINS="sandbox", SANDBOX_URL=sandbox_bank.url,
                   SANDBOX_CLIENT_ID=sandbox_bank.client_id,
                   SANDBOX_CLIENT_SECRET=sandbox_bank.client_secret)


def test_connecting_a_bank_from_the_consent_page_returns_to_it(sandbox_server, sandbox_bank):
    server = sandbox_server
    nat = signed_up(server)
    app = make_app(server)
    verifier, challenge = pkce()
    page = walk(nat, authorization_url(server, client_id=app.client_id, response_type="code",
                                       redirect_uri=REDIRECT, scope="openid accounts:read",
                                       state="st-1", code_challenge=challenge,
                                       code_challenge_method="S256"))
    link = html.unescape(re.search(r'href="(/connections/new\?next=[^"]+)"', page.text).group(1))
    chooser = nat.http.get(nat.url(link))
    form = re.search(r'<form method="post" action="(/connections/new)" class="institution">\s*'
                     r'<input type="hidden" name="csrf_token" value="([^"]+)">\s*'
                     r'<input type="hidden" name="provider" value="sandbox">\s*'
                     r'<input type="hidden" name="institution" value="astoria">\s*'
                     r'<input type="hidden" name="next" value="([^"]+)">', chooser.text)
    assert form, chooser.text
    start = nat.http.post(nat.url(form.group(1)), allow_redirects=False, data={
        "csrf_token": form.group(2), "provider": "sandbox", "institution": "astoria",
        "next": html.unescape(form.group(3))})
    callback = sandbox_bank.login_and_approve(start.headers["Location"], username="nat")
    back = nat.http.get(callback, allow_redirects=False)
    assert back.headers["Location"].startswith("/authorize/continue/")
    consent = walk(nat, back.headers["Location"])
    assert "Bank of Astoria" in consent.text
    code = response_params(decide(nat, consent))["code"]
    tokens = exchange(app, code, verifier).json()
    grant = server.services.store.grants.get(tokens["grant_id"])
    [registration] = server.services.store.registrations.list(grant.person_id)
    assert grant.registration_ids == {registration.id}
