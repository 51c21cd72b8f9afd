"""The aggregating authorization server: ``create_app()`` builds one Flask application."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import redis
from flask import Flask

from aggregator.crypto import load_key_ring
from aggregator.errors import Application, register_error_handlers
from aggregator.introspection.write_ahead import WriteAhead
from aggregator.logs import configure_logging, init_access_log
from aggregator.registry.notices import RegistryNotices
from aggregator.security import init_security
from aggregator.services import EXTENSION, Services
from aggregator.sessions import install_sessions
from aggregator.signing import SigningKeys
from aggregator.store import Store
from aggregator.store.migrations import migrate
from aggregator.store.plugin_cache import RedisPluginCache
from aggregator.upstream.contract import PluginContext, UpstreamPlugin
from aggregator.upstream.http import UpstreamHTTP
from aggregator.upstream.loader import load_plugins
from config import ConfigError, Settings, load_settings

__all__ = ["create_app"]


def create_app(
    config: Settings | Mapping[str, str] | None = None,
    *,
    plugins: Mapping[str, Callable[[PluginContext], UpstreamPlugin]] | None = None,
) -> Flask:
    """Build the AS. ``config`` is Settings, an environment-like mapping, or None (os.environ).

    ``plugins`` adds plugins to (or replaces same-named ones from) ``AGGREGATOR_PLUGINS``: name ->
    a factory given the PluginContext the AS builds for that name, e.g. the plugin class itself
    bound to its configuration. Tests and embedders pass plugins this way instead of by entry point.
    """
    settings = config if isinstance(config, Settings) else load_settings(config)
    if not settings.redis_url:
        raise ConfigError("REDIS_URL: not set. `make run` starts an embedded Redis and sets it; "
                          "otherwise point REDIS_URL at your Redis server.")
    configure_logging(settings.log_level)

    app = Application(__name__, template_folder="web/templates", static_folder="web/static")
    app.json.sort_keys = False  # type: ignore[attr-defined]

    keyring = load_key_ring(settings.encryption_keys, settings.data_dir)
    store = Store.connect(settings.redis_url, keyring)
    signing_keys = SigningKeys(store.signing_keys)
    try:
        migrate(store.redis)  # stored records in this code's schema (one GET when they are)
        # refresh results that Redis refused for too long, kept on disk meanwhile
        WriteAhead(settings.data_dir, keyring).replay(store.registrations)
        signing_keys.ensure()
    except redis.RedisError as exc:
        # the URL may carry a password: name only the host
        where = urlsplit(settings.redis_url).hostname or "its socket"
        raise ConfigError(f"REDIS_URL: cannot use the Redis server at {where} ({exc}).") from None
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
    init_access_log(app)
    register_error_handlers(app)
    _register_blueprints(app)
    app.add_template_filter(_datetime, "datetime")
    return app


def _datetime(timestamp: int | float | None) -> str:
    if not timestamp:
        return ""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%d %b %Y, %H:%M UTC")


def _register_blueprints(app: Flask) -> None:
    from aggregator.accounts.views import bp as accounts
    from aggregator.health import bp as health
    from aggregator.introspection.endpoint import bp as introspection
    from aggregator.oauth import init_oauth
    from aggregator.openapi import bp as openapi
    from aggregator.registry.views import bp as registry

    app.register_blueprint(health)
    app.register_blueprint(accounts)
    app.register_blueprint(registry)
    init_oauth(app)
    app.register_blueprint(introspection)
    app.register_blueprint(openapi)
    for name, plugin in app.extensions[EXTENSION].plugins.items():
        extra = plugin.blueprint()
        if extra is not None:
            app.register_blueprint(extra, url_prefix=f"/plugins/{name}", name=f"plugin_{name}")
