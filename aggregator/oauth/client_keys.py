"""A client's public keys (its ``jwks`` or ``jwks_uri``) and verifying the JWTs it signs.

Client assertions (RFC 7523) and request objects (RFC 9101) are both JWS signed by the client;
:func:`verify_client_jwt` checks the signature against the client's keys with an algorithm
from an explicit allow-list (never ``none``, never a MAC), and refuses any other ``alg`` before
looking for keys, so an unsigned JWT never makes the AS fetch a ``jwks_uri``. Keys behind a
``jwks_uri`` come from :class:`~aggregator.oauth.client_jwks.ClientJwks` (cached for every
worker, fetched again on an unknown ``kid`` at most once per interval).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from aggregator import json_input
from aggregator.errors import ProtocolError
from aggregator.json_input import JSONRefused, check_compact_jws
from aggregator.oauth.client_jwks import ClientJwks, ClientKeyError, KeysUnavailable
from aggregator.store.clients import ClientRecord

#: what clients may sign with (asymmetric only: FAPI 2.0 Security Profile §5.4)
SIGNING_ALGS = ("PS256", "ES256", "RS256")
_KEY_TYPES = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC"}


def client_keyset(keys: ClientJwks, client: ClientRecord, *, refresh: bool = False) -> KeySet:
    """The client's public keys; ``refresh``: its ``jwks_uri`` may be refetched (unknown kid)."""
    if client.jwks:
        try:
            return KeySet.import_key_set(client.jwks)
        except (JoseError, ValueError, TypeError) as exc:
            raise ClientKeyError("the client's registered jwks is unusable") from exc
    if not client.jwks_uri:
        raise ClientKeyError("the client has registered no keys (jwks or jwks_uri)")
    return keys.keyset(client.jwks_uri, refresh=refresh)


def _select_key(keyset: KeySet, header: dict[str, Any]) -> Any:
    alg = header.get("alg")
    kid = header.get("kid")
    candidates = [
        key for key in keyset.keys
        if key.key_type == _KEY_TYPES.get(str(alg)) and key.get("use", "sig") == "sig"
        and key.get("alg") in (None, alg) and (kid is None or key.kid == kid)
    ]
    if len(candidates) != 1:
        raise ClientKeyError("no single key of the client matches the JWT's kid and alg"
                             if candidates == [] else "the JWT needs a kid: the client has several keys")
    return candidates[0]


def _header(value: str) -> dict[str, Any]:
    """The JWS protected header, read (not verified) to learn its ``alg``."""
    segment = value.split(".", 1)[0]
    try:
        header = json_input.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        return {}
    return header if isinstance(header, dict) else {}


def verify_client_jwt(keys: ClientJwks, client: ClientRecord, value: str,
                      allowed_algs: tuple[str, ...],
                      error: type[ProtocolError]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify a JWS signed by ``client``; returns ``(header, claims)`` or raises ``error``."""
    if not isinstance(value, str) or value.count(".") != 2 or len(value) > 16 * 1024:
        raise error("The JWT is not a compact JWS.")
    try:
        check_compact_jws(value)
    except JSONRefused as exc:
        raise error(f"The JWT is malformed: {exc}") from None
    alg = _header(value).get("alg")
    if alg not in allowed_algs:  # before any key lookup: "none" and MACs never cost a fetch
        raise error(f"The JWT must be signed with one of {', '.join(allowed_algs)}.")
    for attempt in (0, 1):
        try:
            keyset = client_keyset(keys, client, refresh=attempt == 1)
            token = jwt.decode(value, lambda obj, ks=keyset: _select_key(ks, obj.headers()),
                               algorithms=list(allowed_algs))
            return dict(token.header), dict(token.claims)
        except KeysUnavailable as exc:
            raise error(f"The JWT cannot be verified: {exc}.") from None
        except ClientKeyError as exc:
            if attempt == 1 or not client.jwks_uri:
                raise error(f"The JWT does not verify: {exc}.") from None
        except JoseError as exc:
            if attempt == 1 or not client.jwks_uri:
                raise error(f"The JWT does not verify ({exc.error}).") from None
        except (ValueError, TypeError, KeyError):
            raise error("The JWT is malformed.") from None
    raise error("The JWT does not verify.")  # pragma: no cover - the loop always returns or raises
