"""Templates and static files, and helpers shared by the person-facing pages."""

from __future__ import annotations

from flask import Blueprint, request

from aggregator.errors import UnsupportedMediaType

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def page_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint of HTML pages: errors render as pages and form posts must be forms."""
    bp = Blueprint(name, import_name)
    bp.html_errors = True  # type: ignore[attr-defined]  # read by aggregator.errors.wants_html

    @bp.before_request
    def _forms() -> None:
        if request.method == "POST" and request.mimetype not in FORM_TYPES:
            raise UnsupportedMediaType("Send this form as application/x-www-form-urlencoded.")

    return bp
