"""The generic OpenID Connect / OAuth 2.0 upstream plugin (``AGGREGATOR_PLUGINS=oidc``).

See README.md beside this file for what it does and its configuration.
"""
