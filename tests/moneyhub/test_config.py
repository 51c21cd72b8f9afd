"""An operator configures the Moneyhub plugin and generates its keys."""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner
from marshmallow import ValidationError

from aggregator.upstream.loader import configure
from aggregator.upstream.plugin_keys import InvalidSigningKey, generate_jwks, signing_key
from config import ConfigError, load_settings
from plugins.moneyhub.cli import jwks_command, moneyhub
from plugins.moneyhub.config import DEFAULT_DATA_API_URL, MoneyhubConfig, MoneyhubSettings
from plugins.moneyhub.plugin import MoneyhubPlugin

BASE = {"identity_url": "https://identity.moneyhub.co.uk", "client_id": "abc"}


def load(**values: str) -> dict:
    return MoneyhubConfig().load({**BASE, **values})


def test_defaults_follow_the_product_contract():
    config = load(client_secret="s3cret")
    assert config["data_api_url"] == DEFAULT_DATA_API_URL
    assert config["auth_method"] == "client_secret_basic"
    assert config["response_type"] == "code"
    assert config["connection_type"] == "test"
    settings = MoneyhubSettings(**config)
    assert settings.issuer == "https://identity.moneyhub.co.uk/oidc"
    assert settings.signing_key is None, "HS256 with the client secret when no JWKS is given"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({}, "client_secret"),
        ({"auth_method": "private_key_jwt", "client_secret": "x"}, "private_jwks"),
        ({"client_secret": "x", "auth_method": "client_secret_post"}, "auth_method"),
        ({"client_secret": "x", "response_type": "token"}, "response_type"),
        ({"client_secret": "x", "connection_type": "everything"}, "connection_type"),
        ({"client_secret": "x", "identity_url": "not a url"}, "identity_url"),
        ({"client_secret": "x", "consent_days": "91"}, "consent_days"),
        ({"client_secret": "x", "history_months": "73"}, "history_months"),
        ({"client_secret": "x", "permissions": "ReadAccountsBasic,ReadMinds"}, "permissions"),
        ({"client_secret": "x", "permissions_action": "merge"}, "permissions_action"),
        ({"client_secret": "x", "private_jwks": "{not json"}, "private_jwks"),
        ({"client_secret": "x", "private_jwks": '{"keys": []}'}, "private_jwks"),
        ({"client_secret": "x", "webhook_secret": "short"}, "webhook_secret"),
    ],
)
def test_invalid_settings_name_the_field(values: dict, field: str):
    with pytest.raises(ValidationError) as caught:
        load(**values)
    assert field in caught.value.messages


def test_loader_errors_name_the_environment_variable():
    settings = load_settings({"AGGREGATOR_PLUGINS": "moneyhub",
                              "MONEYHUB_IDENTITY_URL": "https://identity.moneyhub.co.uk",
                              "MONEYHUB_CLIENT_ID": "abc"})
    with pytest.raises(ConfigError, match="MONEYHUB_CLIENT_SECRET"):
        configure(MoneyhubPlugin, "moneyhub", settings)


def test_private_jwks_from_a_file_and_its_first_signing_key(tmp_path):
    public, private = generate_jwks("ES256")
    path = tmp_path / "moneyhub.jwks.json"
    path.write_text(json.dumps(private))
    config = load(auth_method="private_key_jwt", private_jwks=f"@{path}")
    key = MoneyhubSettings(**config).signing_key
    assert key is not None
    assert (key.alg, key.kid) == ("ES256", public["keys"][0]["kid"])
    with pytest.raises(ValidationError, match="Cannot read"):
        load(auth_method="private_key_jwt", private_jwks=f"@{tmp_path / 'missing.json'}")


def test_signing_key_rules():
    public, private = generate_jwks("RS256")
    with pytest.raises(InvalidSigningKey, match="no private"):
        signing_key(public)
    no_kid = {"keys": [{k: v for k, v in private["keys"][0].items() if k != "kid"}]}
    with pytest.raises(InvalidSigningKey, match="kid"):
        signing_key(no_kid)
    wrong_alg = {"keys": [{**private["keys"][0], "alg": "ES256"}]}
    with pytest.raises(InvalidSigningKey, match="cannot sign"):
        signing_key(wrong_alg)
    encryption_first = {"keys": [{**private["keys"][0], "use": "enc", "kid": "e"},
                                 private["keys"][0]]}
    assert signing_key(encryption_first).kid == private["keys"][0]["kid"]
    without_alg = {"keys": [{k: v for k, v in private["keys"][0].items() if k != "alg"}]}
    assert signing_key(without_alg).alg == "RS256", "seed 001's example algorithm"


def test_cli_prints_both_halves_of_a_new_key_pair():
    result = CliRunner().invoke(moneyhub, ["jwks", "--alg", "PS256"])
    assert result.exit_code == 0, result.output
    pair = json.loads(result.output)
    public, private = pair["public_jwks"], pair["private_jwks"]
    assert "d" not in public["keys"][0]
    assert public["keys"][0]["kid"] == private["keys"][0]["kid"]
    config = load(auth_method="private_key_jwt", private_jwks=json.dumps(private))
    assert MoneyhubSettings(**config).signing_key.alg == "PS256"


def test_cli_writes_the_private_half_owner_only(tmp_path):
    target = tmp_path / "private.json"
    result = CliRunner().invoke(jwks_command, ["--alg", "ES256", "--private-out", str(target)])
    assert result.exit_code == 0, result.output
    public = json.loads(result.stdout)
    assert public["keys"][0]["alg"] == "ES256"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert load(auth_method="private_key_jwt", private_jwks=f"@{target}")["private_jwks"]


def test_cli_refuses_weak_rsa_keys():
    result = CliRunner().invoke(jwks_command, ["--rsa-bits", "1024"])
    assert result.exit_code != 0
