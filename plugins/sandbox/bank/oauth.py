"""The institutions' OAuth 2.0 authorization server, built on Authlib's grants and endpoints.

One Authlib server serves all four institutions: the institution comes from the URL
(``/<slug>/authorize``, ``/<slug>/token`` ...), and codes and tokens are bound to it, so a
code or token from one institution is unknown at another. Storage lives in the Authlib hooks
(``save_authorization_code``, ``query_authorization_code`` ...), backed by :mod:`.store`.
"""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9207 import IssuerParameter
from flask import Response
from flask import request as flask_request

from .context import current_faults
from .institutions import Customer, Institution
from .settings import BankSettings
from .store import BankStore, CodeRecord, GrantRecord, TokenRecord

SCOPES = ("accounts", "balances", "transactions")
#: one payment, named by the ``consent_id`` parameter (see :mod:`.payments`); never a default
PAYMENT_SCOPE = "payments"
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
CODE_TTL = 60
REFRESH_TOKEN_TTL = 90 * 24 * 3600


def current_institution() -> Institution:
    """The institution whose endpoint is being called (from the URL)."""
    return flask_request.view_args["institution"]  # type: ignore[index]


def is_loopback_redirect_uri(uri: str) -> bool:
    """Whether ``uri`` is an ``http`` loopback URI (the sandbox's only kind of redirect URI).

    Redirects go only to the caller's own machine, so the sandbox cannot be used as an open
    redirector. RFC 6749 §3.1.2: the URI MUST be absolute and MUST NOT include a fragment.
    """
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    return (
        parts.scheme == "http"
        and parts.hostname in ("127.0.0.1", "localhost")
        and not parts.username
        and not parts.password
        and "#" not in uri  # even an empty fragment is a fragment component
    )


class SandboxClient(ClientMixin):
    """The one registered confidential client (the aggregator)."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self._secret = client_secret.encode()

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # no registered URI: every request names its own

    def get_allowed_scope(self, scope: str | None) -> str:
        # RFC 6749 §3.3: an omitted scope gets the documented default, everything.
        return scope or " ".join(SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return is_loopback_redirect_uri(redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self._secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in CLIENT_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


class S256CodeChallenge(CodeChallenge):
    """PKCE (RFC 7636) on every authorization request, S256 only."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: grants.BaseGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'.")
        if data.get("code_challenge_method") != "S256":
            # RFC 7636 §4.3: an absent method means "plain", which this server refuses.
            raise InvalidRequestError("'code_challenge_method' must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: BankAuthorizationServer

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        customer: Customer = request.user
        data = request.payload.data
        record = CodeRecord(
            grant_id=secrets.token_urlsafe(16),
            institution=customer.institution.slug,
            client_id=request.client.get_client_id(),
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            username=customer.username,
            user_id=customer.user_id,
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            consent_id=data.get("consent_id", "") if PAYMENT_SCOPE in request.scope.split() else "",
        )
        self.server.store.save_code(code, record, CODE_TTL)

    def query_authorization_code(self, code: str, client: SandboxClient) -> CodeRecord | None:
        consumed = self.server.store.consume_code(code)  # atomically: the code is single-use
        if consumed is None:
            return None
        record, first_use = consumed
        if not first_use:
            # RFC 6749 §4.1.2: a code used twice MUST be refused, and the tokens it already
            # produced SHOULD be revoked.
            self.server.store.revoke_grant(record.grant_id)
            return None
        if record.institution != current_institution().slug:
            return None
        if record.client_id != client.get_client_id():
            return None
        return record

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        """Nothing to do: ``query_authorization_code`` already spent the code."""

    def authenticate_user(self, authorization_code: CodeRecord) -> Customer:
        return Customer.of(authorization_code)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """RFC 6749 §6 refresh, with rotation and reuse detection (RFC 9700 §4.14.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: BankAuthorizationServer

    def authenticate_refresh_token(self, refresh_token: str) -> TokenRecord | None:
        record = self.server.store.find_token(refresh_token)
        if record is None or record.kind != "refresh_token":
            return None
        if record.institution != current_institution().slug:
            return None
        if record.claimed:
            # A rotated-away refresh token came back: one of its two holders is not the
            # client, and the bank cannot tell which, so the whole grant goes.
            self.server.store.revoke_grant(record.grant_id)
            return None
        return record

    def validate_token_request(self) -> None:
        super().validate_token_request()  # client, token and the scope (never widened)
        record: TokenRecord = self.request.refresh_token
        # Spend the old token now, before anything is issued, so that of two concurrent
        # refreshes with one token exactly one wins and the other is treated as a reuse.
        if current_faults().rotate_refresh_tokens and not self.server.store.claim_refresh_token(
            record
        ):
            self.server.store.revoke_grant(record.grant_id)
            raise InvalidGrantError("The refresh token has already been used.")

    def issue_token(self, user: Customer, refresh_token: TokenRecord) -> dict[str, Any]:
        return self.generate_token(
            user=user,
            scope=self.request.payload.scope or refresh_token.scope,
            include_refresh_token=current_faults().rotate_refresh_tokens,
        )

    def authenticate_user(self, refresh_token: TokenRecord) -> Customer:
        return Customer.of(refresh_token)

    def revoke_old_credential(self, refresh_token: TokenRecord) -> None:
        """Nothing to do: ``validate_token_request`` spent it (or rotation is off)."""


class RevocationEndpoint(_RevocationEndpoint):
    """RFC 7009 token revocation."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: BankAuthorizationServer

    def check_params(self, request: OAuth2Request, client: SandboxClient) -> None:
        if "token" not in request.form:
            raise InvalidRequestError("Missing 'token'.")
        # RFC 7009 §2.1: token_type_hint is only a hint the server MAY ignore; tokens are
        # found by value whatever it says, so an unfamiliar hint is not an error either.

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        record = self.server.store.find_token(token_string)
        if record is None or record.institution != current_institution().slug:
            return None  # RFC 7009 §2.2: an unknown token is not an error
        return record

    def revoke_token(self, token: TokenRecord, request: OAuth2Request) -> None:
        if token.kind == "refresh_token":
            # RFC 7009 §2.1: revoking a refresh token SHOULD also invalidate the access
            # tokens of the same grant; the grant is the unit of revocation here.
            self.server.store.revoke_grant(token.grant_id)
        else:
            self.server.store.delete_token(token)


class _IssuerParameter(IssuerParameter):
    """RFC 9207: ``iss`` in every authorization response, naming the institution's issuer."""

    def __init__(self, public_url: str) -> None:
        self.public_url = public_url

    def get_issuer(self) -> str:
        return current_institution().issuer(self.public_url)


class BankAuthorizationServer(AuthorizationServer):
    """Authlib's Flask authorization server wired to the bank's store and its one client."""

    def __init__(self, settings: BankSettings, store: BankStore) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.client = SandboxClient(settings.client_id, settings.client_secret)
        self.scopes_supported = [*SCOPES, PAYMENT_SCOPE]
        self.issuer_parameter = _IssuerParameter(settings.public_url)
        self.register_extension(self.issuer_parameter)
        self.register_token_generator("default", self.generate_bearer_token)
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_endpoint(RevocationEndpoint)

    def query_client(self, client_id: str) -> SandboxClient | None:
        return self.client if client_id == self.client.client_id else None

    def generate_bearer_token(
        self,
        grant_type: str,
        client: SandboxClient,
        user: Customer,
        scope: str,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        """An RFC 6750 token response; opaque 256-bit tokens, plus the customer's endpoint."""
        token = {
            "token_type": "Bearer",
            "access_token": secrets.token_urlsafe(32),
            "expires_in": current_faults().access_token_ttl,
            "scope": scope,
        }
        # a payment's token makes that one payment: nothing to renew
        if include_refresh_token and PAYMENT_SCOPE not in scope.split():
            token["refresh_token"] = secrets.token_urlsafe(32)
        # Extension member (RFC 6749 §5.1 allows them): where this customer's API lives.
        token["endpoint"] = user.endpoint(self.settings.public_url)
        return token

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        grant = self._grant_of(request)
        tokens = [
            (token["access_token"],
             TokenRecord.issue(grant, "access_token", token["scope"], token["expires_in"])),
        ]
        renew = None
        if "refresh_token" in token:
            # RFC 6749 §6: a new refresh token keeps the scope of the one it replaces (the
            # grant's), even when the access token was narrowed.
            tokens.append(
                (token["refresh_token"],
                 TokenRecord.issue(grant, "refresh_token", grant.scope, REFRESH_TOKEN_TTL))
            )
            renew = REFRESH_TOKEN_TTL
        if not self.store.save_tokens(grant, tokens, renew):
            raise InvalidGrantError("The grant has been revoked.")

    def _grant_of(self, request: OAuth2Request) -> GrantRecord:
        """The grant a token request issues under: new for a code, existing for a refresh."""
        if request.payload.grant_type == "authorization_code":
            code: CodeRecord = request.authorization_code
            grant = GrantRecord(
                grant_id=code.grant_id,
                institution=code.institution,
                client_id=code.client_id,
                username=code.username,
                user_id=code.user_id,
                scope=code.scope,
                created_at=int(time.time()),
                consent_id=code.consent_id,
            )
            self.store.create_grant(grant, REFRESH_TOKEN_TTL)
            return grant
        existing = self.store.get_grant(request.refresh_token.grant_id)
        if existing is None:
            raise InvalidGrantError("The grant has been revoked.")
        return existing

    def authorization_error_response(self, error: Any) -> Response:
        """The error redirect for an authorization request whose redirect URI is valid."""
        response = self.handle_error_response(None, error)
        # RFC 9207 §2: error responses carry ``iss`` too.
        self.issuer_parameter.add_issuer_parameter(self, response)
        return response
