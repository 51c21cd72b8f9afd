"""An authorization request, validated step by step (RFC 6749 §4.1.1, OIDC Core §3.1.2.1).

The steps split at the redirect URI: until it is validated an error is shown to the person and
never redirected (RFC 6749 §4.1.2.1); afterwards errors go back to the client.
The same validation serves ``/authorize`` and the PAR endpoint (RFC 9126 §2.1).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from aggregator.errors import (
    InvalidAuthorizationDetails,
    InvalidRequest,
    InvalidScope,
    UnauthorizedClient,
    UnsupportedResponseType,
)
from aggregator.oauth.authorization_details import DataAsk, Details, asks_for
from aggregator.oauth.authorization_details import parse as parse_details
from aggregator.oauth.claims import parse_claims
from aggregator.oauth.client_metadata import RESPONSE_TYPES
from aggregator.oauth.dpop import check_jkt
from aggregator.oauth.request_object import request_object_params
from aggregator.oauth.responses import RESPONSE_MODES, ResponseTarget, default_response_mode
from aggregator.oauth.scopes import EVENTS, OPENID, PAYMENTS, data_scopes, parse_scope
from aggregator.services import Services
from aggregator.store.clients import ClientRecord
from aggregator.upstream.contract import PaymentRequest

PROMPTS = ("none", "login", "consent")
#: OpenID Grant Management for OAuth 2.0 §4.1
GRANT_MANAGEMENT_ACTIONS: tuple[str, ...] = ("create", "merge", "replace")
_CODE_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # BASE64URL(SHA-256(verifier)), RFC 7636 §4.2
_MAX_VALUE = 2048


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorization request, as kept while the person logs in and consents."""

    client_id: str
    redirect_uri: str
    response_type: str
    response_mode: str
    scopes: tuple[str, ...]
    state: str | None = None
    nonce: str | None = None
    code_challenge: str | None = None
    prompt: tuple[str, ...] = ()
    max_age: int | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    #: RFC 9396 ``authorization_details`` as data asks (see :mod:`.authorization_details`)
    details: tuple[DataAsk, ...] = ()
    #: OpenID Grant Management: ``create`` | ``merge`` | ``replace``, and the grant they name
    grant_management_action: str | None = None
    grant_id: str | None = None
    #: RFC 9449 §10: the DPoP key the code must be redeemed with
    dpop_jkt: str | None = None
    #: RFC 9396 ``payment_initiation``: the one payment asked (scope ``payments``)
    payment: PaymentRequest | None = None

    @property
    def all_scopes(self) -> tuple[str, ...]:
        """The scopes asked, with every action of the authorization details (and ``payments``
        for a payment) added."""
        actions = sorted(frozenset().union(*(ask.actions for ask in self.details)))
        paying = (PAYMENTS,) if self.payment is not None else ()
        return tuple(dict.fromkeys(self.scopes + tuple(actions) + paying))

    @property
    def scope(self) -> str:
        """The scope of the tokens this request leads to."""
        return " ".join(self.all_scopes)

    @property
    def data_asks(self) -> tuple[DataAsk, ...]:
        """Every data ask: the data scopes (for whichever institutions), then the details."""
        return asks_for(self.scopes, self.details)

    def target(self, issuer: str) -> ResponseTarget:
        return ResponseTarget(self.redirect_uri, self.response_mode, self.state, issuer)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "details": [ask.as_dict() for ask in self.details]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuthorizationRequest:
        payment = data.get("payment")
        return cls(**{**data, "scopes": tuple(data["scopes"]), "prompt": tuple(data["prompt"]),
                      "details": tuple(DataAsk.from_dict(d) for d in data.get("details", ())),
                      "payment": PaymentRequest(**payment) if payment else None})


def with_request_object(svc: Services, client: ClientRecord, params: dict[str, str]) -> dict[str, str]:
    """RFC 9101 §5: a ``request`` parameter replaces every other parameter."""
    if "request" not in params:
        return params
    if "request_uri" in params:
        raise InvalidRequest("Send request or request_uri, not both.")
    return request_object_params(svc, client, params["request"])


def redirect_target(svc: Services, client: ClientRecord, params: dict[str, str]) -> ResponseTarget:
    """The validated redirect URI and response mode (errors here must not redirect).

    RFC 6749 §3.1.2.3 / RFC 9700 §4.1.3: the redirect URI is compared as an exact string with
    the registered ones. It may be omitted only when exactly one is registered.
    """
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is None:
        if len(client.redirect_uris) != 1:
            raise InvalidRequest("redirect_uri is required.")
        redirect_uri = client.redirect_uris[0]
    elif redirect_uri not in client.redirect_uris:
        raise InvalidRequest("The redirect_uri is not registered for this client.")
    response_type = params.get("response_type", "code")
    mode = params.get("response_mode") or default_response_mode(response_type)
    if not _mode_allowed(mode, response_type):
        mode = default_response_mode(response_type)  # the error about it goes the safe way
    state = params.get("state")
    return ResponseTarget(redirect_uri, mode, state[:_MAX_VALUE] if state else state, svc.issuer)


def _mode_allowed(mode: str, response_type: str) -> bool:
    # Multiple Response Types §5: no tokens in the query
    return mode in RESPONSE_MODES and not (mode == "query" and "id_token" in response_type)


def validate(client: ClientRecord, params: dict[str, str], target: ResponseTarget) -> AuthorizationRequest:
    """Every other rule; raises the ProtocolError to send back to the client."""
    for name, value in params.items():
        if len(value) > _MAX_VALUE and name not in ("claims", "authorization_details"):
            raise InvalidRequest(f"The {name} parameter is too long.")
    response_type = _response_type(client, params)
    if "response_mode" in params and not _mode_allowed(params["response_mode"], response_type):
        raise InvalidRequest("Unsupported response_mode for this response_type.")
    details = _details(client, params)
    scopes = _scopes(client, params, response_type, details)
    action, grant_id = _grant_management(params)
    if details.payment is not None and action is not None:
        raise InvalidRequest("A payment does not manage grants: send it without "
                             "grant_management_action.")
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=target.redirect_uri,
        response_type=response_type,
        response_mode=target.response_mode,
        scopes=scopes,
        state=target.state,
        nonce=_nonce(params, response_type),
        code_challenge=_code_challenge(client, params),
        prompt=_prompt(params),
        max_age=_max_age(params),
        claims=parse_claims(params.get("claims")),
        details=details.data,
        payment=details.payment,
        grant_management_action=action,
        grant_id=grant_id,
        dpop_jkt=check_jkt(params.get("dpop_jkt")),  # RFC 9449 §10
    )


def _response_type(client: ClientRecord, params: dict[str, str]) -> str:
    response_type = params.get("response_type")
    if not response_type:
        raise InvalidRequest("response_type is required.")
    normalized = " ".join(sorted(response_type.split(" "), key=lambda part: part != "code"))
    if normalized not in RESPONSE_TYPES:
        raise UnsupportedResponseType(f"response_type {response_type!r} is not supported.")
    if normalized not in client.response_types:
        raise UnauthorizedClient(f"This client is not registered for response_type {normalized!r}.")
    return normalized


def _details(client: ClientRecord, params: dict[str, str]) -> Details:
    """RFC 9396 §2; the actions (and a payment's ``payments``) must be scopes this client is
    registered for (§5)."""
    details = parse_details(params.get("authorization_details"))
    needed = frozenset().union(*(ask.actions for ask in details.data))
    if details.payment is not None:
        needed |= {PAYMENTS}
    outside = sorted(needed - set(client.scopes))
    if outside:
        raise InvalidAuthorizationDetails(f"This client is not registered for: {' '.join(outside)}.")
    return details


def _grant_management(params: dict[str, str]) -> tuple[str | None, str | None]:
    """``grant_management_action`` and ``grant_id`` (OpenID Grant Management §4.1)."""
    action = params.get("grant_management_action") or None
    grant_id = params.get("grant_id") or None
    if action is not None and action not in GRANT_MANAGEMENT_ACTIONS:
        raise InvalidRequest("grant_management_action must be one of "
                             f"{', '.join(GRANT_MANAGEMENT_ACTIONS)}.")
    if action in ("merge", "replace") and grant_id is None:
        raise InvalidRequest(f"grant_management_action={action} needs a grant_id.")
    if grant_id is not None and action not in ("merge", "replace"):
        raise InvalidRequest("Send grant_id with grant_management_action merge or replace.")
    return action, grant_id


def _scopes(client: ClientRecord, params: dict[str, str], response_type: str,
            details: Details) -> tuple[str, ...]:
    scopes = parse_scope(params.get("scope"))
    if not scopes and not details.data and details.payment is None:
        raise InvalidScope("Ask for at least one scope, or send authorization_details.")
    if EVENTS in scopes:  # the app's own, not the person's: nothing to consent to
        raise InvalidScope(f"The {EVENTS} scope is for the client credentials grant only.")
    if PAYMENTS in scopes and details.payment is None:
        raise InvalidScope(f"The {PAYMENTS} scope goes with a payment_initiation authorization detail.")
    if details.payment is not None and data_scopes(scopes):
        raise InvalidScope("A payment is asked on its own: send the data scopes in another request.")
    outside = [scope for scope in scopes if scope not in client.scopes]
    if outside:
        raise InvalidScope(f"This client is not registered for: {' '.join(outside)}.")
    if "id_token" in response_type and OPENID not in scopes:
        raise InvalidScope("response_type code id_token needs the openid scope.")
    return scopes


def _nonce(params: dict[str, str], response_type: str) -> str | None:
    nonce = params.get("nonce") or None
    if nonce is None and "id_token" in response_type:
        raise InvalidRequest("nonce is required with response_type code id_token (OIDC Core §3.3.2.11).")
    return nonce


def _code_challenge(client: ClientRecord, params: dict[str, str]) -> str | None:
    """RFC 7636 §4.3/§4.4.1: S256 only, and required of every client, confidential ones too
    (RFC 9700 §2.1.1; FAPI 2.0 Security Profile §5.3.2.2)."""
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise InvalidRequest("code_challenge_method without code_challenge.")
        raise InvalidRequest("PKCE is required: send code_challenge with method S256.")
    if method != "S256":
        raise InvalidRequest("code_challenge_method must be S256 (plain is not supported).")
    if not _CODE_CHALLENGE.match(challenge):
        raise InvalidRequest("code_challenge must be the base64url SHA-256 of the verifier (43 characters).")
    return challenge


def _prompt(params: dict[str, str]) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(value for value in params.get("prompt", "").split(" ") if value))
    unknown = [value for value in values if value not in PROMPTS]
    if unknown:
        raise InvalidRequest(f"Unsupported prompt value(s): {' '.join(unknown)}.")
    if "none" in values and len(values) > 1:
        raise InvalidRequest("prompt=none cannot be combined with other values (OIDC Core §3.1.2.1).")
    return values


def _max_age(params: dict[str, str]) -> int | None:
    value = params.get("max_age")
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 10:
        raise InvalidRequest("max_age must be a non-negative number of seconds.")
    return int(value)
