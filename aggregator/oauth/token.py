"""The token endpoint (RFC 6749 §3.2), read as its steps:

1. no caching of the answer                     RFC 6749 §5.1
2. a form body with one value per parameter     RFC 6749 §3.2
3. authenticate the client                      RFC 6749 §3.2.1
4. a DPoP proof, if any (required for a client registered with ``dpop_bound_access_tokens``,
   and of every client under the fapi2 profile) binds the tokens to its key   RFC 9449 §5, §5.2
5. dispatch on ``grant_type`` the client may use
   - ``authorization_code``  RFC 6749 §4.1.3, PKCE RFC 7636 §4.6, replay §4.1.2
   - ``refresh_token``       RFC 6749 §6, rotation and reuse detection RFC 9700 §4.14.2
                             (none under fapi2: FAPI 2.0 §5.3.2.1)
   - ``client_credentials``  RFC 6749 §4.4
6. answer with the tokens, ``grant_id`` and ``introspection_endpoint``
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oauth2.rfc7636.challenge import CODE_VERIFIER_PATTERN
from flask import jsonify

from aggregator.crypto import constant_time_equals
from aggregator.errors import (
    InvalidDPoPProof,
    InvalidGrant,
    InvalidScope,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from aggregator.oauth import dpop
from aggregator.oauth.authorization_details import granted_details
from aggregator.oauth.blueprints import api
from aggregator.oauth.consents import end_grant
from aggregator.oauth.id_token import issue_id_token
from aggregator.oauth.params import require
from aggregator.oauth.payment_initiation import granted_payments
from aggregator.oauth.profile import rules
from aggregator.oauth.scopes import OFFLINE_ACCESS, OPENID, SCOPES_SUPPORTED, parse_scope
from aggregator.oauth.steps import client_request
from aggregator.registry.names import unique_names
from aggregator.security import csrf_exempt
from aggregator.services import Services, services
from aggregator.store.clients import ClientRecord
from aggregator.store.codes import AuthorizationCode
from aggregator.store.grants import Grant, Pairs, effective_pairs
from aggregator.store.tokens import RefreshTokenRecord, RefreshTokenReused

TokenResponse = dict[str, Any]


@api.post("/token")
@csrf_exempt  # client-authenticated; no cookies involved
def token():
    svc = services()
    params, client = client_request(svc.endpoints.token)
    grant_type = require(params, "grant_type")
    exchange = GRANT_TYPES.get(grant_type)
    if exchange is None:
        raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported.")
    if grant_type not in client.grant_types:
        raise UnauthorizedClient(f"This client is not registered for {grant_type}.")
    jkt = dpop.required(rules(svc.settings).dpop_requirement(client),
                        dpop.proof(svc, client_id=client.client_id, endpoint_url=svc.endpoints.token))
    return jsonify(exchange(svc, client, params, jkt))


# ------------------------------------------------------------------ authorization_code


def authorization_code(svc: Services, client: ClientRecord, params: dict[str, str],
                       jkt: str | None) -> TokenResponse:
    redemption = svc.store.codes.redeem(require(params, "code"))
    if redemption is None:
        raise InvalidGrant("The authorization code is invalid or has expired.")
    code = redemption.code
    if not redemption.first_use:
        # RFC 6749 §4.1.2: a code used twice revokes what it issued
        svc.store.tokens.revoke_family(code.person_id, code.family)
        raise InvalidGrant("The authorization code was already used; its tokens are revoked.")
    if code.client_id != client.client_id:
        raise InvalidGrant("The authorization code was issued to another client.")
    _check_redirect_uri(client, code, params.get("redirect_uri"))
    _check_pkce(code, params.get("code_verifier"))
    if code.dpop_jkt is not None and jkt != code.dpop_jkt:  # RFC 9449 §10
        raise InvalidDPoPProof("This code can only be redeemed with a DPoP proof of the key "
                               "named by dpop_jkt.")
    grant = svc.store.grants.get_for(code.person_id, code.grant_id)
    if grant is None:
        raise InvalidGrant("The person revoked this access.")
    scopes = parse_scope(code.scope)
    response = _person_tokens(svc, client, grant, scopes=scopes, pairs=code.pairs,
                              family=code.family, auth_time=code.auth_time, claims=code.claims,
                              nonce=code.nonce, include_auth_time=code.max_age_requested, jkt=jkt)
    if svc.store.codes.was_replayed(code):  # a replay raced this exchange: it wins nothing either
        svc.store.tokens.revoke_family(code.person_id, code.family)
        raise InvalidGrant("The authorization code was used twice; its tokens are revoked.")
    return response


def _check_redirect_uri(client: ClientRecord, code: AuthorizationCode, redirect_uri: str | None) -> None:
    """RFC 6749 §4.1.3: the same redirect_uri as in the authorization request."""
    if redirect_uri is None and client.redirect_uris == [code.redirect_uri]:
        return  # it could be omitted there, so it can be omitted here
    if redirect_uri != code.redirect_uri:
        raise InvalidGrant("redirect_uri does not match the authorization request.")


def _check_pkce(code: AuthorizationCode, verifier: str | None) -> None:
    """RFC 7636 §4.6 (S256 only). Every authorization request carries a challenge now
    (RFC 9700 §2.1.1), so a code without one (from before that rule) is refused outright."""
    if code.code_challenge is None:
        raise InvalidGrant("This code was issued without PKCE; authorize again.")
    if not verifier:
        raise InvalidGrant("code_verifier is required (PKCE).")
    if not CODE_VERIFIER_PATTERN.match(verifier):  # RFC 7636 §4.1
        raise InvalidGrant("code_verifier must be 43-128 unreserved characters (RFC 7636 §4.1).")
    if not constant_time_equals(create_s256_code_challenge(verifier), code.code_challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge.")


# ------------------------------------------------------------------ refresh_token


def refresh_token(svc: Services, client: ClientRecord, params: dict[str, str],
                  jkt: str | None) -> TokenResponse:
    record = svc.store.tokens.lookup_refresh_token(require(params, "refresh_token"))
    if record is None or record.client_id != client.client_id:
        raise InvalidGrant("The refresh token is invalid, expired or revoked.")
    if record.jkt is not None and jkt != record.jkt:  # RFC 9449 §5: a bound refresh token
        raise InvalidDPoPProof("This refresh token is bound to a DPoP key: send a proof of it.")
    if record.rotated_at is not None:
        _reused(svc, record)
    scopes = parse_scope(record.scope)
    access_scopes = scopes
    if "scope" in params:  # RFC 6749 §6: at most the original scope (checked before rotating)
        access_scopes = parse_scope(params["scope"])
        if not access_scopes or not set(access_scopes) <= set(scopes):
            raise InvalidScope("A refresh can only keep or narrow the original scope.")
    rotate = rules(svc.settings).rotate_refresh_tokens
    if rotate:
        try:
            current = svc.store.tokens.rotate_refresh_token(record)
        except RefreshTokenReused:  # a concurrent exchange of the same token won
            _reused(svc, record)
    else:  # FAPI 2.0 §5.3.2.1: a retry with the same refresh token must keep working
        current = svc.store.tokens.find_refresh_token(params["refresh_token"])
    grant = svc.store.grants.get_for(current.person_id or "", current.grant_id or "") \
        if current is not None else None
    if current is None or grant is None:
        raise InvalidGrant("The person revoked this access.")
    # the new tokens reach at most what this refresh token's own consent did (never what a
    # later consent added to the grant)
    return _person_tokens(svc, client, grant, scopes=access_scopes, pairs=current.pairs,
                          family=current.family, auth_time=current.auth_time, claims=current.claims,
                          nonce=None, include_auth_time=True, refresh_scopes=scopes, jkt=jkt,
                          new_refresh_token=rotate)


def _reused(svc: Services, record: RefreshTokenRecord) -> NoReturn:
    """RFC 9700 §4.14.2: a rotated refresh token came back, so one of its two holders is an
    attacker; end the whole grant."""
    grant = svc.store.grants.get_for(record.person_id or "", record.grant_id or "")
    if grant is not None:
        end_grant(svc, grant)
    raise InvalidGrant("The refresh token was already used; access has been revoked.")


# ------------------------------------------------------------------ client_credentials


def client_credentials(svc: Services, client: ClientRecord, params: dict[str, str],
                       jkt: str | None) -> TokenResponse:
    """RFC 6749 §4.4: the client on its own behalf; no person, so no institutions."""
    if client.is_public:
        raise UnauthorizedClient("A public client cannot use client_credentials.")
    allowed = [s for s in SCOPES_SUPPORTED if s in client.scopes and s not in (OPENID, OFFLINE_ACCESS)]
    scopes = parse_scope(params["scope"]) if "scope" in params else tuple(allowed)
    if set(scopes) & {OPENID, OFFLINE_ACCESS}:
        raise InvalidScope("openid and offline_access need a person; client_credentials has none.")
    outside = [scope for scope in scopes if scope not in allowed]
    if outside:
        raise InvalidScope(f"This client is not registered for: {' '.join(outside)}.")
    ttl = svc.settings.access_token_ttl
    access, _ = svc.store.tokens.issue_access_token(client_id=client.client_id, person_id=None,
                                            grant_id=None, scope=" ".join(scopes), ttl=ttl,
                                            jkt=jkt)
    return {"access_token": access, "token_type": _token_type(jkt), "expires_in": ttl,
            "scope": " ".join(scopes), "introspection_endpoint": svc.endpoints.introspection}


# ------------------------------------------------------------------ the response


def _person_tokens(svc: Services, client: ClientRecord, grant: Grant, *, scopes: tuple[str, ...],
                   pairs: Pairs | None, family: str | None, auth_time: int | None,
                   claims: dict[str, Any], nonce: str | None, include_auth_time: bool,
                   refresh_scopes: tuple[str, ...] | None = None,
                   jkt: str | None = None, new_refresh_token: bool = True) -> TokenResponse:
    """Access token, refresh token (only with offline_access) and ID token (only with openid),
    with the institutions the access token reaches as RFC 9396 ``authorization_details``.

    With a DPoP key ``jkt`` the access token is bound to it, and so is a public client's
    refresh token (RFC 9449 §5: a confidential client's is bound by its authentication).
    ``new_refresh_token`` False: a refresh that keeps its refresh token answers none."""
    person_id, grant_id = grant.person_id, grant.id
    scope = " ".join(scopes)
    ttl = svc.settings.access_token_ttl
    access, record = svc.store.tokens.issue_access_token(
        client_id=client.client_id, person_id=person_id, grant_id=grant_id, scope=scope, ttl=ttl,
        family=family, auth_time=auth_time, claims=claims, pairs=pairs, jkt=jkt)
    response: TokenResponse = {"access_token": access, "token_type": _token_type(jkt), "expires_in": ttl,
                               "scope": scope}
    refresh_scopes = refresh_scopes or scopes
    if new_refresh_token and OFFLINE_ACCESS in refresh_scopes and "refresh_token" in client.grant_types:
        refresh, _ = svc.store.tokens.issue_refresh_token(
            client_id=client.client_id, person_id=person_id, grant_id=grant_id,
            scope=" ".join(refresh_scopes), ttl=svc.settings.refresh_token_ttl, family=family,
            auth_time=auth_time, claims=claims, pairs=pairs, jkt=jkt if client.is_public else None)
        response["refresh_token"] = refresh
    reached = effective_pairs(grant, record.pairs, scope)
    if reached:  # RFC 9396 §7
        names = unique_names(svc.store.registrations.list(person_id))
        response["authorization_details"] = granted_details(reached, names)
    payments = granted_payments(svc, person_id, family, scopes)
    if payments:  # RFC 9396 §7: the payment this token's code was issued for
        response["authorization_details"] = response.get("authorization_details", []) + payments
    if OPENID in scopes:
        response["id_token"] = issue_id_token(svc, client, person_id=person_id, nonce=nonce,
                                              auth_time=auth_time, include_auth_time=include_auth_time,
                                              claims=claims, access_token=access)
    response["grant_id"] = grant_id
    response["introspection_endpoint"] = svc.endpoints.introspection
    return response


def _token_type(jkt: str | None) -> str:
    """RFC 9449 §5: ``DPoP`` for a bound access token."""
    return "Bearer" if jkt is None else "DPoP"


GRANT_TYPES: dict[str, Callable[[Services, ClientRecord, dict[str, str], str | None],
                                TokenResponse]] = {
    "authorization_code": authorization_code,
    "refresh_token": refresh_token,
    "client_credentials": client_credentials,
}
