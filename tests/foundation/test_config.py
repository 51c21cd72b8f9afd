"""Configuration: every variable validated, production refuses development shortcuts."""

from __future__ import annotations

import pytest
from marshmallow import Schema, fields

from aggregator import create_app
from aggregator.upstream.loader import configure, load_class
from config import ConfigError, load_settings


def test_defaults_are_the_documented_ones():
    settings = load_settings({})
    assert settings.port == 8000
    assert settings.sandbox_port == 8001
    assert settings.issuer == "http://127.0.0.1:8000"
    assert settings.plugins == ("sandbox",)
    assert settings.token_freshness == 60
    assert settings.password_hashing == "argon2id"


def test_issuer_follows_the_port_unless_set():
    assert load_settings({"AGGREGATOR_PORT": "9000"}).issuer == "http://127.0.0.1:9000"
    assert load_settings({"AGGREGATOR_ISSUER": "https://as.example/"}).issuer == "https://as.example"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"AGGREGATOR_PORT": "eighty"}, "AGGREGATOR_PORT"),
        ({"AGGREGATOR_PORT": "70000"}, "AGGREGATOR_PORT"),
        ({"AGGREGATOR_MODE": "staging"}, "AGGREGATOR_MODE"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"AGGREGATOR_ISSUER": "not a url"}, "AGGREGATOR_ISSUER"),
        ({"AGGREGATOR_INITIAL_ACCESS_TOKEN": "short"}, "AGGREGATOR_INITIAL_ACCESS_TOKEN"),
        ({"AGGREGATOR_METRICS_TOKEN": "short"}, "AGGREGATOR_METRICS_TOKEN"),
        ({"AGGREGATOR_REQUIRE_PAR": "maybe"}, "AGGREGATOR_REQUIRE_PAR"),
        ({"AGGREGATOR_PASSWORD_HASHING": "md5"}, "AGGREGATOR_PASSWORD_HASHING"),
        ({"AGGREGATOR_TRUST_PROXY": "all of them"}, "AGGREGATOR_TRUST_PROXY"),
        ({"REDIS_CLUSTER": "perhaps"}, "REDIS_CLUSTER"),
        ({"REDIS_SENTINELS": "10.0.0.1"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "10.0.0.1:26379"}, "REDIS_SENTINEL_MASTER"),
        ({"REDIS_SENTINELS": "s:26379", "REDIS_SENTINEL_MASTER": "m", "REDIS_CLUSTER": "true"},
         "REDIS_CLUSTER"),
        ({"AGGREGATOR_REDIS_WAIT_MS": "-1"}, "AGGREGATOR_REDIS_WAIT_MS"),
    ],
)
def test_invalid_values_name_the_variable(environ, named):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert named in str(caught.value)


def test_redis_topology_settings():
    assert load_settings({}).redis_cluster is False and load_settings({}).redis_wait_ms == 100
    assert load_settings({"REDIS_CLUSTER": "true"}).redis_cluster is True
    sentinel = load_settings({"REDIS_SENTINELS": "s1:26379, s2:26380", "REDIS_SENTINEL_MASTER": "m"})
    assert sentinel.redis_sentinels == (("s1", 26379), ("s2", 26380))
    assert sentinel.redis_sentinel_master == "m"


def test_trust_proxy_is_a_hop_count_where_true_means_one():
    assert [load_settings({"AGGREGATOR_TRUST_PROXY": value}).trust_proxy
            for value in ("false", "0", "true", "1", "3")] == [0, 0, 1, 1, 3]


def test_production_refuses_development_shortcuts():
    with pytest.raises(ConfigError) as caught:
        load_settings({"AGGREGATOR_MODE": "production", "AGGREGATOR_ISSUER": "http://as.example"})
    message = str(caught.value)
    assert "AGGREGATOR_ISSUER" in message and "https" in message
    assert "AGGREGATOR_ENCRYPTION_KEYS" in message


def test_production_refuses_test_only_password_hashing():
    production = {
        "AGGREGATOR_MODE": "production",
        "AGGREGATOR_ISSUER": "https://as.example",
        "AGGREGATOR_ENCRYPTION_KEYS": "k1:" + "A" * 43,
    }
    with pytest.raises(ConfigError) as caught:
        load_settings({**production, "AGGREGATOR_PASSWORD_HASHING": "argon2id-minimal"})
    assert "AGGREGATOR_PASSWORD_HASHING" in str(caught.value)
    assert load_settings(production).password_hashing == "argon2id"
    for mode in ("development", "test"):
        assert load_settings({"AGGREGATOR_MODE": mode, "AGGREGATOR_PASSWORD_HASHING": "argon2id-minimal"})


def test_production_accepts_https_and_keys():
    settings = load_settings({
        "AGGREGATOR_MODE": "production",
        "AGGREGATOR_ISSUER": "https://as.example",
        "AGGREGATOR_ENCRYPTION_KEYS": "k1:" + "A" * 43,
    })
    assert settings.production


def test_production_refuses_a_dev_initial_access_token():
    with pytest.raises(ConfigError) as caught:
        load_settings({
            "AGGREGATOR_MODE": "production",
            "AGGREGATOR_ISSUER": "https://as.example",
            "AGGREGATOR_ENCRYPTION_KEYS": "k1:" + "A" * 43,
            "AGGREGATOR_INITIAL_ACCESS_TOKEN": "demo-initial-access-token",
        })
    assert "AGGREGATOR_INITIAL_ACCESS_TOKEN" in str(caught.value)


def test_redis_url_is_required_to_build_the_app(tmp_path):
    with pytest.raises(ConfigError) as caught:
        create_app({"AGGREGATOR_DATA_DIR": str(tmp_path), "AGGREGATOR_PLUGINS": ""})
    assert "REDIS_URL" in str(caught.value)


def test_an_unknown_plugin_stops_start_up(redis_url, tmp_path):
    with pytest.raises(ConfigError) as caught:
        create_app({"REDIS_URL": redis_url, "AGGREGATOR_DATA_DIR": str(tmp_path),
                    "AGGREGATOR_PLUGINS": "nosuchbank"})
    assert "nosuchbank" in str(caught.value) and "available" in str(caught.value)


def test_invalid_plugin_config_names_plugin_and_field():
    class NeedsIssuer(Schema):
        issuer = fields.Url(required=True)

    class Fake:
        config_schema = NeedsIssuer

    settings = load_settings({"MYBANK_ISSUER": "nope"})
    with pytest.raises(ConfigError) as caught:
        configure(Fake, "mybank", settings)  # type: ignore[arg-type]
    assert "mybank" in str(caught.value) and "MYBANK_ISSUER" in str(caught.value)


def test_built_in_plugins_are_known():
    for name in ("sandbox", "oidc", "moneyhub"):
        assert load_class(name).name == name


def test_an_unreachable_redis_stops_start_up_without_printing_its_password(tmp_path):
    from aggregator.testing.servers import reserve_port

    url = f"redis://:hunter2-password@127.0.0.1:{reserve_port()}/0"
    with pytest.raises(ConfigError) as caught:
        create_app({"REDIS_URL": url, "AGGREGATOR_DATA_DIR": str(tmp_path), "AGGREGATOR_PLUGINS": ""})
    assert "REDIS_URL" in str(caught.value) and "127.0.0.1" in str(caught.value)
    assert "hunter2" not in str(caught.value)
