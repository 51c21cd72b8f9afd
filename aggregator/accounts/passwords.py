"""Password hashing with argon2id (RFC 9106), parameters from argon2-cffi's defaults.

The profile comes from ``AGGREGATOR_PASSWORD_HASHING`` of the app handling the request (the
default outside one). A hash records its own parameters, so any profile verifies any hash, and
``needs_rehash`` upgrades hashes made with a weaker profile at the next login.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, has_app_context

from config.settings import PRODUCTION_PASSWORD_HASHING

_HASHERS = {
    PRODUCTION_PASSWORD_HASHING: PasswordHasher(),  # argon2id, RFC 9106 low-memory profile
    # test suites only (production refuses it): the least argon2 allows, one pass over 8 KiB
    "argon2id-minimal": PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
}

# Verified against when the username is unknown, so both paths cost the same time.
_DUMMY_HASHES = {name: hasher.hash("not-a-real-password-for-timing") for name, hasher in _HASHERS.items()}


def _profile() -> str:
    if has_app_context():
        return current_app.config["SETTINGS"].password_hashing
    return PRODUCTION_PASSWORD_HASHING


def hash_password(password: str) -> str:
    return _HASHERS[_profile()].hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    profile = _profile()
    try:
        return (_HASHERS[profile].verify(password_hash or _DUMMY_HASHES[profile], password)
                and password_hash is not None)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _HASHERS[_profile()].check_needs_rehash(password_hash)
