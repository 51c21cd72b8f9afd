"""A client's public keys (its ``jwks`` or ``jwks_uri``) and verifying the JWTs it signs.

Client assertions (RFC 7523) and request objects (RFC 9101) are both JWS signed by the client;
:func:`verify_client_jwt` checks the signature against the client's keys with an algorithm
from an explicit allow-list (never ``none``, never a MAC). Keys fetched from ``jwks_uri`` are
cached per process for a few minutes and fetched again when a ``kid`` is not found (rotation).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from aggregator.errors import ProtocolError
from aggregator.json_input import JSONRefused, check_compact_jws
from aggregator.store.clients import ClientRecord

#: what clients may sign with (asymmetric only: FAPI 2.0 Security Profile §5.4)
SIGNING_ALGS = ("PS256", "ES256", "RS256")
_KEY_TYPES = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC"}

_CACHE_TTL = 300
_REFETCH_AFTER = 30
_MAX_JWKS_BYTES = 64 * 1024
_cache: dict[str, tuple[float, KeySet]] = {}
_lock = threading.Lock()


class ClientKeyError(Exception):
    """The client's keys cannot be obtained or do not verify the JWT."""


def _fetch(uri: str) -> KeySet:
    try:
        response = requests.get(uri, timeout=5, stream=True, headers={"Accept": "application/json"})
        body = response.raw.read(_MAX_JWKS_BYTES + 1, decode_content=True)
        if response.status_code != 200 or len(body) > _MAX_JWKS_BYTES:
            raise ClientKeyError(f"the client's jwks_uri answered {response.status_code}")
        return KeySet.import_key_set(json.loads(body))
    except ClientKeyError:
        raise
    except (requests.RequestException, ValueError, JoseError, TypeError) as exc:
        raise ClientKeyError("the client's jwks_uri could not be read") from exc


def client_keyset(client: ClientRecord, *, refresh: bool = False) -> KeySet:
    """The client's public keys; ``refresh`` refetches a ``jwks_uri`` not fetched very recently."""
    if client.jwks:
        try:
            return KeySet.import_key_set(client.jwks)
        except (JoseError, ValueError, TypeError) as exc:
            raise ClientKeyError("the client's registered jwks is unusable") from exc
    if not client.jwks_uri:
        raise ClientKeyError("the client has registered no keys (jwks or jwks_uri)")
    uri = client.jwks_uri
    with _lock:
        cached = _cache.get(uri)
    now = time.monotonic()
    if cached and now - cached[0] < _CACHE_TTL and not (refresh and now - cached[0] > _REFETCH_AFTER):
        return cached[1]
    keyset = _fetch(uri)
    with _lock:
        _cache[uri] = (now, keyset)
    return keyset


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


def verify_client_jwt(client: ClientRecord, value: str, allowed_algs: tuple[str, ...],
                      error: type[ProtocolError]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify a JWS signed by ``client``; returns ``(header, claims)`` or raises ``error``."""
    if not isinstance(value, str) or value.count(".") != 2 or len(value) > 16 * 1024:
        raise error("The JWT is not a compact JWS.")
    try:
        check_compact_jws(value)
    except JSONRefused as exc:
        raise error(f"The JWT is malformed: {exc}") from None
    for attempt in (0, 1):
        try:
            keyset = client_keyset(client, refresh=attempt == 1)
            token = jwt.decode(value, lambda obj, ks=keyset: _select_key(ks, obj.headers()),
                               algorithms=list(allowed_algs))
            return dict(token.header), dict(token.claims)
        except ClientKeyError as exc:
            if attempt == 1 or not client.jwks_uri:
                raise error(f"The JWT does not verify: {exc}.") from None
        except JoseError as exc:
            if attempt == 1 or not client.jwks_uri:
                raise error(f"The JWT does not verify ({exc.error}).") from None
        except (ValueError, TypeError, KeyError):
            raise error("The JWT is malformed.") from None
    raise error("The JWT does not verify.")  # pragma: no cover - the loop always returns or raises
