"""Password hashing with argon2id (RFC 9106), parameters from argon2-cffi's defaults.

The profile comes from ``AGGREGATOR_PASSWORD_HASHING``; :class:`Passwords` is built once per
process (``services().passwords``). A hash records its own parameters, so any profile verifies
any hash, and ``needs_rehash`` upgrades hashes made with a weaker profile at the next login.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from config.settings import PRODUCTION_PASSWORD_HASHING

_HASHERS = {
    PRODUCTION_PASSWORD_HASHING: PasswordHasher(),  # argon2id, RFC 9106 low-memory profile
    # test suites only (production refuses it): the least argon2 allows, one pass over 8 KiB
    "argon2id-minimal": PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
}


class Passwords:
    """Hashing and verification under one profile."""

    def __init__(self, profile: str = PRODUCTION_PASSWORD_HASHING) -> None:
        self._hasher = _HASHERS[profile]
        # verified against when the username is unknown, so both paths cost the same time
        self._dummy = self._hasher.hash("not-a-real-password-for-timing")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
