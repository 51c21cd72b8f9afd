"""Aggregated token introspection: RFC 7662 plus the institutions the grant covers."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from aggregator.introspection.endpoint import bp
from aggregator.introspection.freshness import FreshTokens
from aggregator.introspection.response import RecentInstitutions


@dataclass(frozen=True)
class Introspection:
    """What one AS process keeps for introspection (``app.extensions["introspection"]``)."""

    fresh: FreshTokens
    recent: RecentInstitutions


def init_introspection(app: Flask) -> None:
    """Register ``POST /introspect`` on ``app`` with the process's token source and answers."""
    svc = app.extensions["aggregator"]
    app.extensions["introspection"] = Introspection(
        FreshTokens(svc), RecentInstitutions(svc.settings.token_freshness))
    app.register_blueprint(bp)
