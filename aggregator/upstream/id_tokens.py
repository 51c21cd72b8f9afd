"""Verifying an upstream's ID tokens (OpenID Connect Core §3.1.3.7, §3.3.2.12 for hybrid flows).

Every failed check raises :class:`LinkInvalid` naming the check, so the person and the
operator learn what went wrong, never why in detail enough to help a forger.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any

from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from aggregator.upstream.contract import LinkInvalid
from aggregator.upstream.plugin_keys import SIGNING_ALGS

#: how far clocks may disagree, in seconds
LEEWAY = 60
#: OpenID Connect Core §3.1.3.7 (7): RS256 when the provider names no algorithm
DEFAULT_ALGS = ("RS256",)


class IdTokenVerifier:
    """Checks ID tokens from one issuer for one client.

    ``keys(refresh)`` returns the issuer's JWKS; ``refresh=True`` asks for a fresh copy, used
    once when a token names an unknown ``kid`` (the issuer rotated its keys, Core §10.1.1).
    ``name`` starts every error message ("Moneyhub", "The institution").
    """

    def __init__(
        self,
        issuer: str,
        client_id: str,
        keys: Callable[[bool], dict[str, Any]],
        algorithms: list[str] | None = None,
        *,
        name: str = "The institution",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.keys = keys
        # asymmetric algorithms only: never "none", never a MAC keyed with our own secret
        self.algorithms = [a for a in (algorithms or DEFAULT_ALGS) if a in SIGNING_ALGS]
        self.name = name
        self.clock = clock

    def verify(
        self,
        token: str,
        *,
        nonce: str | None,
        sub: str | None = None,
        code: str | None = None,
        state: str | None = None,
        access_token: str | None = None,
    ) -> dict[str, Any]:
        """The verified claims.

        ``nonce`` must match when given (Core §3.1.3.7 (11)); ``sub`` when given. ``code`` and
        ``state`` demand ``c_hash`` / ``s_hash`` (a front-channel hybrid ID token, Core
        §3.3.2.11, FAPI); ``access_token`` checks ``at_hash`` when present (Core §3.3.2.12).
        """
        alg, claims = self._signed_claims(token)
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        now = self.clock()
        checks = (
            (claims.get("iss") != self.issuer, "comes from another issuer"),
            (self.client_id not in audiences, "was issued to another client"),
            (len(audiences) > 1 and claims.get("azp") != self.client_id,
             "has several audiences and no matching azp"),
            (not _number(claims.get("exp")) or claims["exp"] <= now - LEEWAY, "has expired"),
            (not _number(claims.get("iat")) or claims["iat"] > now + LEEWAY,
             "has no valid issue time"),
            (nonce is not None and not _same(claims.get("nonce"), nonce),
             "does not carry our nonce (a replayed response?)"),
            (not isinstance(claims.get("sub"), str) or not claims["sub"], "names no subject"),
            (sub is not None and not _same(claims.get("sub"), sub), "is about another user"),
            (code is not None and not _same(claims.get("c_hash"), _half_hash(code, alg)),
             "does not match the authorization code (c_hash)"),
            (state is not None and not _same(claims.get("s_hash"), _half_hash(state, alg)),
             "does not match the state (s_hash)"),
            (access_token is not None and "at_hash" in claims
             and not _same(claims["at_hash"], _half_hash(access_token, alg)),
             "does not match the access token (at_hash)"),
        )
        for failed, problem in checks:
            if failed:
                raise LinkInvalid(f"{self.name}'s ID token {problem}.")
        return claims

    def _signed_claims(self, token: str) -> tuple[str, dict[str, Any]]:
        """The algorithm and the claims of a token whose signature verifies."""
        try:
            header = extract_compact(token.encode("ascii")).protected
            alg = header["alg"]
        except (JoseError, ValueError, KeyError, TypeError, AttributeError, UnicodeError):
            raise LinkInvalid(f"{self.name}'s ID token is malformed.") from None
        if alg not in self.algorithms:
            raise LinkInvalid(f"{self.name}'s ID token uses a refused algorithm ({str(alg)[:16]}).")
        keys = KeySet.import_key_set(self.keys(False))  # type: ignore[arg-type]
        kid = header.get("kid")
        if kid is not None and all(key.kid != kid for key in keys):
            keys = KeySet.import_key_set(self.keys(True))  # type: ignore[arg-type]
        try:
            claims = jwt.decode(token, keys, algorithms=[alg]).claims
        except (JoseError, ValueError, TypeError):
            raise LinkInvalid(f"{self.name}'s ID token signature does not verify.") from None
        if not isinstance(claims, dict):
            raise LinkInvalid(f"{self.name}'s ID token is malformed.")
        return alg, claims


def _half_hash(value: str, alg: str) -> str | None:
    """Base64url of the left half of the hash the ID token's ``alg`` uses (Core §3.3.2.11)."""
    digest = create_half_hash(value, alg)
    return digest.decode("ascii") if digest is not None else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(got: Any, expected: str | None) -> bool:
    return (isinstance(got, str) and expected is not None
            and hmac.compare_digest(got.encode(), expected.encode()))
