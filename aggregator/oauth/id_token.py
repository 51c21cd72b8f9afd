"""ID tokens (OIDC Core §2) and pairwise subject identifiers (OIDC Core §8.1).

Signed with our current key for the client's ``id_token_signed_response_alg`` (RS256 unless it
registered ES256 or PS256; the server profile may narrow that, :mod:`.profile`). ``at_hash``,
``c_hash`` and ``s_hash`` are the left half of the hash of the value, with the hash of the
signing algorithm (§3.3.2.11, FAPI 1 §5.2.2.1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from authlib.oidc.core.util import create_half_hash
from joserfc import jwt

from aggregator.oauth.claims import requested
from aggregator.oauth.profile import rules
from aggregator.services import Services
from aggregator.store.clients import ClientRecord


def pairwise_subject(client: ClientRecord, person_id: str) -> str:
    """The person's ``sub`` at this client: HMAC of the person id under the client's own salt."""
    digest = hmac.new(client.subject_salt.encode(), person_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def half_hash(value: str, alg: str) -> str:
    return create_half_hash(value, alg).decode()


def person_claims(svc: Services, person_id: str, claims: dict[str, dict[str, Any]],
                  target: str) -> dict[str, Any]:
    """The person-describing claims requested for ``target`` (``id_token`` or ``userinfo``)."""
    found: dict[str, Any] = {}
    if requested(claims, target, "preferred_username"):
        person = svc.store.people.get(person_id)
        if person is not None:
            found["preferred_username"] = person.username
    return found


def issue_id_token(svc: Services, client: ClientRecord, *, person_id: str, nonce: str | None,
                   auth_time: int | None, include_auth_time: bool,
                   claims: dict[str, dict[str, Any]] | None = None, access_token: str | None = None,
                   code: str | None = None, state: str | None = None) -> str:
    """Sign an ID token for ``client`` about ``person_id``."""
    alg = rules(svc.settings).signing_alg(client.id_token_signed_response_alg)
    key = svc.signing_keys.current(alg)
    now = int(time.time())
    claims = claims or {}
    payload: dict[str, Any] = {
        "iss": svc.issuer,
        "sub": pairwise_subject(client, person_id),
        "aud": client.client_id,
        "iat": now,
        "exp": now + svc.settings.access_token_ttl,
    }
    if nonce:
        payload["nonce"] = nonce
    if auth_time and (include_auth_time or requested(claims, "id_token", "auth_time")):
        payload["auth_time"] = auth_time  # §2: REQUIRED when max_age was requested
    if access_token:
        payload["at_hash"] = half_hash(access_token, alg)
    if code:
        payload["c_hash"] = half_hash(code, alg)
    if state:
        payload["s_hash"] = half_hash(state, alg)
    payload.update(person_claims(svc, person_id, claims, "id_token"))
    header = {"alg": alg, "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, payload, svc.signing_keys.private_key(alg), algorithms=[alg])
