"""Authorization codes (RFC 6749 §4.1.2): 256-bit, stored hashed, single use, valid 60 seconds.

A used code's record is kept a little longer than its validity so that a replay is recognised
(and everything the code issued revoked) rather than mistaken for an unknown code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aggregator.crypto import new_token, token_hash
from aggregator.store import key_names
from aggregator.store.base import Repository
from aggregator.store.grants import Pairs, pairs_from_json, pairs_json

#: RFC 6749 §4.1.2: "A maximum authorization code lifetime of 10 minutes is RECOMMENDED"; we use 60 s
CODE_TTL = 60
#: how long a code is remembered after issue, to detect replays
REPLAY_WINDOW = 3600


@dataclass(frozen=True)
class AuthorizationCode:
    code_hash: str
    client_id: str
    person_id: str
    grant_id: str
    redirect_uri: str
    scope: str
    issued_at: int
    expires_at: int
    code_challenge: str | None = None
    nonce: str | None = None
    auth_time: int | None = None
    #: the OIDC ``claims`` request (``{"id_token": {...}, "userinfo": {...}}``)
    claims: dict[str, Any] = field(default_factory=dict)
    #: whether ``max_age`` was requested (then ``auth_time`` goes into the ID token)
    max_age_requested: bool = False
    #: the (registration, data scopes) pairs its tokens may reach, as consented for this code
    pairs: dict[str, frozenset[str]] | None = None
    #: RFC 9449 §10: the key (thumbprint) whose DPoP proof alone may redeem this code
    dpop_jkt: str | None = None

    @property
    def family(self) -> str:
        """The token family id of everything this code issues."""
        return self.code_hash


@dataclass(frozen=True)
class Redemption:
    """The outcome of presenting a code: its record and whether this was the first use."""

    code: AuthorizationCode
    first_use: bool


class AuthorizationCodeRepository(Repository):
    def issue(self, *, client_id: str, person_id: str, grant_id: str, redirect_uri: str, scope: str,
              code_challenge: str | None, nonce: str | None, auth_time: int | None,
              claims: dict[str, Any], max_age_requested: bool,
              pairs: Pairs | None = None,
              dpop_jkt: str | None = None) -> tuple[str, AuthorizationCode]:
        code = new_token()
        now = self.now()
        record = AuthorizationCode(token_hash(code), client_id, person_id, grant_id, redirect_uri,
                                   scope, now, now + CODE_TTL, code_challenge, nonce, auth_time,
                                   claims, max_age_requested,
                                   dict(pairs) if pairs is not None else None, dpop_jkt)
        key = key_names.authorization_code(record.code_hash)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping={
            "client_id": client_id, "person_id": person_id, "grant_id": grant_id,
            "redirect_uri": redirect_uri, "scope": scope, "issued_at": now,
            "expires_at": record.expires_at, "code_challenge": code_challenge or "",
            "nonce": nonce or "", "auth_time": auth_time or "",
            "claims": json.dumps(claims, separators=(",", ":")),
            "max_age_requested": int(max_age_requested),
            "pairs": pairs_json(pairs),
            "dpop_jkt": dpop_jkt or "",
        })
        pipe.expire(key, REPLAY_WINDOW)
        pipe.execute()
        return code, record

    def redeem(self, code: str) -> Redemption | None:
        """Mark ``code`` used (atomically: HSETNX) and return it; None when unknown or expired.

        An expired code that was never used is just unknown; a used one is reported as a replay
        for the whole replay window, whatever its validity.
        """
        if not code or len(code) > 512:
            return None
        key = key_names.authorization_code(token_hash(code))
        data = self.decode(self.redis.hgetall(key))
        if not data:
            return None
        first_use = bool(self.redis.hsetnx(key, "used_at", self.now()))
        if first_use and int(data["expires_at"]) <= self.now():
            return None
        if not first_use:
            self.redis.hset(key, "replayed", 1)
        return Redemption(self._record(token_hash(code), data), first_use)

    def was_replayed(self, record: AuthorizationCode) -> bool:
        """Whether a replay arrived meanwhile (checked after the first use issued its tokens)."""
        return bool(self.redis.hget(key_names.authorization_code(record.code_hash), "replayed"))

    @staticmethod
    def _record(code_hash: str, data: dict[str, str]) -> AuthorizationCode:
        return AuthorizationCode(
            code_hash=code_hash,
            client_id=data["client_id"],
            person_id=data["person_id"],
            grant_id=data["grant_id"],
            redirect_uri=data["redirect_uri"],
            scope=data["scope"],
            issued_at=int(data["issued_at"]),
            expires_at=int(data["expires_at"]),
            code_challenge=data.get("code_challenge") or None,
            nonce=data.get("nonce") or None,
            auth_time=int(data["auth_time"]) if data.get("auth_time") else None,
            claims=json.loads(data.get("claims") or "{}"),
            max_age_requested=data.get("max_age_requested") == "1",
            pairs=pairs_from_json(data.get("pairs")),
            dpop_jkt=data.get("dpop_jkt") or None,
        )
