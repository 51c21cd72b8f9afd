"""Find, configure and instantiate the enabled upstream plugins.

Plugins come from the ``aggregator.plugins`` entry-point group (the built-ins register there
too, and are also known here by name so a source checkout works without installing).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from marshmallow import EXCLUDE, ValidationError

from aggregator.upstream.contract import PluginContext, UpstreamPlugin
from config import ConfigError, Settings

ENTRY_POINT_GROUP = "aggregator.plugins"

BUILTINS = {
    "sandbox": "plugins.sandbox.plugin:SandboxPlugin",
    "oidc": "plugins.oidc.plugin:OIDCPlugin",
    "moneyhub": "plugins.moneyhub.plugin:MoneyhubPlugin",
    "federation": "plugins.federation.plugin:FederationPlugin",
}


def available() -> dict[str, str]:
    """Plugin name -> ``module:Class`` for every plugin this installation knows."""
    found = dict(BUILTINS)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found[entry.name] = entry.value
    return found


def load_class(name: str) -> type[UpstreamPlugin]:
    known = available()
    if name not in known:
        raise ConfigError(
            f"AGGREGATOR_PLUGINS: unknown plugin {name!r}; available: {', '.join(sorted(known))}"
        )
    module_name, _, attr = known[name].partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"plugin {name!r} cannot be loaded from {known[name]}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, UpstreamPlugin)):
        raise ConfigError(f"plugin {name!r} ({known[name]}) is not an UpstreamPlugin")
    return cls


def load_config(cls: type[UpstreamPlugin], environ: Mapping[str, str]) -> dict[str, Any]:
    """Validate ``environ`` (``NAME_*`` variables, prefix removed) with the plugin's schema.

    Unknown fields are left out (``unknown=EXCLUDE``): other ``NAME_*`` variables (the sandbox
    bank's own ``SANDBOX_REDIS_URL``, say) are not the plugin's to refuse, so no plugin schema
    needs to say so itself. Raises marshmallow's ``ValidationError``.
    """
    return cls.config_schema(unknown=EXCLUDE).load(dict(environ))


def configure(cls: type[UpstreamPlugin], name: str, settings: Settings) -> dict[str, Any]:
    """Validate a plugin's ``NAME_*`` variables with its schema; errors name plugin and field."""
    try:
        return load_config(cls, settings.plugin_environ(name))
    except ValidationError as exc:
        prefix = name.upper() + "_"
        lines = [
            f"  {prefix}{str(field).upper()}: {' '.join(map(str, messages)) if isinstance(messages, list) else messages}"  # noqa: E501
            for field, messages in sorted(exc.messages.items())
        ]
        raise ConfigError(f"Invalid configuration for plugin {name!r}:\n" + "\n".join(lines)) from None


def load_plugins(settings: Settings, context_for) -> dict[str, UpstreamPlugin]:
    """Instantiate every enabled plugin; ``context_for(name)`` builds its PluginContext."""
    plugins: dict[str, UpstreamPlugin] = {}
    for name in settings.plugins:
        cls = load_class(name)
        config = configure(cls, name, settings)
        context: PluginContext = context_for(name)
        plugins[name] = cls(config, context)
    return plugins
