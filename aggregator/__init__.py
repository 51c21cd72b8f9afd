"""The aggregating authorization server: ``create_app()`` builds one Flask application."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import redis
from flask import Flask

from aggregator.crypto import load_key_ring
from aggregator.errors import Application, register_error_handlers
from aggregator.introspection.write_ahead import WriteAhead
from aggregator.json_output import FastJSONProvider
from aggregator.logs import configure_logging, init_access_log
from aggregator.registry.notices import RegistryNotices
from aggregator.security import init_security
from aggregator.services import EXTENSION, Services
from aggregator.sessions import install_sessions
from aggregator.signing import SigningKeys
from aggregator.store import Store
from aggregator.store.connection import RedisTopology
from aggregator.store.migrations import migrate
from aggregator.store.plugin_cache import RedisPluginCache
from aggregator.upstream.contract import PluginContext, UpstreamPlugin
from aggregator.upstream.http import UpstreamHTTP
from aggregator.upstream.loader import load_plugins
from config import ConfigError, Settings, load_settings

__all__ = ["create_app"]

log = logging.getLogger("aggregator")


def create_app(
    config: Settings | Mapping[str, str] | None = None,
    *,
    plugins: Mapping[str, Callable[[PluginContext], UpstreamPlugin]] | None = None,
    wait_for_redis: bool = False,
) -> Flask:
    """Build the AS. ``config`` is Settings, an environment-like mapping, or None (os.environ).

    ``plugins`` adds plugins to (or replaces same-named ones from) ``AGGREGATOR_PLUGINS``: name ->
    a factory given the PluginContext the AS builds for that name, e.g. the plugin class itself
    bound to its configuration. Tests and embedders pass plugins this way instead of by entry point.

    An unreachable Redis stops start-up with a clear ``ConfigError``, unless ``wait_for_redis``
    (gunicorn's workers, ``wsgi.py``): then the app answers 503 until Redis is back.
    """
    settings = config if isinstance(config, Settings) else load_settings(config)
    if not settings.redis_url:
        raise ConfigError("REDIS_URL: not set. `make run` starts an embedded Redis and sets it; "
                          "otherwise point REDIS_URL at your Redis server.")
    configure_logging(settings.log_level)

    app = Application(__name__, template_folder="web/templates", static_folder="web/static")
    app.json = FastJSONProvider(app)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    keyring = load_key_ring(settings.encryption_keys, settings.data_dir)
    store = Store.connect(RedisTopology.of(settings), keyring, local_cache=settings.local_cache)
    signing_keys = SigningKeys(store.signing_keys)

    def start_up() -> None:
        migrate(store.redis)  # stored records in this code's schema (one GET when they are)
        # refresh results that Redis refused for too long, kept on disk meanwhile
        WriteAhead(settings.data_dir, keyring).replay(store.registrations)
        signing_keys.ensure()

    try:
        start_up()
    except redis.RedisError as exc:
        if not wait_for_redis:
            # the URL may carry a password: name only the host
            where = urlsplit(settings.redis_url).hostname or "its socket"
            raise ConfigError(f"REDIS_URL: cannot use the Redis server at {where} ({exc}).") from None
        _start_up_later(app, start_up)
    svc = Services(settings, keyring, store, signing_keys)
    app.extensions[EXTENSION] = svc

    def context_for(name: str) -> PluginContext:
        return PluginContext(
            issuer=settings.issuer,
            callback_url=f"{settings.issuer}/connections/callback/{name}",
            cache=RedisPluginCache(store.redis, keyring, name),
            notices=RegistryNotices(store, name),
            http=UpstreamHTTP(settings.upstream_timeout, policy=svc.outbound_policy),
        )

    svc.plugins = load_plugins(settings, context_for) | {
        name: build(context_for(name)) for name, build in (plugins or {}).items()
    }

    install_sessions(app, settings, store.sessions)
    init_security(app, settings)
    init_access_log(app, svc.metrics)
    register_error_handlers(app)
    _register_blueprints(app)
    app.add_template_filter(_datetime, "datetime")
    return app


def _start_up_later(app: Flask, start_up: Callable[[], None]) -> None:
    """Redis is unavailable as this worker starts: serve anyway (every request answers 503 with
    ``Retry-After`` until Redis is back, see :mod:`aggregator.store.faults`) and run the start-up
    steps with the first request that finds it back. A gunicorn worker respawned during a Redis
    restart must not fail to boot, or gunicorn gives up on the whole server."""
    log.warning("Redis unavailable at start; answering 503 until it is back")
    done = threading.Event()
    mutex = threading.Lock()

    @app.before_request
    def _started() -> None:
        if done.is_set():
            return
        with mutex:
            if not done.is_set():
                start_up()  # a RedisError here is the request's 503
                done.set()


def _datetime(timestamp: int | float | None) -> str:
    if not timestamp:
        return ""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%d %b %Y, %H:%M UTC")


def _register_blueprints(app: Flask) -> None:
    from aggregator.accounts.views import bp as accounts
    from aggregator.events.transmitter import bp as events
    from aggregator.health import bp as health
    from aggregator.introspection.endpoint import bp as introspection
    from aggregator.metrics import bp as metrics
    from aggregator.oauth import init_oauth
    from aggregator.openapi import bp as openapi
    from aggregator.registry.views import bp as registry

    app.register_blueprint(health)
    app.register_blueprint(accounts)
    app.register_blueprint(registry)
    init_oauth(app)
    app.register_blueprint(introspection)
    app.register_blueprint(openapi)
    app.register_blueprint(metrics)
    app.register_blueprint(events)
    for name, plugin in app.extensions[EXTENSION].plugins.items():
        extra = plugin.blueprint()
        if extra is not None:
            app.register_blueprint(extra, url_prefix=f"/plugins/{name}", name=f"plugin_{name}")
