"""What a client discovers before it starts, and how an operator configures the bank."""

from __future__ import annotations

import importlib
import sys

import pytest
import requests
from authlib.oauth2 import rfc8414, rfc9207

from aggregator.testing.servers import reserve_port, serve_wsgi
from plugins.sandbox.bank import BankSettings, SettingsError, create_bank_app, load_settings

INSTITUTIONS = {
    "astoria": "Bank of Astoria",
    "monami": "Monami Card",
    "norma": "Norma Securities",
    "lastish": "Lastish Fundco",
}


def test_the_bank_lists_its_four_institutions(sandbox_bank):
    listed = requests.get(f"{sandbox_bank.url}/institutions", timeout=10).json()
    assert listed == [
        {"id": slug, "name": name, "issuer": f"{sandbox_bank.url}/{slug}"}
        for slug, name in INSTITUTIONS.items()
    ]


@pytest.mark.parametrize("slug", list(INSTITUTIONS))
def test_each_institution_publishes_rfc8414_metadata_at_both_locations(sandbox_bank, slug):
    issuer = f"{sandbox_bank.url}/{slug}"
    inserted = requests.get(
        f"{sandbox_bank.url}/.well-known/oauth-authorization-server/{slug}", timeout=10
    )
    appended = requests.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=10)
    assert inserted.status_code == appended.status_code == 200
    metadata = inserted.json()
    assert appended.json() == metadata

    rfc8414.AuthorizationServerMetadata(metadata).validate(
        metadata_classes=[rfc9207.AuthorizationServerMetadata]
    )
    assert metadata["issuer"] == issuer  # RFC 8414 §3.3: identical to the issuer asked for
    assert metadata["authorization_endpoint"] == f"{issuer}/authorize"
    assert metadata["token_endpoint"] == f"{issuer}/token"
    assert metadata["revocation_endpoint"] == f"{issuer}/revoke"
    assert metadata["userinfo_endpoint"] == f"{issuer}/userinfo"
    paying = ["payments"] if slug == "astoria" else []  # only a bank holds accounts that pay
    assert metadata["scopes_supported"] == ["accounts", "balances", "transactions", *paying]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "client_secret_post"
    ]
    assert metadata["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["authorization_response_iss_parameter_supported"] is True


def test_an_unknown_institution_is_a_json_404(sandbox_bank):
    for method, path in (
        ("GET", "/nowhere/.well-known/oauth-authorization-server"),
        ("GET", "/.well-known/oauth-authorization-server/nowhere"),
        ("GET", "/nowhere/authorize"),
        ("POST", "/nowhere/token"),
        ("GET", "/nowhere/users/1234567/accounts"),
    ):
        answer = requests.request(method, sandbox_bank.url + path, timeout=10)
        assert answer.status_code == 404, path
        assert answer.json()["error"] == "not_found"


def test_settings_have_sensible_defaults():
    settings = load_settings({"SANDBOX_REDIS_URL": "redis://127.0.0.1:6379/1"})
    assert settings.public_url == "http://127.0.0.1:8001"
    assert settings.client_id == "aggregator"
    assert settings.client_secret == "sandbox-secret"
    assert "sandbox-secret" not in repr(settings)


def test_settings_follow_the_port_and_the_public_url():
    base = {"SANDBOX_REDIS_URL": "redis://127.0.0.1:6379/1", "SANDBOX_PORT": "9001"}
    assert load_settings(base).public_url == "http://127.0.0.1:9001"
    explicit = load_settings({**base, "SANDBOX_PUBLIC_URL": "http://localhost:9001/"})
    assert explicit.public_url == "http://localhost:9001"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({}, "SANDBOX_REDIS_URL"),
        ({"SANDBOX_REDIS_URL": "http://127.0.0.1"}, "SANDBOX_REDIS_URL"),
        ({"SANDBOX_REDIS_URL": "redis://h/1", "SANDBOX_PORT": "eighty"}, "SANDBOX_PORT"),
        ({"SANDBOX_REDIS_URL": "redis://h/1", "SANDBOX_PUBLIC_URL": "ftp://x"},
         "SANDBOX_PUBLIC_URL"),
        ({"SANDBOX_REDIS_URL": "redis://h/1", "SANDBOX_SECRET_KEY": "short"},
         "SANDBOX_SECRET_KEY"),
    ],
)
def test_bad_settings_name_the_variable(environ, named):
    with pytest.raises(SettingsError, match=named):
        load_settings(environ)


def test_the_wsgi_module_builds_the_app_from_the_environment(monkeypatch, redis_url):
    monkeypatch.setenv("SANDBOX_REDIS_URL", redis_url)
    monkeypatch.setenv("SANDBOX_PUBLIC_URL", "http://127.0.0.1:8999")
    sys.modules.pop("plugins.sandbox.bank.wsgi", None)
    wsgi = importlib.import_module("plugins.sandbox.bank.wsgi")
    answer = wsgi.app.test_client().get("/institutions")
    assert answer.json[0]["issuer"] == "http://127.0.0.1:8999/astoria"


def test_without_redis_the_bank_answers_503_not_500():
    settings = BankSettings(redis_url=f"redis://127.0.0.1:{reserve_port()}/1",
                            public_url="http://127.0.0.1:1")
    with serve_wsgi(create_bank_app(settings)) as server:
        answer = requests.post(f"{server.url}/astoria/token",
                               data={"grant_type": "refresh_token", "refresh_token": "x"},
                               timeout=10)
    assert answer.status_code == 503
    assert answer.json()["error"] == "temporarily_unavailable"
