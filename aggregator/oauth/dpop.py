"""DPoP (RFC 9449): proof-of-possession of a client key for tokens.

:func:`proof` checks the ``DPoP`` header of a request as RFC 9449 §4.3 lists it and answers the
key's RFC 7638 thumbprint (``jkt``), which the token endpoint writes into the token as
``cnf.jkt`` (§6.1) and a resource endpoint compares with the token's (§7.1). Server nonces
(§8) are the current time window sealed with the server's encryption key, so every host
sharing that key accepts them without a shared store; one stays valid for two windows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import after_this_request, request
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, RSAKey

from aggregator.crypto import DecryptionError
from aggregator.errors import InvalidDPoPProof, InvalidDPoPToken, InvalidRequest, UseDPoPNonce
from aggregator.oauth.profile import rules
from aggregator.services import Services

#: RFC 9449 §5.1 ``dpop_signing_alg_values_supported``: asymmetric only (§4.2), never ``none``
SIGNING_ALGS = ("PS256", "ES256", "RS256")
TYP = "dpop+jwt"
#: how far ``iat`` may be from now (RFC 9449 §4.3 point 11, §11.1), and so how long a ``jti`` is kept
IAT_WINDOW = 60
#: the lifetime of one nonce window (RFC 9449 §8); a nonce is valid in its window and the next
NONCE_WINDOW = 300
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
#: an RFC 7638 SHA-256 thumbprint, base64url without padding (RFC 9449 §10 ``dpop_jkt``)
JKT_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
_NONCE_AAD = "dpop-nonce"


def _registry(algs: list[str] | None = None) -> jws.JWSRegistry:
    """joserfc's rules for a proof: room for an RSA public key in the header's ``jwk`` (an
    RSA-2048 ``n`` alone overruns joserfc's default 512 bytes), other header members ignored."""
    registry = jws.JWSRegistry(algorithms=algs, strict_check_header=False)
    registry.max_header_length = 4096
    return registry


def proof(svc: Services, *, client_id: str, endpoint_url: str, access_token: str | None = None,
          at_resource: bool = False) -> str | None:
    """The thumbprint of the key that signed this request's ``DPoP`` proof; None without one.

    ``endpoint_url`` is the issuer-based URL of the endpoint (the AS may sit behind a proxy,
    so the request's own URL is not the one the client signed). ``access_token`` is given at
    a resource endpoint, where the proof must carry its hash (``ath``, §4.3 point 12).
    """
    values = request.headers.getlist("DPoP")
    if not values:
        return None
    if svc.settings.dpop_nonce:  # §8: every answer to a DPoP request carries the next nonce
        _announce_nonce(svc)

    def invalid(description: str) -> InvalidDPoPProof:
        return InvalidDPoPProof(description, at_resource=at_resource)

    if len(values) > 1:  # §4.3 point 1
        raise invalid("Send exactly one DPoP header.")
    claims, key = _verified(values[0], invalid, rules(svc.settings).algs_of(SIGNING_ALGS))
    if claims.get("htm") != request.method:  # point 8
        raise invalid("htm does not match the request method.")
    if not isinstance(claims.get("htu"), str) or _normal(claims["htu"]) != _normal(endpoint_url):
        raise invalid("htu does not match the endpoint URL.")  # point 9
    _check_iat(claims.get("iat"), invalid)  # point 11
    if access_token is not None:  # point 12
        expected = _b64(hashlib.sha256(access_token.encode("ascii")).digest())
        if claims.get("ath") != expected:
            raise invalid("ath is missing or is not the hash of the access token.")
    if svc.settings.dpop_nonce and not _nonce_ok(svc, claims.get("nonce")):  # point 10
        raise UseDPoPNonce("Send the proof again with the DPoP-Nonce this server gave.",
                           at_resource=at_resource, nonce=new_nonce(svc))
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= 200:
        raise invalid("jti is required.")
    if not svc.store.dpop_proofs.first_use(client_id, jti, 2 * IAT_WINDOW):  # §11.1
        raise invalid("This DPoP proof was already used.")
    return key.thumbprint()


def required(reason: str | None, jkt: str | None) -> str | None:
    """A proof where one is required (``reason`` says why: RFC 9449 §5.2 ``dpop_bound_access_tokens``,
    or the server profile, :meth:`.profile.Profile.dpop_requirement`)."""
    if reason is not None and jkt is None:
        raise InvalidDPoPProof(f"This client must send a DPoP proof ({reason}).")
    return jkt


def check_jkt(value: str | None) -> str | None:
    """The ``dpop_jkt`` parameter (RFC 9449 §10): a SHA-256 JWK thumbprint, or absent."""
    if value is not None and not JKT_PATTERN.match(value):
        raise InvalidRequest("dpop_jkt must be a base64url SHA-256 JWK thumbprint (RFC 9449 §10).")
    return value


def check_presentation(svc: Services, *, scheme: str, token: str, jkt: str | None,
                       client_id: str, endpoint_url: str) -> None:
    """At a resource endpoint (RFC 9449 §7): a token bound to the key ``jkt`` comes with the
    ``DPoP`` scheme and a proof of that key carrying its hash; an unbound one as ``Bearer``."""
    if jkt is None:
        if scheme == "dpop":
            raise InvalidDPoPToken("This access token is not DPoP-bound: send it as Bearer.")
        return
    if scheme != "dpop":  # §7.2: a bound token presented as Bearer
        raise InvalidDPoPToken("This access token is DPoP-bound: send it with the DPoP scheme "
                               "and a DPoP proof.")
    presented = proof(svc, client_id=client_id, endpoint_url=endpoint_url, access_token=token,
                      at_resource=True)
    if presented is None:
        raise InvalidDPoPProof("A DPoP proof is required with this access token.", at_resource=True)
    if presented != jkt:  # §7.1: the proof's key is the one the token is bound to
        raise InvalidDPoPProof("The DPoP proof is not signed with the key this token is bound to.",
                               at_resource=True)


def new_nonce(svc: Services) -> str:
    """A server nonce for the current window (RFC 9449 §8)."""
    window = str(int(time.time()) // NONCE_WINDOW)
    return svc.keyring.encrypt(window.encode(), _NONCE_AAD)


# ------------------------------------------------------------------ the steps of §4.3


def _verified(value: str, invalid: Any, algs: tuple[str, ...]) -> tuple[dict[str, Any], RSAKey | ECKey]:
    """Points 2-7: a compact JWS, ``typ``, an asymmetric ``alg`` of ``algs``, a public ``jwk``
    that verifies the signature, and a JSON claims object."""
    try:
        unverified = jws.extract_compact(value.encode("ascii"), registry=_registry())
    except (JoseError, ValueError, UnicodeError):
        raise invalid("The DPoP proof is not a compact JWS.") from None
    header = unverified.headers()
    if header.get("typ") != TYP:
        raise invalid(f"The DPoP proof's typ must be {TYP}.")
    if header.get("alg") not in algs:
        raise invalid(f"The DPoP proof's alg must be one of {', '.join(algs)}.")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC"):
        raise invalid("The DPoP proof's jwk must be an RSA or EC public key.")
    if any(member in jwk for member in _PRIVATE_MEMBERS):
        raise invalid("The DPoP proof's jwk contains a private key.")
    try:
        key = JWKRegistry.import_key(jwk)
        jws.deserialize_compact(value, key, registry=_registry([header["alg"]]))
        claims = json.loads(unverified.payload)
    except (JoseError, ValueError, TypeError):
        raise invalid("The DPoP proof's signature does not verify with its jwk.") from None
    if not isinstance(claims, dict):
        raise invalid("The DPoP proof's payload must be a JSON object.")
    return claims, key  # type: ignore[return-value]


def _check_iat(iat: Any, invalid: Any) -> None:
    if not isinstance(iat, int) or isinstance(iat, bool):
        raise invalid("iat is required.")
    if abs(time.time() - iat) > IAT_WINDOW:
        raise invalid(f"iat must be within {IAT_WINDOW} seconds of now.")


def _normal(url: str) -> str:
    """RFC 9449 §4.3 point 9: the URL without query and fragment, after RFC 3986 §6.2.2-3
    normalization of scheme, host and default port."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("https", 443), ("http", 80)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _nonce_ok(svc: Services, nonce: Any) -> bool:
    if not isinstance(nonce, str) or len(nonce) > 500:
        return False
    try:
        window = int(svc.keyring.decrypt(nonce, _NONCE_AAD))
    except (DecryptionError, ValueError):
        return False
    return 0 <= int(time.time()) // NONCE_WINDOW - window <= 1


def _announce_nonce(svc: Services) -> None:
    nonce = new_nonce(svc)

    @after_this_request
    def _header(response: Any) -> Any:
        response.headers.setdefault("DPoP-Nonce", nonce)
        return response
