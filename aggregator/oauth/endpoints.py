"""Where each of the provider's endpoints lives (RFC 8414 metadata names)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoints:
    """The endpoint URLs under one issuer."""

    issuer: str

    @property
    def authorization(self) -> str:
        return f"{self.issuer}/authorize"

    @property
    def token(self) -> str:
        return f"{self.issuer}/token"

    @property
    def par(self) -> str:
        return f"{self.issuer}/par"

    @property
    def introspection(self) -> str:
        return f"{self.issuer}/introspect"

    @property
    def revocation(self) -> str:
        return f"{self.issuer}/revoke"

    @property
    def registration(self) -> str:
        return f"{self.issuer}/register"

    def client_configuration(self, client_id: str) -> str:
        """RFC 7592 ``registration_client_uri``."""
        return f"{self.issuer}/register/{client_id}"

    @property
    def jwks(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def userinfo(self) -> str:
        return f"{self.issuer}/userinfo"

    @property
    def grant_management(self) -> str:
        return f"{self.issuer}/grants"

    def grant(self, grant_id: str) -> str:
        return f"{self.grant_management}/{grant_id}"

    def payment(self, payment_id: str) -> str:
        """``GET`` a payment made to the app (``payments`` scope)."""
        return f"{self.issuer}/payments/{payment_id}"
