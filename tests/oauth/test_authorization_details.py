"""Rich authorization requests (RFC 9396): an app asks for account information in detail, per
institution, and gets back exactly what the person granted, per institution."""

from __future__ import annotations

import html
import json
import re
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from tests.oauth.apps import (
    REDIRECT,
    TRANSACTIONS_AND_ASTORIA_ACCOUNTS,
    account_information,
    allow,
    ask,
    assert_error_redirect,
    authorization_url,
    consent_form,
    decide,
    details,
    granted,
    make_app,
    new_key,
    pkce,
    pushed,
    seed_registration,
    walk,
)

ACCOUNTS_LINE = "See your accounts: their names, types and numbers"
TRANSACTIONS_LINE = "See your transactions: amounts, dates and descriptions"


def offered(page: requests.Response) -> dict[str, str]:
    """Institution name -> its "for:" line, for every institution the consent page offers."""
    labels = re.findall(r'<label class="choice">(.*?)</label>', html.unescape(page.text), re.S)
    found = {}
    for label in labels:
        name = re.search(r'name="registration" value="[^"]+"[^>]*>\s*([^<]+?)\s*<', label).group(1)
        found[name] = re.search(r'<span class="for">for: ([^<]*)</span>', label).group(1)
    return found


def test_discovery_lists_account_information_and_payment_initiation(server):
    metadata = requests.get(f"{server.url}/.well-known/openid-configuration", timeout=10).json()
    assert metadata["authorization_details_types_supported"] == ["account_information",
                                                                 "payment_initiation"]
    oauth = requests.get(f"{server.url}/.well-known/oauth-authorization-server", timeout=10).json()
    assert oauth["authorization_details_types_supported"] == ["account_information",
                                                              "payment_initiation"]


def test_an_app_asking_only_in_details_gets_accounts_at_the_ticked_institution(server, nat, banks):
    astoria, _ = banks
    app = make_app(server)

    page, verifier = ask(server, app, nat, scope="openid",
                         authorization_details=details(account_information("accounts:read")))
    assert offered(page) == {"Bank of Astoria": ACCOUNTS_LINE, "Credit Union of Brill": ACCOUNTS_LINE}
    tokens = allow(app, nat, page, verifier, registrations=[astoria.id])

    assert tokens["authorization_details"] == [granted(astoria, "accounts:read")]
    assert "accounts:read" in tokens["scope"].split()

    introspection = app.post("/introspect", {"token": tokens["access_token"]}).json()
    assert introspection["active"] is True
    assert introspection["authorization_details"] == tokens["authorization_details"]
    members = list(introspection)
    assert members.index("authorization_details") < members.index("institutions")
    [(name, entry)] = introspection["institutions"].items()
    assert name == "Bank of Astoria" and entry["registration_id"] == astoria.id
    # the test server enables no provider, so no upstream token can be had: said, not faked
    assert entry["status"] == "error" and "access_token" not in entry
    assert "not enabled" in entry["error"]


def test_details_and_scope_combine_per_institution(server, nat, banks):
    astoria, brill = banks
    app = make_app(server)

    page, verifier = ask(server, app, nat, **TRANSACTIONS_AND_ASTORIA_ACCOUNTS)
    assert offered(page) == {"Bank of Astoria": f"{ACCOUNTS_LINE}; {TRANSACTIONS_LINE}",
                             "Credit Union of Brill": TRANSACTIONS_LINE}
    tokens = allow(app, nat, page, verifier)  # a first consent: both are ticked

    assert tokens["authorization_details"] == [
        granted(astoria, "accounts:read", "transactions:read"),
        granted(brill, "transactions:read"),
    ]
    assert set(tokens["scope"].split()) == {"openid", "accounts:read", "transactions:read"}


def test_naming_one_institution_offers_only_that_one(server, nat, banks):
    _, brill = banks
    app = make_app(server)

    page, verifier = ask(server, app, nat, scope="openid", authorization_details=details(
        account_information("balances:read", institutions=["Credit Union of Brill"])))
    assert offered(page) == {"Credit Union of Brill": "See your account balances"}
    assert consent_form(page)[2] == [brill.id]
    tokens = allow(app, nat, page, verifier)
    assert tokens["authorization_details"] == [granted(brill, "balances:read")]


MALFORMED = {
    "an unknown type": details({"type": "customer_information", "actions": ["accounts:read"]}),
    "not JSON": '[{"type": "account_information", "actions": ["accounts:read"]',
    "JSON but not an array": json.dumps(account_information("accounts:read")),
    "an empty array": "[]",
    "an entry that is not an object": details("account_information"),  # type: ignore[arg-type]
    "no actions": details({"type": "account_information"}),
    "empty actions": details(account_information()),
    "an action we do not offer": details(account_information("accounts:read", "payments")),
    "an unknown member": details({**account_information("accounts:read"),
                                  "locations": ["https://bank.example"]}),
    "institutions as one string": details({**account_information("accounts:read"),
                                           "institutions": "Bank of Astoria"}),
    "institutions not strings": details(account_information("accounts:read", institutions=[1, 2])),
}


def assert_refused_at_par_and_authorize(server, app, agent, value: str) -> None:
    at_par = pushed(app, authorization_details=value)
    assert at_par.status_code == 400, at_par.text
    assert at_par.json()["error"] == "invalid_authorization_details"
    at_authorize, _ = ask(server, app, agent, scope="openid", authorization_details=value)
    assert_error_redirect(at_authorize, server, "invalid_authorization_details")


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_details_are_refused_at_par_and_sent_back_from_authorize(server, nat, value):
    assert_refused_at_par_and_authorize(server, make_app(server), nat, value)


def test_an_action_the_app_is_not_registered_for_is_refused(server, nat):
    app = make_app(server, scope="openid accounts:read")
    assert_refused_at_par_and_authorize(server, app, nat, details(account_information("transactions:read")))


def test_details_in_a_signed_request_object(server, nat):
    astoria = seed_registration(server, nat, "Bank of Astoria")
    app = make_app(server, key=new_key("EC"))
    verifier, challenge = pkce()
    signed = app.request_object(
        response_type="code", redirect_uri=REDIRECT, scope="openid", state="st-1",
        code_challenge=challenge, code_challenge_method="S256",
        authorization_details=[account_information("balances:read")])  # a JSON array, as a claim

    page = walk(nat, authorization_url(server, client_id=app.client_id, request=signed))
    assert offered(page) == {"Bank of Astoria": "See your account balances"}
    tokens = allow(app, nat, page, verifier)
    assert tokens["authorization_details"] == [granted(astoria, "balances:read")]

    refused = app.request_object(response_type="code", redirect_uri=REDIRECT, scope="openid",
                                 state="st-1", code_challenge=challenge, code_challenge_method="S256",
                                 authorization_details=[account_information("payments")])
    at_par = app.post("/par", {"request": refused})
    assert at_par.status_code == 400 and at_par.json()["error"] == "invalid_authorization_details"


def test_authlib_client_pushes_details_and_reads_them_in_the_token_response(server, nat, banks):
    astoria, brill = banks
    app = make_app(server)
    metadata = requests.get(f"{server.url}/.well-known/openid-configuration", timeout=10).json()
    client = OAuth2Session(app.client_id, app.secret, token_endpoint_auth_method="client_secret_basic",
                           scope="openid", redirect_uri=REDIRECT, code_challenge_method="S256")

    verifier = generate_token(64)
    url, state = client.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier,
        authorization_details=details(account_information("accounts:read", "transactions:read")))
    response = client.post(metadata["pushed_authorization_request_endpoint"],
                           data=dict(parse_qsl(urlsplit(url).query)),
                           auth=client.client_auth("client_secret_basic"), withhold_token=True)
    assert response.status_code == 201, response.text

    page = walk(nat, authorization_url(server, client_id=app.client_id,
                                       request_uri=response.json()["request_uri"]))
    both = f"{ACCOUNTS_LINE}; {TRANSACTIONS_LINE}"
    assert offered(page) == {"Bank of Astoria": both, "Credit Union of Brill": both}
    location = decide(nat, page, registrations=[brill.id]).headers["Location"]
    token = client.fetch_token(metadata["token_endpoint"], authorization_response=location,
                               code_verifier=verifier, state=state)

    assert token["authorization_details"] == [granted(brill, "accounts:read", "transactions:read")]
    assert astoria.id not in json.dumps(token["authorization_details"])
    assert set(token["scope"].split()) == {"openid", "accounts:read", "transactions:read"}


def test_naming_only_institutions_the_person_lacks_says_so(server, nat):
    seed_registration(server, nat, "Bank of Astoria")
    app = make_app(server)
    page, _ = ask(server, app, nat, scope="openid", authorization_details=details(
        account_information("accounts:read", institutions=["Nowhere Bank"])))
    text = " ".join(html.unescape(page.text).split())
    assert "asks only about Nowhere Bank, which you have not connected here" in text
    assert "You have not connected any institution yet" not in text
    assert 'name="registration"' not in page.text
