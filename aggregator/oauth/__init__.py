"""The OAuth 2.0 / OpenID Connect provider that third-party apps use.

One module per endpoint, each reading as its protocol's steps:

- ``metadata``          discovery (RFC 8414, OIDC Discovery) and ``/jwks``
- ``registration``      dynamic client registration and management (RFC 7591, RFC 7592)
- ``par``               pushed authorization requests (RFC 9126)
- ``authorize``         the authorization endpoint and the consent page (RFC 6749 §4.1, OIDC Core)
- ``token``             the token endpoint (RFC 6749 §3.2, RFC 7636)
- ``revocation``        token revocation (RFC 7009)
- ``grant_management``  a client's view of its grants (FAPI Grant Management)
- ``userinfo``          the UserInfo endpoint (OIDC Core §5.3)
- ``app_access``        the person revoking an app from the dashboard
- ``consents``          the consent records behind grants, and ending a grant

``client_auth.authenticate_client`` is shared with the introspection endpoint.
"""

from __future__ import annotations

from flask import Flask


def init_oauth(app: Flask) -> None:
    """Register the provider's endpoints on ``app``."""
    from aggregator.oauth import (  # noqa: F401  (importing registers the views)
        app_access,
        authorize,
        grant_management,
        metadata,
        par,
        registration,
        revocation,
        token,
        userinfo,
    )
    from aggregator.oauth.blueprints import api, pages
    from aggregator.payments import endpoint  # noqa: F401  (GET /payments/{payment_id})

    app.register_blueprint(api)
    app.register_blueprint(pages)
