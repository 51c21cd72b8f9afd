"""The generic OIDC plugin: the contract suite against the sandbox bank (client secrets) and
against a strict OpenID Provider (PAR, private_key_jwt, ID tokens), then its particulars."""

from __future__ import annotations

import json
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc.jwk import RSAKey
from marshmallow import ValidationError

from aggregator.testing.plugin_contract import (
    PluginContract,
    as_registration,
    build_plugin,
    params_from_redirect,
)
from aggregator.upstream.contract import (
    LinkInvalid,
    Person,
    UpstreamError,
    UpstreamUnavailable,
)
from aggregator.upstream.plugin_keys import generate_jwks
from plugins.oidc.config import OIDCConfig
from plugins.oidc.plugin import OIDCPlugin
from tests.plugins.oidc_provider import OpenIDProvider, running

CALLBACK = "http://127.0.0.1:8000/connections/callback/oidc"  # build_plugin's default issuer
PUBLIC_JWKS, PRIVATE_JWKS = generate_jwks("PS256")


def bank_environ(bank, **extra: str) -> dict[str, str]:
    """The sandbox bank's institutions, configured by hand as an operator would."""
    institutions = [
        {"id": "astoria", "name": "Bank of Astoria", "issuer": bank.issuer("astoria")},
        {"id": "norma", "name": "Norma Securities", "issuer": bank.issuer("norma")},
    ]
    return {"client_id": bank.client_id, "client_secret": bank.client_secret,
            "institutions": json.dumps(institutions), **extra}


@pytest.fixture
def provider():
    with running(OpenIDProvider("aggregator-fapi", PUBLIC_JWKS, CALLBACK)) as started:
        yield started


def provider_environ(provider: OpenIDProvider, **extra: str) -> dict[str, str]:
    return {
        "issuer": provider.url,
        "client_id": provider.client_id,
        "auth_method": "private_key_jwt",
        "private_jwks": json.dumps(PRIVATE_JWKS),
        "institution_name": "Pat's Bank",
        "extra_scopes": "openid offline_access",
        "scopes": json.dumps({"accounts:read": "accounts", "transactions:read": "transactions"}),
        "endpoint": provider.url + "/api/{region}/customers/{sub}",
        **extra,
    }


# -- the contract, three ways --------------------------------------------------------------------


class TestContractWithClientSecretBasic(PluginContract):
    @pytest.fixture
    def plugin(self, sandbox_bank, redis_url):
        return build_plugin(OIDCPlugin, "oidc", bank_environ(sandbox_bank), redis_url)

    @pytest.fixture
    def approve(self, sandbox_bank):
        return lambda link: params_from_redirect(sandbox_bank.login_and_approve(link.redirect_url))


class TestContractWithClientSecretPost(TestContractWithClientSecretBasic):
    @pytest.fixture
    def plugin(self, sandbox_bank, redis_url):
        environ = bank_environ(sandbox_bank, auth_method="client_secret_post")
        return build_plugin(OIDCPlugin, "oidc", environ, redis_url)


class TestContractWithPARAndPrivateKeyJWT(PluginContract):
    @pytest.fixture
    def plugin(self, provider, redis_url):
        return build_plugin(OIDCPlugin, "oidc", provider_environ(provider), redis_url)

    @pytest.fixture
    def approve(self, provider):
        return lambda link: params_from_redirect(provider.approve(link.redirect_url))


# -- the strict provider's paths -----------------------------------------------------------------


@pytest.fixture
def person() -> Person:
    return Person(id=secrets.token_hex(8), username="pat")


@pytest.fixture
def fapi_plugin(provider, redis_url) -> OIDCPlugin:
    return build_plugin(OIDCPlugin, "oidc", provider_environ(provider), redis_url)


def begin(plugin, person):
    state = secrets.token_urlsafe(16)
    return state, plugin.begin_link(person, "default", state=state)


def test_the_authorization_request_is_pushed_and_only_its_handle_travels(fapi_plugin, person,
                                                                         provider):
    state, start = begin(fapi_plugin, person)
    [pushed] = provider.pushed
    assert pushed["state"] == state
    assert pushed["scope"] == "accounts transactions openid offline_access"
    assert pushed["code_challenge_method"] == "S256"
    assert pushed["nonce"] == start.remember["nonce"]
    assert pushed["redirect_uri"] == CALLBACK
    query = parse_qs(urlsplit(start.redirect_url).query)
    assert set(query) == {"client_id", "request_uri"}  # RFC 9126 §4


def test_every_call_is_authenticated_with_a_fresh_private_key_jwt(fapi_plugin, person, provider):
    _, start = begin(fapi_plugin, person)
    params = params_from_redirect(provider.approve(start.redirect_url))
    [linked] = fapi_plugin.complete_link(person, params, start.remember)
    fapi_plugin.unlink(as_registration(person, linked))

    assert [a["path"] for a in provider.assertions] == ["/par", "/token", "/revoke"]
    kid = PRIVATE_JWKS["keys"][0]["kid"]
    for assertion in provider.assertions:
        assert (assertion["header"]["alg"], assertion["header"]["kid"]) == ("PS256", kid)
        assert assertion["claims"]["aud"] == provider.url + "/token"
        assert assertion["claims"]["exp"] - assertion["claims"]["iat"] <= 60
    assert len({a["claims"]["jti"] for a in provider.assertions}) == 3


def test_the_endpoint_is_filled_from_the_customers_claims(fapi_plugin, person, provider):
    _, start = begin(fapi_plugin, person)
    params = params_from_redirect(provider.approve(start.redirect_url))
    [linked] = fapi_plugin.complete_link(person, params, start.remember)
    assert linked.external_id == "cust-4821"
    assert linked.endpoint == f"{provider.url}/api/uk-south/customers/cust-4821"
    assert linked.institution.name == "Pat's Bank"


def test_an_id_token_for_another_nonce_is_refused(fapi_plugin, person, provider):
    _, start = begin(fapi_plugin, person)
    params = params_from_redirect(provider.approve(start.redirect_url))
    with pytest.raises(LinkInvalid, match="nonce"):
        fapi_plugin.complete_link(person, params, {**start.remember, "nonce": "another"})


def test_a_forged_id_token_is_refused(fapi_plugin, person, provider):
    provider.forged_id_token_key = RSAKey.generate_key(
        2048, parameters={"kid": provider.signing_key.kid}
    )
    _, start = begin(fapi_plugin, person)
    params = params_from_redirect(provider.approve(start.redirect_url))
    with pytest.raises(LinkInvalid, match="does not verify"):
        fapi_plugin.complete_link(person, params, start.remember)


def test_a_callback_naming_another_issuer_or_none_is_refused(fapi_plugin, person, provider):
    for tampered in ({"iss": "http://127.0.0.1:1/evil"}, {"iss": None}):
        _, start = begin(fapi_plugin, person)
        params = params_from_redirect(provider.approve(start.redirect_url))
        params.update(tampered)
        params = {k: v for k, v in params.items() if v is not None}
        with pytest.raises(LinkInvalid):
            fapi_plugin.complete_link(person, params, start.remember)


def test_metadata_for_another_issuer_is_not_trusted(provider, redis_url, person):
    impostor = provider.url.replace("127.0.0.1", "localhost")
    plugin = build_plugin(OIDCPlugin, "oidc", provider_environ(provider, issuer=impostor),
                          redis_url)
    with pytest.raises(UpstreamUnavailable, match="another issuer"):
        begin(plugin, person)


def test_tokens_are_narrowed_to_what_is_asked(fapi_plugin, person, provider):
    _, start = begin(fapi_plugin, person)
    params = params_from_redirect(provider.approve(start.redirect_url))
    registration = as_registration(person, fapi_plugin.complete_link(person, params,
                                                                     start.remember)[0])
    result = fapi_plugin.access_token(registration, frozenset({"transactions:read"}))
    assert result.token.scope == "transactions"
    assert result.token.token_type == "Bearer"
    assert result.secrets and result.secrets["refresh_token"] != registration.secrets[
        "refresh_token"]
    # balances:read maps to nothing at this provider: no token rather than a wider one.
    with pytest.raises(UpstreamError):
        fapi_plugin.access_token(registration, frozenset({"balances:read"}))


def test_a_plugin_never_talks_to_an_issuer_it_was_not_configured_with(fapi_plugin, person,
                                                                      provider):
    _, start = begin(fapi_plugin, person)
    params = params_from_redirect(provider.approve(start.redirect_url))
    with pytest.raises(LinkInvalid):
        fapi_plugin.complete_link(person, params, {**start.remember,
                                                   "issuer": "http://127.0.0.1:1/x"})


# -- configuration -------------------------------------------------------------------------------


def test_a_single_issuer_makes_one_institution_named_after_its_host():
    config = OIDCConfig().load({"issuer": "https://id.bank.example/", "client_id": "c",
                                "client_secret": "s"})
    assert config["institutions"] == [{"id": "default", "name": "id.bank.example",
                                       "issuer": "https://id.bank.example",
                                       "endpoint": "{endpoint}"}]
    assert config["scopes"] == {"accounts:read": "accounts", "balances:read": "balances",
                                "transactions:read": "transactions"}


@pytest.mark.parametrize(
    ("environ", "field"),
    [
        ({"issuer": "https://x.example", "client_id": "c"}, "client_secret"),
        ({"issuer": "https://x.example", "client_id": "c", "auth_method": "private_key_jwt"},
         "private_jwks"),
        ({"issuer": "https://x.example", "client_id": "c", "client_secret": "s",
          "auth_method": "none"}, "auth_method"),
        ({"client_id": "c", "client_secret": "s"}, "issuer"),
        ({"client_id": "c", "client_secret": "s",
          "institutions": '[{"id": "a", "name": "A"}]'}, "institutions"),
        ({"issuer": "https://x.example", "client_id": "c", "client_secret": "s",
          "institutions": "[not json"}, "institutions"),
        ({"issuer": "https://x.example", "client_id": "c", "client_secret": "s",
          "institutions": '[{"id": "a", "name": "A"}, {"id": "a", "name": "B"}]'},
         "institutions"),
        ({"issuer": "https://x.example", "client_id": "c", "client_secret": "s",
          "scopes": '{"payments:write": "pay"}'}, "scopes"),
        ({"issuer": "https://x.example", "client_id": "c", "client_secret": "s",
          "endpoint": "https://api.example/{sub"}, "endpoint"),
        ({"issuer": "ftp://x.example", "client_id": "c", "client_secret": "s"}, "issuer"),
    ],
)
def test_bad_configuration_names_the_field(environ, field):
    with pytest.raises(ValidationError) as caught:
        OIDCConfig().load(environ)
    assert field in caught.value.normalized_messages()
