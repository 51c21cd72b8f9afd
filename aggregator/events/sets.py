"""Security Event Tokens (RFC 8417) as SSF 1.0 §4 profiles them, signed with the AS's keys.

Header ``typ: secevent+jwt`` (RFC 8417 §2.3), RS256 with the ``kid`` published at ``jwks_uri``.
Claims: ``iss``, ``aud`` (the app's client id), ``iat``, ``jti``, ``txn`` (the same for every SET
one change caused), ``sub_id`` (SSF 1.0 §4.1.1: the subject, outside the event) and ``events``
with exactly one event. No ``exp`` and no ``sub`` (RFC 8417 §2.2, SSF 1.0 §4.1.5).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from joserfc import jwt

from aggregator.oauth.id_token import pairwise_subject
from aggregator.services import Services
from aggregator.store.clients import ClientRecord

ALG = "RS256"
TYP = "secevent+jwt"


def subject(svc: Services, client: ClientRecord, person_id: str, grant_id: str) -> dict[str, Any]:
    """SSF 1.0 §3.2 complex subject: the person as the app knows them (its pairwise ``sub``,
    OIDC Core §8.1) and the grant as a ``session`` with the ``grant_id`` the app holds."""
    return {
        "format": "complex",
        "user": {"format": "iss_sub", "iss": svc.issuer, "sub": pairwise_subject(client, person_id)},
        "session": {"format": "opaque", "id": grant_id},
    }


def stable_jti(*parts: str) -> str:
    """The same jti whenever the same fact is made into a SET for the same app, so a fact
    relayed twice is one event to a receiver that de-duplicates by ``jti``."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def sign_set(svc: Services, *, audience: str, jti: str, sub_id: dict[str, Any], event_type: str,
             payload: dict[str, Any], txn: str | None = None) -> str:
    claims: dict[str, Any] = {"iss": svc.issuer, "aud": audience, "iat": int(time.time()),
                              "jti": jti, "sub_id": sub_id, "events": {event_type: payload}}
    if txn:
        claims["txn"] = txn
    header = {"alg": ALG, "kid": svc.signing_keys.current(ALG).kid, "typ": TYP}
    return jwt.encode(header, claims, svc.signing_keys.private_key(ALG), algorithms=[ALG])
