"""DPoP (RFC 9449) for the Grapher's FAPI 2.0 mode: its own key, proofs signed with joserfc, and a
``requests`` auth hook that Authlib's ``OAuth2Session`` accepts (Authlib's client has no DPoP).

The hook composes with Authlib's client authentication: the client assertion goes in first,
then the proof. When a server asks for a nonce (RFC 9449 §8), the hook signs the request again,
with a fresh client assertion and a proof carrying that nonce, and sends it once more.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from joserfc import jws
from joserfc.jwk import ECKey

#: RFC 9449 §4.2 ``typ`` of a proof
TYP = "dpop+jwt"
_ASKS_FOR_NONCE = re.compile(r'error\s*=\s*"?use_dpop_nonce"?')


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class DPoPKey:
    """The Grapher's DPoP key pair (P-256, ES256; one per process, separate from its client
    authentication key) and the latest nonce each server handed out (§8: nonces are per server)."""

    alg = "ES256"

    def __init__(self, key: ECKey | None = None) -> None:
        self.key = key or ECKey.generate_key("P-256", private=True)
        self._nonces: dict[str, str] = {}

    @property
    def jkt(self) -> str:
        """The key's RFC 7638 SHA-256 thumbprint: what a bound token's ``cnf.jkt`` names (§6.1)."""
        return self.key.thumbprint()

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        """A fresh proof for one request (§4.2): single-use ``jti``, ``htm``, ``htu`` without query
        and fragment, ``iat``, ``ath`` with an access token (§7.1), the server's nonce if any."""
        parts = urlsplit(url)
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
            "iat": int(time.time()),
        }
        if access_token is not None:
            claims["ath"] = _b64(hashlib.sha256(access_token.encode("ascii")).digest())
        if nonce := self._nonces.get(_origin(url)):
            claims["nonce"] = nonce
        header = {"typ": TYP, "alg": self.alg, "jwk": self.key.as_dict(private=False)}
        return jws.serialize_compact(header, json.dumps(claims), self.key, algorithms=[self.alg])

    def remember_nonce(self, response: requests.Response) -> bool:
        """Keep the server's latest ``DPoP-Nonce`` (§8.2); True when it is a new one."""
        nonce = response.headers.get("DPoP-Nonce")
        origin = _origin(response.url)
        if not nonce or self._nonces.get(origin) == nonce:
            return False
        self._nonces[origin] = nonce
        return True


def asks_for_nonce(response: requests.Response) -> bool:
    """§8: ``use_dpop_nonce`` as an AS's JSON error (400) or a resource's ``WWW-Authenticate`` (401)."""
    if response.status_code == 401:
        return bool(_ASKS_FOR_NONCE.search(response.headers.get("WWW-Authenticate", "")))
    if response.status_code != 400:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("error") == "use_dpop_nonce"


def bound_to(introspection: Mapping[str, Any], key: DPoPKey | None) -> bool:
    """True when the AS says our token is bound to ``key`` (``cnf.jkt``, RFC 9449 §6.2)."""
    cnf = introspection.get("cnf")
    return key is not None and isinstance(cnf, dict) and cnf.get("jkt") == key.jkt


class DPoPAuth(requests.auth.AuthBase):
    """One request's DPoP: ``client_auth`` first (Authlib's ``private_key_jwt``), then the proof;
    with ``access_token``, also ``Authorization: DPoP <token>`` and the token's hash in the proof."""

    def __init__(self, key: DPoPKey, *, client_auth: Callable[[Any], Any] | None = None,
                 access_token: str | None = None) -> None:
        self.key = key
        self.client_auth = client_auth
        self.access_token = access_token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        unsigned = request.copy()
        self._sign(request)
        request.register_hook("response", lambda response, **kwargs: self._answer(unsigned, response,
                                                                                  **kwargs))
        return request

    def _sign(self, request: requests.PreparedRequest) -> None:
        if self.client_auth is not None:
            self.client_auth(request)
            request.prepare_content_length(request.body)
        if self.access_token is not None:
            request.headers["Authorization"] = f"DPoP {self.access_token}"
        request.headers["DPoP"] = self.key.proof(request.method or "GET", request.url or "",
                                                 self.access_token)

    def _answer(self, unsigned: requests.PreparedRequest, response: requests.Response,
                **kwargs: Any) -> requests.Response:
        """The server's nonce, kept; asked for, the request signed again and sent once more (§8)."""
        if not (self.key.remember_nonce(response) and asks_for_nonce(response)):
            return response
        _ = response.content  # read to the end, so the connection can carry the retry
        response.close()
        retry = unsigned.copy()
        self._sign(retry)
        answer = response.connection.send(retry, **kwargs)  # an adapter send: no hooks, no loop
        self.key.remember_nonce(answer)
        answer.history.append(response)
        answer.request = retry
        return answer
