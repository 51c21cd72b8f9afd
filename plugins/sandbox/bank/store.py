"""Everything the sandbox bank remembers, in Redis: the only module that knows key names.

Several gunicorn workers (and threads) serve the bank at once, so no state lives in process
memory. Secrets (codes and tokens) are stored only as SHA-256 digests. Key layout::

    sandbox:code:{sha256(code)}                   hash {record, claimed}  TTL: code lifetime
    sandbox:grant:{grant_id}                      JSON GrantRecord         TTL: refresh lifetime
    sandbox:grant:{grant_id}:tokens               set of token digests     same TTL
    sandbox:token:{sha256(token)}                 hash {record, claimed}   TTL: token lifetime
    sandbox:customer:{slug}:{user_id}:grants      set of grant ids         TTL: refresh lifetime
    sandbox:payment-consent:{consent_id}          JSON PaymentConsent      TTL: consent lifetime
    sandbox:payment:{payment_id}                  JSON Payment             TTL: payment retention
    sandbox:customer:{slug}:{user_id}:payments    sorted set of payment ids (score: created_at)
    sandbox:faults                                hash of fault settings   no TTL
    sandbox:stats                                 hash of counters         no TTL

A grant is the unit of revocation: deleting ``sandbox:grant:{id}`` kills every token issued
under it (lookups check that their grant still exists), and the token keys are then cleaned up.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Self

import redis

PREFIX = "sandbox:"

# Marks a record hash as used and answers whether this caller was first, atomically, so that
# a code is redeemed once and a rotated refresh token is spent once even under concurrency.
_CLAIM_SCRIPT = """
local record = redis.call('HGET', KEYS[1], 'record')
if not record then return {-1} end
return {redis.call('HSETNX', KEYS[1], 'claimed', '1'), record}
"""


def digest(secret: str) -> str:
    """The stored form of a code or token."""
    return hashlib.sha256(secret.encode()).hexdigest()


class _Record:
    """JSON (de)serialisation shared by the record dataclasses."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, raw: str) -> Self:
        data = json.loads(raw)
        known = {field.name for field in fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class CodeRecord(_Record):
    """An issued authorization code and everything the token request is checked against."""

    grant_id: str
    institution: str
    client_id: str
    redirect_uri: str
    scope: str
    username: str
    user_id: str
    code_challenge: str
    code_challenge_method: str
    #: the payment consent this code authorizes (scope ``payments``), else empty
    consent_id: str = ""

    # The accessors Authlib's authorization-code grant calls on a stored code.
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class GrantRecord(_Record):
    """What one customer authorized one client to do at one institution."""

    grant_id: str
    institution: str
    client_id: str
    username: str
    user_id: str
    scope: str
    created_at: int
    consent_id: str = ""


@dataclass(frozen=True)
class PaymentConsent(_Record):
    """A payment the client asked to make, until the customer authorizes it and it is made.

    ``status``: ``awaiting_authorization`` -> ``authorised`` (by the customer, from an account)
    -> ``consumed`` (the payment was made); or ``rejected`` when the customer denies it.
    """

    consent_id: str
    institution: str
    client_id: str
    amount: int  # minor units
    currency: str
    creditor_name: str
    sort_code: str
    account_number: str
    reference: str
    debtor_reference: str | None
    status: str
    created_at: int
    user_id: str = ""
    username: str = ""
    account_id: str = ""


@dataclass(frozen=True)
class Payment(_Record):
    """A payment made from a customer's account; pending until it settles."""

    id: str
    consent_id: str
    institution: str
    client_id: str
    user_id: str
    account_id: str
    amount: int  # minor units, paid out of the account
    currency: str
    creditor_name: str
    reference: str
    status: str  # "pending", "completed" (settled) or "rejected"
    created_at: int


@dataclass(frozen=True)
class TokenRecord(_Record):
    """An access or refresh token issued under a grant (the token itself is never stored)."""

    kind: str  # "access_token" or "refresh_token"
    grant_id: str
    institution: str
    client_id: str
    username: str
    user_id: str
    scope: str
    issued_at: int
    expires_at: int
    token_digest: str = ""
    claimed: bool = False  # a refresh token that has been rotated away

    @classmethod
    def issue(cls, grant: GrantRecord, kind: str, scope: str, ttl: int) -> TokenRecord:
        """The record of a token issued now under ``grant``."""
        now = int(time.time())
        return cls(
            kind=kind,
            grant_id=grant.grant_id,
            institution=grant.institution,
            client_id=grant.client_id,
            username=grant.username,
            user_id=grant.user_id,
            scope=scope,
            issued_at=now,
            expires_at=now + ttl,
        )

    # The accessors Authlib's refresh-token grant and revocation endpoint call on a token.
    def check_client(self, client: Any) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def to_json(self) -> str:
        # The digest is the key and "claimed" a separate hash field, so neither is duplicated.
        data = asdict(self)
        del data["token_digest"], data["claimed"]
        return json.dumps(data, separators=(",", ":"))


@dataclass(frozen=True)
class Faults:
    """Server-wide fault settings for tests and benchmarks (development only)."""

    latency_ms: int = 0
    failure_rate: float = 0.0
    rotate_refresh_tokens: bool = True
    access_token_ttl: int = 300


class BankStore:
    """Repository for codes, grants, tokens, fault settings and counters."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._claim = client.register_script(_CLAIM_SCRIPT)

    # -- authorization codes ------------------------------------------------------------------

    def save_code(self, code: str, record: CodeRecord, ttl: int) -> None:
        key = f"{PREFIX}code:{digest(code)}"
        with self.redis.pipeline() as pipe:  # MULTI: never a code without its expiry
            pipe.hset(key, "record", record.to_json())
            pipe.expire(key, ttl)
            pipe.execute()

    def consume_code(self, code: str) -> tuple[CodeRecord, bool] | None:
        """The code's record and whether this is its first redemption; None if unknown/expired."""
        reply = self._claim(keys=[f"{PREFIX}code:{digest(code)}"])
        if reply[0] == -1:
            return None
        return CodeRecord.from_json(reply[1]), reply[0] == 1

    # -- grants -------------------------------------------------------------------------------

    def create_grant(self, grant: GrantRecord, ttl: int) -> None:
        index = self._customer_key(grant.institution, grant.user_id)
        with self.redis.pipeline() as pipe:
            pipe.set(self._grant_key(grant.grant_id), grant.to_json(), ex=ttl)
            pipe.sadd(index, grant.grant_id)
            pipe.expire(index, ttl)  # the newest grant is always the longest-lived
            pipe.execute()

    def get_grant(self, grant_id: str) -> GrantRecord | None:
        raw = self.redis.get(self._grant_key(grant_id))
        return GrantRecord.from_json(raw) if raw else None

    def revoke_grant(self, grant_id: str) -> bool:
        """Revoke a grant and every token issued under it; False if it was already gone."""
        grant = self.get_grant(grant_id)
        tokens_key = f"{self._grant_key(grant_id)}:tokens"
        token_keys = [f"{PREFIX}token:{d}" for d in self.redis.smembers(tokens_key)]
        with self.redis.pipeline() as pipe:
            # Deleting the grant key is what revokes (see the module docstring); the rest is
            # clean-up, so a token saved concurrently is dead even if its key lingers.
            pipe.delete(self._grant_key(grant_id), tokens_key, *token_keys)
            if grant:
                pipe.srem(self._customer_key(grant.institution, grant.user_id), grant_id)
            pipe.execute()
        return grant is not None

    def revoke_customer(self, institution: str, user_id: str) -> int:
        """Revoke all grants of one customer at one institution; answers how many."""
        index = self._customer_key(institution, user_id)
        return sum(self.revoke_grant(grant_id) for grant_id in self.redis.smembers(index))

    # -- tokens -------------------------------------------------------------------------------

    def save_tokens(
        self, grant: GrantRecord, tokens: Iterable[tuple[str, TokenRecord]], renew_ttl: int | None
    ) -> bool:
        """Store tokens under a live grant; False (nothing written) if the grant was revoked.

        ``renew_ttl`` extends the grant's life when a new refresh token outlives it.
        """
        grant_key = self._grant_key(grant.grant_id)
        tokens_key = f"{grant_key}:tokens"
        now = int(time.time())
        entries = [(digest(token), record) for token, record in tokens]

        def write(pipe: redis.client.Pipeline) -> bool:
            grant_ttl = pipe.ttl(grant_key)  # immediate: the pipeline is WATCHing, not queuing
            if grant_ttl == -2:
                return False
            pipe.multi()
            for token_digest, record in entries:
                key = f"{PREFIX}token:{token_digest}"
                pipe.hset(key, "record", record.to_json())
                pipe.expire(key, max(1, record.expires_at - now))
                pipe.sadd(tokens_key, token_digest)
            if renew_ttl:
                pipe.expire(grant_key, renew_ttl)
                pipe.expire(self._customer_key(grant.institution, grant.user_id), renew_ttl)
            if renew_ttl or grant_ttl > 0:
                pipe.expire(tokens_key, renew_ttl or grant_ttl)
            return True

        # WATCH the grant: a revocation racing this write makes it retry and see the grant gone.
        return self.redis.transaction(write, grant_key, value_from_callable=True)

    def find_token(self, token: str) -> TokenRecord | None:
        """The live token record for ``token``: unexpired and under a grant not revoked."""
        token_digest = digest(token)
        stored = self.redis.hgetall(f"{PREFIX}token:{token_digest}")
        if "record" not in stored:
            return None
        record = replace(
            TokenRecord.from_json(stored["record"]),
            token_digest=token_digest,
            claimed=stored.get("claimed") == "1",
        )
        if record.expires_at <= time.time() or not self.redis.exists(
            self._grant_key(record.grant_id)
        ):
            return None
        return record

    def claim_refresh_token(self, record: TokenRecord) -> bool:
        """Spend a refresh token for rotation; False if it had already been spent (reuse)."""
        reply = self._claim(keys=[f"{PREFIX}token:{record.token_digest}"])
        return reply[0] == 1

    def delete_token(self, record: TokenRecord) -> None:
        with self.redis.pipeline() as pipe:
            pipe.delete(f"{PREFIX}token:{record.token_digest}")
            pipe.srem(f"{self._grant_key(record.grant_id)}:tokens", record.token_digest)
            pipe.execute()

    # -- payments -----------------------------------------------------------------------------

    def save_consent(self, consent: PaymentConsent, ttl: int) -> None:
        self.redis.set(self._consent_key(consent.consent_id), consent.to_json(), ex=ttl)

    def get_consent(self, consent_id: str) -> PaymentConsent | None:
        raw = self.redis.get(self._consent_key(consent_id))
        return PaymentConsent.from_json(raw) if raw else None

    def move_consent(self, consent_id: str, expected: str, **changes: Any) -> PaymentConsent | None:
        """Move a consent on from status ``expected``, atomically; None when it is not there
        (so of two concurrent authorizations or payments exactly one wins)."""
        key = self._consent_key(consent_id)

        def write(pipe: redis.client.Pipeline) -> PaymentConsent | None:
            raw = pipe.get(key)
            current = PaymentConsent.from_json(raw) if raw else None
            if current is None or current.status != expected:
                return None
            moved = replace(current, **changes)
            pipe.multi()
            pipe.set(key, moved.to_json(), keepttl=True)
            return moved

        return self.redis.transaction(write, key, value_from_callable=True)

    def save_payment(self, payment: Payment, ttl: int) -> None:
        index = self._customer_payments_key(payment.institution, payment.user_id)
        with self.redis.pipeline() as pipe:
            pipe.set(f"{PREFIX}payment:{payment.id}", payment.to_json(), ex=ttl)
            pipe.zadd(index, {payment.id: payment.created_at})
            pipe.zremrangebyscore(index, "-inf", f"({payment.created_at - ttl}")
            pipe.expire(index, ttl)
            pipe.hincrby(f"{PREFIX}stats", "payments", 1)
            pipe.execute()

    def get_payment(self, payment_id: str) -> Payment | None:
        raw = self.redis.get(f"{PREFIX}payment:{payment_id}")
        return Payment.from_json(raw) if raw else None

    def customer_payments(self, institution: str, user_id: str) -> list[Payment]:
        ids = self.redis.zrange(self._customer_payments_key(institution, user_id), 0, -1)
        found = (self.get_payment(payment_id) for payment_id in ids)
        return [payment for payment in found if payment is not None]

    def count_payment_consent(self) -> None:
        self.redis.hincrby(f"{PREFIX}stats", "payment_consents", 1)

    # -- fault settings -----------------------------------------------------------------------

    def load_faults(self) -> Faults:
        stored = self.redis.hgetall(f"{PREFIX}faults")
        defaults = Faults()
        return Faults(
            latency_ms=int(stored.get("latency_ms", defaults.latency_ms)),
            failure_rate=float(stored.get("failure_rate", defaults.failure_rate)),
            rotate_refresh_tokens=stored.get(
                "rotate_refresh_tokens", str(int(defaults.rotate_refresh_tokens))
            )
            == "1",
            access_token_ttl=int(stored.get("access_token_ttl", defaults.access_token_ttl)),
        )

    def update_faults(self, changes: dict[str, Any]) -> Faults:
        """Apply validated changes (any subset of :class:`Faults` fields); answers the result."""
        if changes:
            encoded = {
                name: str(int(value)) if isinstance(value, bool) else str(value)
                for name, value in changes.items()
            }
            self.redis.hset(f"{PREFIX}faults", mapping=encoded)
        return self.load_faults()

    # -- counters -----------------------------------------------------------------------------

    def count_token_request(self, institution: str, grant_type: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.hsetnx(f"{PREFIX}stats", "since", int(time.time()))
            pipe.hincrby(f"{PREFIX}stats", "total", 1)
            pipe.hincrby(f"{PREFIX}stats", f"grant_type:{grant_type}", 1)
            pipe.hincrby(f"{PREFIX}stats", f"institution:{institution}:{grant_type}", 1)
            pipe.execute()

    def count_injected_failure(self) -> None:
        self.redis.hincrby(f"{PREFIX}stats", "injected_failures", 1)

    def stats(self) -> dict[str, Any]:
        """Token requests since the last reset, by grant type and by institution."""
        stored = self.redis.hgetall(f"{PREFIX}stats")
        by_grant_type: dict[str, int] = {}
        by_institution: dict[str, dict[str, int]] = {}
        for name, value in stored.items():
            kind, _, rest = name.partition(":")
            if kind == "grant_type":
                by_grant_type[rest] = int(value)
            elif kind == "institution":
                slug, _, grant_type = rest.partition(":")
                by_institution.setdefault(slug, {})[grant_type] = int(value)
        since = stored.get("since")
        return {
            "since": int(since) if since else None,
            "token_requests": {
                "total": int(stored.get("total", 0)),
                "by_grant_type": by_grant_type,
                "by_institution": by_institution,
            },
            "injected_failures": int(stored.get("injected_failures", 0)),
            "payment_consents": int(stored.get("payment_consents", 0)),
            "payments": int(stored.get("payments", 0)),
        }

    def reset(self) -> None:
        """Forget fault settings and counters (grants and tokens stay)."""
        self.redis.delete(f"{PREFIX}faults", f"{PREFIX}stats")

    # -- key names ----------------------------------------------------------------------------

    @staticmethod
    def _grant_key(grant_id: str) -> str:
        return f"{PREFIX}grant:{grant_id}"

    @staticmethod
    def _consent_key(consent_id: str) -> str:
        return f"{PREFIX}payment-consent:{consent_id}"

    @staticmethod
    def _customer_payments_key(institution: str, user_id: str) -> str:
        return f"{PREFIX}customer:{institution}:{user_id}:payments"

    @staticmethod
    def _customer_key(institution: str, user_id: str) -> str:
        return f"{PREFIX}customer:{institution}:{user_id}:grants"
