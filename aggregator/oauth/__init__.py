"""The OAuth 2.0 / OpenID Connect provider that third-party apps use."""

from __future__ import annotations

from flask import Flask


def init_oauth(app: Flask) -> None:
    """Register the provider's endpoints on ``app``."""
