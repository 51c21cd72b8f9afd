"""Templates and static files, and helpers shared by the person-facing pages."""

from __future__ import annotations

from flask import Blueprint, g, request

from aggregator.errors import UnsupportedMediaType

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def page_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint of HTML pages: errors render as pages and form posts must be forms."""
    bp = Blueprint(name, import_name)

    @bp.before_request
    def _pages() -> None:
        g.html_errors = True
        if request.method == "POST" and request.mimetype not in FORM_TYPES:
            raise UnsupportedMediaType("Send this form as application/x-www-form-urlencoded.")

    return bp
