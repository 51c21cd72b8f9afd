"""Client authentication at the token, PAR, introspection, revocation and grant endpoints.

Methods (RFC 6749 §2.3, RFC 7591 §2 names): ``client_secret_basic``, ``client_secret_post``,
``private_key_jwt`` (RFC 7523 §2.2/§3) and ``none`` for public clients. A client must use the
one method it registered, so a confidential client can never pass with ``none``. The server
profile (:mod:`.profile`) may narrow the methods, algorithms and audiences accepted.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from urllib.parse import unquote

from flask import request
from joserfc import jws
from joserfc.errors import JoseError

from aggregator import json_input
from aggregator.crypto import constant_time_equals, token_hash
from aggregator.errors import InvalidClient, InvalidRequest
from aggregator.json_input import check_compact_jws
from aggregator.oauth.client_keys import SIGNING_ALGS, verify_client_jwt
from aggregator.oauth.profile import rules
from aggregator.services import services
from aggregator.store.clients import ClientRecord

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
#: clock skew we tolerate on assertion times
LEEWAY = 60
#: the longest assertion lifetime we accept (we remember each jti until it expires)
MAX_ASSERTION_LIFETIME = 3600


@dataclass(frozen=True)
class Credentials:
    """What the request presented: the method, the claimed client id and the secret/assertion."""

    method: str
    client_id: str
    secret: str | None = None
    assertion: str | None = None


def authenticate_client(endpoint_url: str) -> ClientRecord:
    """Authenticate the client of the current request or raise ``InvalidClient`` (RFC 6749 §5.2).

    ``endpoint_url`` is the URL of the endpoint being called: a ``private_key_jwt`` assertion
    may name it, the token endpoint or the issuer as its audience.
    """
    presented = _credentials()
    svc = services()
    client = svc.store.clients.get(presented.client_id)
    if client is None:
        raise InvalidClient("Unknown client.")
    rules(svc.settings).check_client(client)
    if presented.method != client.token_endpoint_auth_method:
        raise InvalidClient(f"This client authenticates with {client.token_endpoint_auth_method}, "
                            f"not {presented.method}.")
    if presented.method in ("client_secret_basic", "client_secret_post"):
        _check_secret(client, presented.secret or "")
    elif presented.method == "private_key_jwt":
        _check_assertion(client, presented.assertion or "", endpoint_url)
    elif not client.is_public:  # "none": only ever for public clients
        raise InvalidClient("A confidential client must authenticate.")
    return client


def _credentials() -> Credentials:
    """Read the credentials; more than one method in a request is refused (RFC 6749 §2.3)."""
    form = request.form
    found: list[Credentials] = []
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        client_id, secret = _basic(header[6:])
        found.append(Credentials("client_secret_basic", client_id, secret=secret))
    if "client_secret" in form:
        found.append(Credentials("client_secret_post", form.get("client_id", ""),
                                 secret=form["client_secret"]))
    if "client_assertion" in form or "client_assertion_type" in form:
        if form.get("client_assertion_type") != JWT_BEARER:
            raise InvalidClient("client_assertion_type must be " + JWT_BEARER + ".")
        assertion = form.get("client_assertion", "")
        found.append(Credentials("private_key_jwt", _assertion_subject(assertion, form.get("client_id")),
                                 assertion=assertion))
    if len(found) > 1:
        raise InvalidRequest("Use exactly one client authentication method per request.")
    if found:
        if form.get("client_id") and form["client_id"] != found[0].client_id:
            raise InvalidClient("client_id does not match the client's credentials.")
        return found[0]
    if form.get("client_id"):
        return Credentials("none", form["client_id"])
    raise InvalidClient("Client authentication is required.")


def _basic(encoded: str) -> tuple[str, str]:
    """RFC 6749 §2.3.1: ``client_id:client_secret``, each form-urlencoded, base64 encoded."""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("Malformed Basic credentials.") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        raise InvalidClient("Malformed Basic credentials.")
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def _assertion_subject(assertion: str, client_id: str | None) -> str:
    """The client an assertion claims to be (verified later); must agree with ``client_id``."""
    try:  # read, not verified: verification needs the client's keys, found by this sub
        check_compact_jws(assertion)
        subject = json_input.loads(jws.extract_compact(assertion.encode()).payload)["sub"]
    except (JoseError, ValueError, KeyError, TypeError):
        raise InvalidClient("The client assertion is not a JWT with a sub claim.") from None
    if not isinstance(subject, str) or not subject:
        raise InvalidClient("The client assertion has no sub.")
    if client_id and client_id != subject:
        raise InvalidClient("client_id does not match the assertion's sub.")
    return subject


def _check_secret(client: ClientRecord, secret: str) -> None:
    expected = client.client_secret_hash or ""
    # compare digests in constant time; a client without a secret never matches
    if not expected or not constant_time_equals(token_hash(secret), expected):
        raise InvalidClient("Wrong client credentials.")


def _check_assertion(client: ClientRecord, assertion: str, endpoint_url: str) -> None:
    """RFC 7523 §3 rules for a client assertion, then single use of its ``jti``."""
    svc = services()
    profile = rules(svc.settings)
    algs = profile.client_algs(client.token_endpoint_auth_signing_alg, SIGNING_ALGS)
    _, claims = verify_client_jwt(svc.client_jwks, client, assertion, algs, InvalidClient)
    now = int(time.time())
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise InvalidClient("The assertion's iss and sub must both be the client_id.")  # §3 items 1, 2
    if not profile.audience_accepted(claims.get("aud"), svc.issuer, (svc.endpoints.token, endpoint_url)):
        raise InvalidClient(profile.audience_rule)  # §3 item 3
    exp = claims.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise InvalidClient("The assertion must carry an integer exp.")  # §3 item 4
    if exp + LEEWAY <= now:
        raise InvalidClient("The assertion has expired.")
    if exp > now + MAX_ASSERTION_LIFETIME:
        raise InvalidClient("The assertion lives too long (exp at most one hour ahead).")
    for claim in ("nbf", "iat"):
        value = claims.get(claim)
        if value is not None and (not isinstance(value, int) or value > now + LEEWAY):
            raise InvalidClient(f"The assertion's {claim} is in the future.")  # §3 items 5, 6
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise InvalidClient("The assertion must carry a jti.")
    if not svc.store.assertions.first_use(client.client_id, jti, exp):  # §3 item 7
        raise InvalidClient("This assertion was already used.")
