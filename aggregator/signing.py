"""Our signing keys: created on first start, published at ``/jwks``, rotatable.

One active key per algorithm we sign with (RS256, PS256, ES256). Rotation adds a new set and
retires the old one; retired keys stay published for ``RETIRED_KEY_GRACE`` seconds so tokens
and ID tokens signed with them can still be verified (RFC 7517 key rollover).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from joserfc.jwk import ECKey, KeySet, RSAKey

from aggregator.crypto import DecryptionError
from aggregator.store.signing_keys import SigningKeyRecord, SigningKeyRepository
from config import ConfigError

ALGORITHMS = ("RS256", "PS256", "ES256")
RETIRED_KEY_GRACE = 24 * 3600


def _generate(alg: str) -> SigningKeyRecord:
    kid = f"{alg.lower()}-{secrets.token_hex(6)}"
    params = {"alg": alg, "use": "sig", "kid": kid}
    if alg == "ES256":
        key = ECKey.generate_key("P-256", parameters=params, private=True)
    else:
        key = RSAKey.generate_key(2048, parameters=params, private=True)
    return SigningKeyRecord(kid, alg, key.as_dict(private=True), int(time.time()))


def generate_key_set() -> list[SigningKeyRecord]:
    """A new private key per algorithm we sign with (RSA generation makes this slow)."""
    return [_generate(alg) for alg in ALGORITHMS]


class SigningKeys:
    """Facade the provider uses: the current key per algorithm and the public JWKS."""

    def __init__(self, repository: SigningKeyRepository) -> None:
        self.repository = repository
        self._records: list[SigningKeyRecord] = []
        self._version = ""
        self._imported: dict[str, RSAKey | ECKey] = {}

    def ensure(self) -> None:
        """Create the first key set unless one exists (safe with many workers starting)."""
        try:
            if not self.repository.all():
                self.repository.add_initial(generate_key_set())
            self._reload()
        except DecryptionError:
            raise ConfigError(
                "AGGREGATOR_ENCRYPTION_KEYS: the signing keys stored in Redis cannot be decrypted "
                "with the configured key ring (a key was removed, or this Redis belongs to another "
                "installation). Restore the missing key; keep old keys in the ring after rotating."
            ) from None

    def _reload(self) -> None:
        version = self.repository.version()
        if version != self._version:
            self._records = self.repository.all()
            self._imported = {}
            self._version = version

    def _fresh(self) -> list[SigningKeyRecord]:
        self._reload()
        return self._records

    def current(self, alg: str = "RS256") -> SigningKeyRecord:
        active = [r for r in self._fresh() if r.alg == alg and r.retired_at is None]
        if not active:
            raise LookupError(f"no active signing key for {alg}")
        return active[-1]

    def private_key(self, alg: str = "RS256") -> RSAKey | ECKey:
        record = self.current(alg)
        key = self._imported.get(record.kid)
        if key is None:  # parsing a private key is costly: once per key and process
            key = self._imported[record.kid] = KeySet.import_key_set({"keys": [record.jwk]}).keys[0]
        return key

    def public_jwks(self) -> dict[str, Any]:
        now = time.time()
        published = [
            r for r in self._fresh()
            if r.retired_at is None or r.retired_at + RETIRED_KEY_GRACE > now
        ]
        keyset = KeySet.import_key_set({"keys": [r.jwk for r in published]})
        return keyset.as_dict(private=False)

    def public_keyset(self) -> KeySet:
        return KeySet.import_key_set(self.public_jwks())

    def rotate(self) -> list[str]:
        """Add a new key per algorithm, retire the old ones, drop keys past their grace."""
        now = int(time.time())
        kept = []
        for record in self.repository.all():
            if record.retired_at is None:
                record = SigningKeyRecord(record.kid, record.alg, record.jwk, record.created_at, now)
            if record.retired_at + RETIRED_KEY_GRACE > now:
                kept.append(record)
        fresh = generate_key_set()
        self.repository.replace(kept + fresh)
        self._reload()
        return [record.kid for record in fresh]
