"""Secrets at rest: the AES-256-GCM key ring, token generation and token hashing.

Upstream tokens are encrypted (they must be usable later); our own tokens, codes and client
secrets are only ever stored as SHA-256 digests (we only need to recognise them). Our tokens
carry 256 bits of randomness, so an unsalted fast hash is the right tool: there is nothing to
brute-force (unlike passwords, which use argon2id in ``accounts.passwords``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random token (256 bits by default)."""
    return secrets.token_urlsafe(nbytes)


def token_hash(token: str) -> str:
    """The SHA-256 digest under which a token, code or client secret is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def constant_time_equals(left: str | bytes, right: str | bytes) -> bool:
    """Compare secrets without leaking where they differ."""
    a = left.encode() if isinstance(left, str) else left
    b = right.encode() if isinstance(right, str) else right
    return hmac.compare_digest(a, b)


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class DecryptionError(Exception):
    """A ciphertext is corrupt, was moved to another record, or its key is gone."""


class KeyRing:
    """AES-256-GCM keys by id; the first key encrypts, every key decrypts.

    Ciphertext layout: ``v1.<kid>.<base64url(nonce || ciphertext+tag)>``. The key id travels in
    every ciphertext so keys can be rotated without re-encrypting everything at once. Callers
    pass ``aad`` (the record's identity) so a ciphertext copied onto another record fails.
    """

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        for kid, key in keys:
            if len(key) != 32:
                raise ValueError(f"encryption key {kid!r} must be 32 bytes (AES-256)")
            if not kid or "." in kid:
                raise ValueError("encryption key ids must be non-empty and contain no '.'")
        self._keys = dict(keys)
        self.primary = keys[0][0]

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """Parse ``kid:base64url-key[,kid:base64url-key...]`` (first = primary)."""
        pairs = []
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            kid, sep, encoded = item.partition(":")
            if not sep:
                raise ValueError("expected kid:base64url-key items separated by commas")
            try:
                key = _b64d(encoded)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"encryption key {kid!r} is not base64url") from exc
            pairs.append((kid, key))
        return cls(pairs)

    def serialize(self) -> str:
        ordered = [self.primary] + [kid for kid in self._keys if kid != self.primary]
        return ",".join(f"{kid}:{_b64e(self._keys[kid])}" for kid in ordered)

    @staticmethod
    def new_key_item() -> str:
        """A fresh ``kid:key`` item for an operator's ``AGGREGATOR_ENCRYPTION_KEYS``."""
        return f"k{secrets.token_hex(4)}:{_b64e(AESGCM.generate_key(bit_length=256))}"

    def rotated(self) -> KeyRing:
        """A ring with a new primary key; old keys stay for decryption."""
        kid, _, encoded = self.new_key_item().partition(":")
        return KeyRing([(kid, _b64d(encoded)), *self._keys.items()])

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def encrypt(self, plaintext: bytes, aad: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self._keys[self.primary]).encrypt(nonce, plaintext, aad.encode())
        return f"{_VERSION}.{self.primary}.{_b64e(nonce + sealed)}"

    def decrypt(self, token: str, aad: str) -> bytes:
        try:
            version, kid, body = token.split(".", 2)
            key = self._keys[kid]
            raw = _b64d(body)
            if version != _VERSION:
                raise ValueError(version)
            return AESGCM(key).decrypt(raw[:12], raw[12:], aad.encode())
        except Exception as exc:  # any failure means "cannot trust this ciphertext"
            raise DecryptionError("cannot decrypt a stored secret") from exc

    def encrypt_json(self, value: Any, aad: str) -> str:
        return self.encrypt(json.dumps(value, separators=(",", ":")).encode(), aad)

    def decrypt_json(self, token: str, aad: str) -> Any:
        return json.loads(self.decrypt(token, aad))

    def needs_reencryption(self, token: str) -> bool:
        return not token.startswith(f"{_VERSION}.{self.primary}.")


def load_key_ring(configured: str | None, data_dir: Path) -> KeyRing:
    """The configured ring, or (development) one kept in ``data_dir/encryption-keys``."""
    if configured:
        return KeyRing.parse(configured)
    path = data_dir / "encryption-keys"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = data_dir / f".encryption-keys.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(KeyRing.new_key_item())
        try:
            os.link(tmp, path)  # atomic create-if-absent: concurrent workers agree on one key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return KeyRing.parse(path.read_text())


def save_dev_key_ring(ring: KeyRing, data_dir: Path) -> None:
    """Replace the development key ring file atomically."""
    path = data_dir / "encryption-keys"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(ring.serialize())
    os.replace(tmp, path)
