"""The OpenID Provider under ``{identity}/oidc``: discovery, JWKS, PAR, authorization, token,
and the well-known bank connection lists (seed 001)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, redirect, request
from markupsafe import escape

from .authorization import (
    CLIENT_SCOPES,
    DATA_SCOPES,
    check_data_scopes,
    validate_authorization_request,
    verify_request_object,
)
from .catalog import banks_of_type
from .client_auth import authenticate_client
from .context import fake, identity_url, issuer, signer
from .errors import (
    InvalidGrant,
    InvalidRequest,
    InvalidRequestObject,
    InvalidScope,
    OAuthError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from .jose import ASYMMETRIC_ALGS, HMAC_ALGS, ID_TOKEN_ALGS, b64url_decode, half_hash
from .models import AccessToken, AuthorizationRequest
from .settings import RESPONSE_TYPES, FakeClient

bp = Blueprint("oidc", __name__)


# ---------------------------------------------------------------------------- discovery


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    """OIDC Discovery §3 metadata, with the values seed 001 documents."""
    base = issuer()
    # one URL, two protocols (see ``par``); tests may hide either one
    optional = {
        "pushed_authorization_request_endpoint": ("par", f"{base}/request"),
        "request_object_endpoint": ("request_object", f"{base}/request"),
    }
    return jsonify({
        "issuer": base,
        "authorization_endpoint": f"{base}/auth",
        "token_endpoint": f"{base}/token",
        "jwks_uri": f"{base}/certs",
        **{member: url for member, (name, url) in optional.items() if fake().advertised(name)},
        "response_types_supported": list(RESPONSE_TYPES),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": [
            "authorization_code", "client_credentials", "refresh_token", "implicit",
        ],
        "scopes_supported": [
            "openid", "offline_access", "id:all", "id:api", "id:legacy", "id:test",
            "reauth", "refresh", *sorted(CLIENT_SCOPES), *sorted(DATA_SCOPES), "payment",
        ],
        "claims_supported": ["sub", "mh:con_id", "mh:cat_type", "mh:consent", "mh:payment"],
        "claims_parameter_supported": True,
        "request_parameter_supported": True,
        "request_uri_parameter_supported": False,
        "require_pushed_authorization_requests": False,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(ID_TOKEN_ALGS),
        "request_object_signing_alg_values_supported": [*ASYMMETRIC_ALGS, *HMAC_ALGS],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(ASYMMETRIC_ALGS),
        "code_challenge_methods_supported": ["S256"],
        "claim_types_supported": ["normal"],
    })


@bp.get("/certs")
def jwks() -> Response:
    return jsonify(signer().public_jwks())


@bp.get("/.well-known/<any(all, api, legacy, test):kind>-connections")
def connections(kind: str) -> Response:
    base = identity_url()
    return jsonify([bank.as_json(base) for bank in banks_of_type(kind)])


# ---------------------------------------------------------------------------- PAR


@bp.post("/request")
def par() -> tuple[Response, int]:
    """RFC 9126 §2: a client-authenticated push of a signed request object; or, posted as
    ``application/jws``, seed 001's request object endpoint."""
    if request.mimetype == "application/jws":
        return register_request_object()
    client = _authenticate("request")
    if "request_uri" in request.form:
        raise InvalidRequest("request_uri is not allowed at the PAR endpoint")  # RFC 9126 §2.1
    token = request.form.get("request")
    if not token:
        # Moneyhub only takes signed requests: plain parameters would be unsigned
        raise InvalidRequest("a signed request object (request) is required")
    params = verify_request_object(fake(), client, token, issuer())
    authorization = validate_authorization_request(fake(), client, params)
    pushed = fake().push(authorization)
    body = jsonify(request_uri=pushed.request_uri, expires_in=fake().settings.request_uri_ttl)
    body.headers["Cache-Control"] = "no-store"
    return body, 201


def register_request_object() -> tuple[Response, int]:
    """Seed 001 "POST /request": the body is a signed request object, its signature the only
    authentication; the answer is the ``urn:x-mh-request:...`` to use as ``request_uri``."""
    token = request.get_data(as_text=True).strip()
    header_and_claims = token.split(".")
    try:
        unverified = json.loads(b64url_decode(header_and_claims[1]))
        client_id = unverified["client_id"]
    except (IndexError, ValueError, KeyError, TypeError):
        raise InvalidRequestObject("the body must be a signed request object") from None
    client = fake().client(client_id if isinstance(client_id, str) else None)
    if client is None:
        raise InvalidRequestObject("the request object names no known client_id")
    params = verify_request_object(fake(), client, token, issuer())
    authorization = validate_authorization_request(fake(), client, params)
    registered = fake().push(authorization, registered=True)
    response = Response(registered.request_uri, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response, 201


# ---------------------------------------------------------------------------- authorization


@bp.route("/auth", methods=["GET", "POST"])
def authorize() -> Response:
    """The auto-approving bank journey: no pages, straight back to the redirect_uri."""
    client = fake().client(request.values.get("client_id"))
    if client is None:
        raise InvalidRequest("unknown or missing client_id")
    if "request_uri" in request.values:
        authorization = fake().take_pushed(request.values["request_uri"], client.client_id)
    elif "request" in request.values:
        params = verify_request_object(fake(), client, request.values["request"], issuer())
        try:
            authorization = validate_authorization_request(fake(), client, params)
        except OAuthError as error:
            # the redirect_uri is verified now, so the error goes back to the client
            return _respond(
                params["redirect_uri"], params["response_mode"],
                _error_params(error.error, error.description, params.get("state")),
            )
    else:
        raise InvalidRequest("a signed request object (request or request_uri) is required")

    denial = fake().take_denial()
    if denial is not None:
        return _respond(
            authorization.redirect_uri, authorization.response_mode,
            _error_params(*denial, authorization.state),
        )
    payment = None
    if authorization.journey == "payment":
        # the person picks the paying account at the bank; the connection serves this payment
        # only, so it is no data connection of the user
        bank = fake().pick_bank(authorization.bank_scope or "id:test")
        if not authorization.user_id:
            authorization = replace(
                authorization, user_id=fake().create_user(client.client_id).user_id
            )
        payment = fake().create_payment(authorization, bank)
        connection_id = f"{bank.id}:{uuid.uuid4()}"
    elif authorization.journey == "connect":
        bank = fake().pick_bank(authorization.bank_scope or "id:test")
        connection = fake().create_connection(
            authorization.user_id, bank,
            permissions=authorization.permissions,
            expires_at=authorization.expires_at,
            transaction_from=authorization.transaction_from,
            cat_type=authorization.cat_type,
        )
        connection_id = connection.id
    else:
        connection_id = fake().renew_connection(authorization.connection_id or "",
                                                authorization).id

    params: dict[str, str] = {}
    if "code" in authorization.response_type:
        params["code"] = fake().issue_code(authorization, connection_id,
                                           payment.id if payment else None)
    if "id_token" in authorization.response_type:
        # a hybrid id_token is a detached signature over code and state (seed 001); a plain
        # id_token response carries the connection itself
        params["id_token"] = id_token(
            client, "authorization",
            sub=authorization.user_id,
            nonce=authorization.nonce,
            code=params.get("code"),
            state=authorization.state,
            connection_id=None if "code" in params else connection_id,
        )
    if authorization.state is not None:
        params["state"] = authorization.state
    return _respond(authorization.redirect_uri, authorization.response_mode, params)


def _error_params(error: str, description: str, state: str | None) -> dict[str, str]:
    params = {"error": error, "error_description": description}
    if state is not None:
        params["state"] = state
    return params


def _respond(redirect_uri: str, mode: str, params: dict[str, str]) -> Response:
    """Deliver the authorization response in ``mode`` (OAuth 2.0 Multiple Response Types §2.1,
    OAuth 2.0 Form Post Response Mode §2)."""
    if mode == "form_post":
        fields = "".join(
            f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
            for k, v in params.items()
        )
        page = (
            "<!doctype html><html><head><title>Submit</title></head>"
            '<body onload="document.forms[0].submit()">'
            f'<form method="post" action="{escape(redirect_uri)}">{fields}'
            "<noscript><button type=\"submit\">Continue</button></noscript></form></body></html>"
        )
        response = Response(page, mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response
    separator = "#" if mode == "fragment" else ("&" if "?" in redirect_uri else "?")
    return redirect(f"{redirect_uri}{separator}{urlencode(params)}")


# ---------------------------------------------------------------------------- token


@bp.post("/token")
def token() -> Response:
    """RFC 6749 §3.2 token endpoint: authorization_code, refresh_token, client_credentials."""
    client = _authenticate("token")
    grant_type = request.form.get("grant_type")
    if grant_type not in ("authorization_code", "refresh_token", "client_credentials"):
        raise UnsupportedGrantType(f"unsupported grant_type {grant_type!r}")
    if grant_type not in client.grant_types:
        raise UnauthorizedClient(f"this client may not use {grant_type}")
    if grant_type == "authorization_code":
        body = _authorization_code(client)
    elif grant_type == "refresh_token":
        body = _refresh_token(client)
    else:
        body = _client_credentials(client)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 §5.1
    response.headers["Pragma"] = "no-cache"
    return response


def _authorization_code(client: FakeClient) -> dict[str, Any]:
    code = fake().redeem_code(_required("code"), client.client_id)
    authorization = code.request
    # RFC 6749 §4.1.3: redirect_uri must be identical to the authorization request's
    if request.form.get("redirect_uri") != authorization.redirect_uri:
        raise InvalidGrant("redirect_uri does not match the authorization request")
    _check_pkce(authorization)
    scopes = ["openid", *(["offline_access"] if authorization.offline else [])]
    # use case 2 (seed 001): this token carries no data scopes; data needs client_credentials
    access = fake().issue_access_token(
        client.client_id, "authorization_code", scopes,
        sub=authorization.user_id, connection_id=code.connection_id,
    )
    body = _token_body(access)
    issued = [access.token]
    if authorization.offline:
        refresh = fake().issue_refresh_token(
            client.client_id, authorization.user_id, code.connection_id, scopes
        )
        body["refresh_token"] = refresh.token
        issued.append(refresh.token)
    fake().remember_code_tokens(code, *issued)
    body["id_token"] = id_token(
        client, "token",
        sub=authorization.user_id,
        nonce=authorization.nonce,
        access_token=access.token,
        connection_id=code.connection_id,
        auth_time=code.auth_time,
        payment_id=code.payment_id,
    )
    return body


def _check_pkce(authorization: AuthorizationRequest) -> None:
    """RFC 7636 §4.6; a verifier without a challenge is refused too (RFC 9700 §2.1.1)."""
    verifier = request.form.get("code_verifier")
    if authorization.code_challenge is None:
        if verifier is not None:
            raise InvalidGrant("code_verifier sent but no code_challenge was requested")
        return
    if not verifier:
        raise InvalidGrant("code_verifier is required")
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    if not hmac.compare_digest(computed, authorization.code_challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge")


def _refresh_token(client: FakeClient) -> dict[str, Any]:
    """RFC 6749 §6; the new id_token restates the user and connection (OIDC Core §12.2)."""
    grant = fake().use_refresh_token(_required("refresh_token"), client.client_id)
    requested = request.form.get("scope")
    scopes = set(requested.split()) if requested else set(grant.scopes)
    if not scopes <= grant.scopes:
        raise InvalidScope("the requested scope exceeds the original grant")
    access = fake().issue_access_token(
        client.client_id, "refresh_token", scopes,
        sub=grant.user_id, connection_id=grant.connection_id,
    )
    body = _token_body(access)
    body["refresh_token"] = grant.token
    body["id_token"] = id_token(
        client, "token", sub=grant.user_id, access_token=access.token,
        connection_id=grant.connection_id,
    )
    return body


def _client_credentials(client: FakeClient) -> dict[str, Any]:
    """Seed 001: user-management scopes without ``sub``; data scopes for the user ``sub``."""
    scopes = set(_required("scope").split())
    sub = request.values.get("sub")
    if sub is not None:
        if fake().user(sub, client.client_id) is None:
            raise InvalidRequest("sub is not a user of this client")
        unknown = scopes - DATA_SCOPES
        if unknown:
            raise InvalidScope(f"not data scopes: {' '.join(sorted(unknown))}")
        check_data_scopes(scopes)
    else:
        if scopes & DATA_SCOPES:
            raise InvalidRequest("sub is required for data scopes")
        unknown = scopes - CLIENT_SCOPES
        if unknown:
            raise InvalidScope(f"unsupported scope(s): {' '.join(sorted(unknown))}")
    access = fake().issue_access_token(client.client_id, "client_credentials", scopes, sub=sub)
    return _token_body(access)


def _token_body(access: AccessToken) -> dict[str, Any]:
    return {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": fake().settings.access_token_ttl,
        "scope": " ".join(sorted(access.scopes)),
    }


def _required(name: str) -> str:
    value = request.form.get(name)
    if not value:
        raise InvalidRequest(f"{name} is required")
    return value


def _authenticate(endpoint: str) -> FakeClient:
    base = issuer()
    audiences = {base, f"{base}/token", f"{base}/{endpoint}"}
    return authenticate_client(fake(), request, audiences)


# ---------------------------------------------------------------------------- id_tokens


def id_token(
    client: FakeClient,
    channel: str,
    *,
    sub: str,
    nonce: str | None = None,
    code: str | None = None,
    state: str | None = None,
    access_token: str | None = None,
    connection_id: str | None = None,
    auth_time: int | None = None,
    payment_id: str | None = None,
) -> str:
    """Sign an id_token (OIDC Core §2), broken as tests asked with ``corrupt_id_tokens``."""
    faults = fake().id_token_faults(channel)
    alg = client.id_token_signed_response_alg
    now = int(fake().now())
    claims: dict[str, Any] = {
        "iss": issuer() + ("/other" if "iss" in faults else ""),
        "sub": sub + ("-other" if "sub" in faults else ""),
        "aud": "another-client" if "aud" in faults else client.client_id,
        "iat": now,
        "exp": now - 60 if "expired" in faults else now + fake().settings.id_token_ttl,
    }
    if auth_time is not None:
        claims["auth_time"] = auth_time
    if nonce is not None or "nonce" in faults:
        claims["nonce"] = "not-your-nonce" if "nonce" in faults else nonce
    if code is not None:
        claims["c_hash"] = half_hash(code + ("x" if "c_hash" in faults else ""), alg)
    if state is not None:
        claims["s_hash"] = half_hash(state + ("x" if "s_hash" in faults else ""), alg)
    if access_token is not None:
        claims["at_hash"] = half_hash(access_token + ("x" if "at_hash" in faults else ""), alg)
    if connection_id is not None:
        claims["mh:con_id"] = connection_id + ("-other" if "con_id" in faults else "")
    if payment_id is not None:
        # seed 001: after the code exchange, the id_token names the payment
        claims["mh:payment"] = payment_id
    return signer().sign(claims, alg, tamper="signature" in faults)
