"""Aggregated token introspection: RFC 7662 plus the institutions the grant covers."""

from __future__ import annotations

from flask import Flask


def init_introspection(app: Flask) -> None:
    """Register ``POST /introspect`` on ``app``."""
