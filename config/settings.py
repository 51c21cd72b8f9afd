"""Parse and validate the environment into :class:`Settings`.

Every variable is declared once in :class:`EnvironmentSchema`; an invalid value stops start-up
with a message naming the variable and what it accepts. ``production`` mode adds the checks that
keep development conveniences (generated keys, plain-HTTP issuers) out of a real deployment.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

MODES = ("development", "test", "production")

#: Values shipped for local use (README, `make demo`); production refuses them.
DEVELOPMENT_SECRETS = frozenset({"demo-initial-access-token"})

#: Password hashing profiles (``aggregator.accounts.passwords``): ``argon2id`` is RFC 9106's
#: low-memory profile; ``argon2id-minimal`` (one pass over 8 KiB) keeps test suites fast and
#: is cheap to crack, so production refuses it.
PASSWORD_HASHING = ("argon2id", "argon2id-minimal")
PRODUCTION_PASSWORD_HASHING = "argon2id"

#: The embedded Redis's ``appendfsync``: after a machine crash, ``always`` has lost nothing it
#: acknowledged (one fsync per write), ``everysec`` up to about a second of acknowledged writes.
REDIS_FSYNC = ("always", "everysec")

#: ``AGGREGATOR_PROFILE``: the product as documented, or the FAPI 2.0 Security Profile's rules
#: (``aggregator.oauth.profile``)
PROFILES = ("default", "fapi2")


class ConfigError(Exception):
    """The environment does not describe a runnable server; the message says why."""


def is_loopback_host(host: str | None) -> bool:
    if host in (None, ""):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def json_setting(value: Any) -> Any:
    """A JSON configuration value given inline, or as ``@/path/to/file.json``."""
    if not isinstance(value, str):
        return value
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"Cannot read {value[1:]}: {exc.strerror}.") from None
    try:
        return json.loads(text)
    except ValueError:
        raise ValidationError("Not valid JSON (give JSON, or @path to a file).") from None


class ProxyHops(fields.Field):
    """A count of trusted proxies; ``true``/``false`` keep meaning one/none."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        text = str(value).strip().lower()
        if text in ("true", "yes", "on"):
            return 1
        if text in ("false", "no", "off", ""):
            return 0
        if not text.isdigit() or int(text) > 10:
            raise ValidationError("Give the number of trusted proxies (0-10), or true/false.")
        return int(text)


class CommaList(fields.Field):
    """``"a, b,c"`` -> ``["a", "b", "c"]`` (empty items dropped)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        if isinstance(value, list | tuple):
            return [str(item).strip() for item in value if str(item).strip()]
        if not isinstance(value, str):
            raise ValidationError("Expected a comma-separated list.")
        return [item.strip() for item in value.split(",") if item.strip()]


def _allowed_hosts(items: list[str]) -> None:
    """Hostnames or IP networks (CIDR) that production may reach despite a private address."""
    from aggregator.outbound import AllowedHosts

    try:
        AllowedHosts.parse(items)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class EnvironmentSchema(Schema):
    """The environment variables the AS reads (names as they appear in the environment)."""

    class Meta:
        unknown = EXCLUDE

    AGGREGATOR_MODE = fields.String(load_default="development", validate=validate.OneOf(MODES))
    AGGREGATOR_PORT = fields.Integer(load_default=8000, validate=validate.Range(1, 65535))
    AGGREGATOR_HOST = fields.String(load_default="127.0.0.1")
    SANDBOX_PORT = fields.Integer(load_default=8001, validate=validate.Range(1, 65535))
    AGGREGATOR_ISSUER = fields.Url(load_default=None, require_tld=False, schemes={"http", "https"})
    AGGREGATOR_DATA_DIR = fields.String(load_default="var")
    REDIS_URL = fields.String(
        load_default=None,
        validate=validate.Regexp(r"^(redis|rediss|unix)://", error="Must be a redis://, rediss:// "
                                 "or unix:// URL."),
    )
    AGGREGATOR_REDIS_FSYNC = fields.String(load_default="everysec", validate=validate.OneOf(REDIS_FSYNC))
    #: REDIS_URL is then the seed node of a Redis Cluster
    REDIS_CLUSTER = fields.Boolean(load_default=False)
    #: ``host:port`` of each Sentinel; REDIS_URL then only gives the password, TLS and database
    REDIS_SENTINELS = CommaList(load_default=list)
    REDIS_SENTINEL_MASTER = fields.String(load_default=None)
    #: how long a write that must not be lost waits for a replica's acknowledgement (0: never)
    AGGREGATOR_REDIS_WAIT_MS = fields.Integer(load_default=100, validate=validate.Range(0, 5000))
    AGGREGATOR_PLUGINS = CommaList(load_default=lambda: ["sandbox"])
    AGGREGATOR_INITIAL_ACCESS_TOKEN = fields.String(load_default=None, validate=validate.Length(min=16))
    AGGREGATOR_ENCRYPTION_KEYS = fields.String(load_default=None)
    AGGREGATOR_MAX_BODY_BYTES = fields.Integer(load_default=64 * 1024,
                                               validate=validate.Range(1024, 10 * 1024 * 1024))
    AGGREGATOR_LOG_LEVEL = fields.String(
        load_default="INFO", validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"])
    )
    AGGREGATOR_SESSION_TTL = fields.Integer(load_default=8 * 3600, validate=validate.Range(60))
    AGGREGATOR_ACCESS_TOKEN_TTL = fields.Integer(load_default=600, validate=validate.Range(30, 86400))
    AGGREGATOR_REFRESH_TOKEN_TTL = fields.Integer(load_default=30 * 86400, validate=validate.Range(60))
    AGGREGATOR_REQUIRE_PAR = fields.Boolean(load_default=False)
    AGGREGATOR_DPOP_NONCE = fields.Boolean(load_default=False)
    AGGREGATOR_TOKEN_FRESHNESS = fields.Integer(load_default=60, validate=validate.Range(0, 3600))
    AGGREGATOR_UPSTREAM_TIMEOUT = fields.Float(load_default=10.0, validate=validate.Range(0.1, 120))
    AGGREGATOR_REFRESH_TIMEOUT = fields.Float(load_default=60.0, validate=validate.Range(1, 600))
    AGGREGATOR_TRUST_PROXY = ProxyHops(load_default=0)
    AGGREGATOR_WORKERS = fields.Integer(load_default=2, validate=validate.Range(1, 64))
    AGGREGATOR_THREADS = fields.Integer(load_default=8, validate=validate.Range(1, 256))
    AGGREGATOR_PASSWORD_HASHING = fields.String(load_default=PRODUCTION_PASSWORD_HASHING,
                                                validate=validate.OneOf(PASSWORD_HASHING))
    AGGREGATOR_OUTBOUND_ALLOWED_HOSTS = CommaList(load_default=list, validate=_allowed_hosts)
    AGGREGATOR_METRICS_TOKEN = fields.String(load_default=None, validate=validate.Length(min=16))
    AGGREGATOR_PROFILE = fields.String(load_default="default", validate=validate.OneOf(PROFILES))
    AGGREGATOR_LOCAL_CACHE = fields.Boolean(load_default=True)

    @validates_schema
    def _redis_topology(self, data: dict[str, Any], **_: Any) -> None:
        sentinels = data.get("REDIS_SENTINELS") or []
        for item in sentinels:
            host, _sep, port = item.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValidationError("Give host:port items, comma separated.", "REDIS_SENTINELS")
        if sentinels and not data.get("REDIS_SENTINEL_MASTER"):
            raise ValidationError("Required with REDIS_SENTINELS: the monitored master's name.",
                                  "REDIS_SENTINEL_MASTER")
        if sentinels and data.get("REDIS_CLUSTER"):
            raise ValidationError("A Redis Cluster has no Sentinels: choose one.", "REDIS_CLUSTER")

    @validates_schema
    def _production_rules(self, data: dict[str, Any], **_: Any) -> None:
        if data["AGGREGATOR_MODE"] != "production":
            return
        errors: dict[str, str] = {}
        issuer = data.get("AGGREGATOR_ISSUER")
        if not issuer:
            errors["AGGREGATOR_ISSUER"] = "Required in production mode."
        else:
            parts = urlsplit(issuer)
            if parts.scheme != "https" and not is_loopback_host(parts.hostname):
                errors["AGGREGATOR_ISSUER"] = "Must be https:// in production (http only on loopback)."
        if not data.get("AGGREGATOR_ENCRYPTION_KEYS"):
            errors["AGGREGATOR_ENCRYPTION_KEYS"] = (
                "Required in production mode: generate one with `aggregator keys new-encryption-key`."
            )
        if data.get("AGGREGATOR_METRICS_TOKEN") in DEVELOPMENT_SECRETS:
            errors["AGGREGATOR_METRICS_TOKEN"] = "A development value; set a random one."
        if data.get("AGGREGATOR_INITIAL_ACCESS_TOKEN") in DEVELOPMENT_SECRETS:
            errors["AGGREGATOR_INITIAL_ACCESS_TOKEN"] = "A development value; set a random one."
        if data["AGGREGATOR_PASSWORD_HASHING"] != PRODUCTION_PASSWORD_HASHING:
            errors["AGGREGATOR_PASSWORD_HASHING"] = (
                f"Only {PRODUCTION_PASSWORD_HASHING!r} in production (the others are for tests)."
            )
        if errors:
            raise ValidationError(errors)


@dataclass(frozen=True)
class Settings:
    """Validated settings for one AS process."""

    mode: str
    host: str
    port: int
    sandbox_port: int
    issuer: str
    data_dir: Path
    redis_url: str | None
    plugins: tuple[str, ...]
    initial_access_token: str | None
    encryption_keys: str | None
    max_body_bytes: int
    log_level: str
    session_ttl: int
    access_token_ttl: int
    refresh_token_ttl: int
    require_par: bool
    #: RFC 9449 §8: every DPoP proof must carry a nonce this server issued
    dpop_nonce: bool
    token_freshness: int
    upstream_timeout: float
    #: how long the refresher lets one bank call take (longer than a response's deadline)
    refresh_timeout: float
    #: how many reverse proxies in front of the AS append to X-Forwarded-For (0: none)
    trust_proxy: int
    workers: int
    threads: int
    #: the embedded Redis's appendfsync (an external Redis is configured where it runs)
    redis_fsync: str = "everysec"
    #: REDIS_URL is a Redis Cluster's seed node
    redis_cluster: bool = False
    #: Sentinels (host, port) and the name of the master they watch
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str | None = None
    #: WAIT for one replica this long after a write that must not be lost (0: do not wait)
    redis_wait_ms: int = 100
    password_hashing: str = PRODUCTION_PASSWORD_HASHING
    #: hosts (names or CIDR networks) the AS may reach in production despite a private address
    outbound_allowed_hosts: tuple[str, ...] = ()
    #: the bearer token ``/metrics`` requires (None: ``/metrics`` answers 404)
    metrics_token: str | None = field(default=None, repr=False)
    #: ``default`` or ``fapi2`` (FAPI 2.0 Security Profile; rules in ``aggregator.oauth.profile``)
    profile: str = "default"
    #: each worker keeps hot records in memory, invalidated by Redis (off under a cluster)
    local_cache: bool = True
    #: the raw environment, so plugins can read their own prefixed variables
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def production(self) -> bool:
        return self.mode == "production"

    @property
    def secure_cookies(self) -> bool:
        return self.issuer.startswith("https://")

    def plugin_environ(self, name: str) -> dict[str, str]:
        """``{"client_id": ...}`` from ``NAME_CLIENT_ID=...`` for the plugin called ``name``."""
        prefix = name.upper() + "_"
        return {
            key[len(prefix):].lower(): value
            for key, value in self.environ.items()
            if key.startswith(prefix) and value != ""
        }


def describe_errors(messages: Any) -> str:
    """Marshmallow error messages as one line: ``field: message; other: message``."""
    if isinstance(messages, dict):
        return "; ".join(f"{key}: {describe_errors(value)}" for key, value in messages.items())
    if isinstance(messages, list):
        return " ".join(str(item) for item in messages)
    return str(messages)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Validate ``environ`` (default: ``os.environ``); raise :class:`ConfigError` naming the variable."""
    env = dict(os.environ if environ is None else environ)
    # An empty variable means "use the default", except for the plugin list where it means none.
    cleaned = {key: value for key, value in env.items()
               if value != "" or key == "AGGREGATOR_PLUGINS"}
    try:
        data = EnvironmentSchema().load(cleaned)
    except ValidationError as exc:
        lines = [f"  {name}: {describe_errors(message)}" for name, message in sorted(exc.messages.items())]
        raise ConfigError("Invalid configuration:\n" + "\n".join(lines)) from None
    issuer = (data["AGGREGATOR_ISSUER"] or f"http://127.0.0.1:{data['AGGREGATOR_PORT']}").rstrip("/")
    return Settings(
        mode=data["AGGREGATOR_MODE"],
        host=data["AGGREGATOR_HOST"],
        port=data["AGGREGATOR_PORT"],
        sandbox_port=data["SANDBOX_PORT"],
        issuer=issuer,
        data_dir=Path(data["AGGREGATOR_DATA_DIR"]).resolve(),
        redis_url=data["REDIS_URL"],
        redis_fsync=data["AGGREGATOR_REDIS_FSYNC"],
        redis_cluster=data["REDIS_CLUSTER"],
        redis_sentinels=tuple((host, int(port)) for host, _sep, port in
                              (item.rpartition(":") for item in data["REDIS_SENTINELS"])),
        redis_sentinel_master=data["REDIS_SENTINEL_MASTER"],
        redis_wait_ms=data["AGGREGATOR_REDIS_WAIT_MS"],
        plugins=tuple(dict.fromkeys(data["AGGREGATOR_PLUGINS"])),
        initial_access_token=data["AGGREGATOR_INITIAL_ACCESS_TOKEN"],
        encryption_keys=data["AGGREGATOR_ENCRYPTION_KEYS"],
        max_body_bytes=data["AGGREGATOR_MAX_BODY_BYTES"],
        log_level=data["AGGREGATOR_LOG_LEVEL"],
        session_ttl=data["AGGREGATOR_SESSION_TTL"],
        access_token_ttl=data["AGGREGATOR_ACCESS_TOKEN_TTL"],
        refresh_token_ttl=data["AGGREGATOR_REFRESH_TOKEN_TTL"],
        require_par=data["AGGREGATOR_REQUIRE_PAR"],
        dpop_nonce=data["AGGREGATOR_DPOP_NONCE"],
        token_freshness=data["AGGREGATOR_TOKEN_FRESHNESS"],
        upstream_timeout=data["AGGREGATOR_UPSTREAM_TIMEOUT"],
        refresh_timeout=data["AGGREGATOR_REFRESH_TIMEOUT"],
        trust_proxy=data["AGGREGATOR_TRUST_PROXY"],
        workers=data["AGGREGATOR_WORKERS"],
        threads=data["AGGREGATOR_THREADS"],
        password_hashing=data["AGGREGATOR_PASSWORD_HASHING"],
        outbound_allowed_hosts=tuple(data["AGGREGATOR_OUTBOUND_ALLOWED_HOSTS"]),
        metrics_token=data["AGGREGATOR_METRICS_TOKEN"],
        profile=data["AGGREGATOR_PROFILE"],
        local_cache=data["AGGREGATOR_LOCAL_CACHE"],
        environ=env,
    )
