"""The provider's two blueprints: the JSON API that clients call, and the person's pages."""

from __future__ import annotations

from aggregator.errors import api_blueprint
from aggregator.web import page_blueprint

#: client-facing endpoints: every error is the RFC's JSON, whatever the Accept header says
api = api_blueprint("oauth", __name__)
#: the person's pages (authorization, consent, revoking an app): errors render as pages
pages = page_blueprint("oauth_pages", __name__)
