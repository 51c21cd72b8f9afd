"""Verifying Moneyhub's id_tokens (OIDC Core §3.1.3.7, and §3.3.2.12 for the hybrid flow)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from aggregator.upstream.contract import LinkInvalid
from aggregator.upstream.plugin_keys import SIGNING_ALGS

#: how far clocks may disagree, in seconds
LEEWAY = 60


def half_hash(value: str, alg: str) -> str:
    """OIDC Core §3.3.2.11 (``c_hash``), §3.2.2.10 (``at_hash``), FAPI ``s_hash``: base64url of
    the left half of the hash of ``value``, with the hash size of the id_token's ``alg``."""
    digest = hashlib.new(f"sha{alg[2:]}", value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


class IdTokenVerifier:
    """Checks an id_token against Moneyhub's keys and what we sent.

    ``keys(refresh)`` returns Moneyhub's JWKS; ``refresh=True`` asks for a fresh copy, used once
    when a token names an unknown ``kid`` (Moneyhub rotated its keys, OIDC Core §10.1.1).
    """

    def __init__(
        self,
        issuer: str,
        client_id: str,
        keys: Callable[[bool], dict[str, Any]],
        algorithms: list[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.keys = keys
        # only asymmetric algorithms: never "none", never a MAC keyed with our own secret
        self.algorithms = [a for a in (algorithms or SIGNING_ALGS) if a in SIGNING_ALGS]
        self.clock = clock

    def verify(
        self,
        token: str,
        *,
        nonce: str,
        sub: str | None = None,
        code: str | None = None,
        state: str | None = None,
        access_token: str | None = None,
    ) -> dict[str, Any]:
        """The verified claims; :class:`LinkInvalid` names the first check that failed.

        ``code`` and ``state`` demand ``c_hash``/``s_hash`` (front-channel hybrid id_token);
        ``access_token`` checks ``at_hash`` when present (token endpoint, Core §3.3.2.12).
        """
        header, claims = self._signature(token)
        alg = header["alg"]
        if claims.get("iss") != self.issuer:
            raise LinkInvalid("Moneyhub's id_token comes from an unexpected issuer.")
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        if self.client_id not in audiences:
            raise LinkInvalid("Moneyhub's id_token was issued to another client.")
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise LinkInvalid("Moneyhub's id_token has several audiences and no matching azp.")
        now = self.clock()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not _number(exp) or exp <= now - LEEWAY:
            raise LinkInvalid("Moneyhub's id_token has expired.")
        if not _number(iat) or iat > now + LEEWAY:
            raise LinkInvalid("Moneyhub's id_token has no valid issue time.")
        if not _same(claims.get("nonce"), nonce):
            raise LinkInvalid("Moneyhub's id_token does not carry our nonce (a replayed response?).")
        if sub is not None and not _same(claims.get("sub"), sub):
            raise LinkInvalid("Moneyhub's id_token is about another user.")
        if code is not None and not _same(claims.get("c_hash"), half_hash(code, alg)):
            raise LinkInvalid("Moneyhub's id_token does not match the authorization code (c_hash).")
        if state is not None and not _same(claims.get("s_hash"), half_hash(state, alg)):
            raise LinkInvalid("Moneyhub's id_token does not match the state (s_hash).")
        if (
            access_token is not None
            and "at_hash" in claims
            and not _same(claims["at_hash"], half_hash(access_token, alg))
        ):
            raise LinkInvalid("Moneyhub's id_token does not match the access token (at_hash).")
        return claims

    def _signature(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            header = json.loads(_b64decode(token.split(".")[0]))
            alg = header["alg"]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise LinkInvalid("Moneyhub's id_token is malformed.") from None
        if alg not in self.algorithms:
            raise LinkInvalid(f"Moneyhub's id_token uses a refused algorithm ({alg}).")
        keys = KeySet.import_key_set(self.keys(False))  # type: ignore[arg-type]
        kid = header.get("kid")
        if kid is not None and all(key.kid != kid for key in keys):
            # an unknown kid: Moneyhub may have rotated its keys (OIDC Core §10.1.1)
            keys = KeySet.import_key_set(self.keys(True))  # type: ignore[arg-type]
        try:
            obj = jws.deserialize_compact(token, keys, algorithms=[alg])
            claims = json.loads(obj.payload)
        except (JoseError, ValueError):
            raise LinkInvalid("The signature of Moneyhub's id_token does not verify.") from None
        if not isinstance(claims, dict):
            raise LinkInvalid("Moneyhub's id_token is malformed.")
        return header, claims


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(got: Any, expected: str) -> bool:
    return isinstance(got, str) and hmac.compare_digest(got.encode(), expected.encode())


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
