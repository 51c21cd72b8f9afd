"""A plugin's own signing keys, as an upstream's client: pick one from a private JWKS, or
generate a key pair, and read a private JWKS from configuration (:class:`JWKSField`).

Upstreams (Moneyhub, any OpenID Provider using ``private_key_jwt`` or signed request objects)
hold the public JWKS; our configuration holds the private one. RS*, PS* and ES* are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey, import_key
from marshmallow import ValidationError, fields

from config import json_setting

RSA_ALGS: tuple[str, ...] = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGS: dict[str, str] = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
SIGNING_ALGS: tuple[str, ...] = (*RSA_ALGS, *EC_ALGS)


class InvalidSigningKey(ValueError):
    """A private JWKS that cannot sign (the message names the problem)."""


@dataclass(frozen=True)
class SigningKey:
    """The key that signs request objects and client assertions, with its ``alg`` and ``kid``."""

    key: RSAKey | ECKey
    alg: str

    @property
    def kid(self) -> str | None:
        return self.key.kid


def signing_key(private_jwks: dict[str, Any]) -> SigningKey:
    """The first signing key of ``private_jwks`` (``use`` absent or ``sig``, private part present).

    Its ``alg`` is the key's own ``alg`` member, else RS256 for RSA (Moneyhub's documented default) and
    ES256/384/512 by curve for EC.
    """
    entries = private_jwks.get("keys") if isinstance(private_jwks, dict) else None
    if not isinstance(entries, list):
        raise InvalidSigningKey('not a JWKS (an object with a "keys" array)')
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use") not in (None, "sig"):
            continue
        if entry.get("kty") not in ("RSA", "EC"):
            continue
        try:
            key = import_key(entry)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise InvalidSigningKey(f"key {entry.get('kid')!r} is not valid ({exc})") from None
        if not key.is_private:
            continue
        alg = entry.get("alg") or _default_alg(key)  # type: ignore[arg-type]
        if alg not in SIGNING_ALGS:
            raise InvalidSigningKey(f"key {entry.get('kid')!r} has alg {alg!r}; use RS*, PS* or ES*")
        if (alg in RSA_ALGS) != isinstance(key, RSAKey) or (
            isinstance(key, ECKey) and EC_ALGS[alg] != key.curve_name
        ):
            raise InvalidSigningKey(f"key {entry.get('kid')!r} cannot sign with {alg}")
        # joserfc would invent a thumbprint kid, but upstreams find our key by the kid we
        # registered with them, so the JWKS itself must carry one
        if not entry.get("kid"):
            raise InvalidSigningKey("the signing key needs a kid (the upstream picks your key by it)")
        return SigningKey(key, alg)  # type: ignore[arg-type]
    raise InvalidSigningKey("no private RSA or EC signing key in the JWKS")


def _default_alg(key: RSAKey | ECKey) -> str:
    if isinstance(key, RSAKey):
        return "RS256"
    return {curve: alg for alg, curve in EC_ALGS.items()}.get(key.curve_name, "")


def generate_jwks(alg: str = "PS256", rsa_bits: int = 2048) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new key pair as ``(public_jwks, private_jwks)``; ``kid`` is the RFC 7638 thumbprint."""
    if alg not in SIGNING_ALGS:
        raise ValueError(f"alg must be one of {', '.join(SIGNING_ALGS)}")
    params = {"use": "sig", "alg": alg}
    key: RSAKey | ECKey
    if alg in EC_ALGS:
        key = ECKey.generate_key(EC_ALGS[alg], parameters=params, auto_kid=True)
    else:
        if rsa_bits < 2048:
            raise ValueError("RSA keys must have at least 2048 bits")
        key = RSAKey.generate_key(rsa_bits, parameters=params, auto_kid=True)
    keys = KeySet([key])
    return keys.as_dict(private=False), keys.as_dict(private=True)


class JWKSField(fields.Field):
    """A private JWKS given inline as JSON, or as ``@/path/to/file.json``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict:
        parsed = json_setting(value)
        if not isinstance(parsed, dict) or not isinstance(parsed.get("keys"), list):
            raise ValidationError('A JWKS is an object with a "keys" array.')
        try:
            signing_key(parsed)
        except InvalidSigningKey as exc:
            raise ValidationError(str(exc)) from None
        return parsed
