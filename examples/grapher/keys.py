"""The Grapher's own signing key, used for ``private_key_jwt`` client authentication (RFC 7523)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

#: the algorithm a key signs with when its JWK does not say (FAPI 2.0 allows PS256, ES256, EdDSA)
_DEFAULT_ALG = {"EC": "ES256", "RSA": "PS256", "OKP": "EdDSA"}


@dataclass(frozen=True)
class ClientKey:
    """A private key with its ``kid`` and ``alg``; only :meth:`public_jwks` ever leaves the app."""

    key: ECKey | RSAKey | OKPKey
    alg: str

    @property
    def kid(self) -> str:
        return self.key.kid or ""

    @classmethod
    def generate(cls) -> ClientKey:
        """A fresh P-256 key (ES256): fine for an app that registers itself at start-up."""
        key = ECKey.generate_key("P-256", parameters={"use": "sig", "alg": "ES256"}, auto_kid=True)
        return cls(key, "ES256")

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any]) -> ClientKey:
        """The first private signing key of a JWK Set (``GRAPHER_PRIVATE_JWKS``)."""
        keys = KeySet.import_key_set(dict(jwks))
        for key in keys:
            if key.is_private and key.get("use", "sig") == "sig" and key.key_type in _DEFAULT_ALG:
                if not key.kid:
                    key.ensure_kid()
                return cls(key, key.get("alg") or _DEFAULT_ALG[key.key_type])  # type: ignore[arg-type]
        raise ValueError("GRAPHER_PRIVATE_JWKS holds no private EC, RSA or OKP signing key.")

    def public_jwks(self) -> dict[str, Any]:
        """What the AS needs to verify our assertions: the ``jwks`` registration member."""
        public = self.key.as_dict(private=False)
        public.update(kid=self.kid, use="sig", alg=self.alg)
        return {"keys": [public]}
