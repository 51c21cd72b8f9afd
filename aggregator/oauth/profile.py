"""The server profile ``AGGREGATOR_PROFILE`` selects: every rule it changes, in one place.

``default`` is the provider as documented. ``fapi2`` applies the FAPI 2.0 Security Profile
(final) to every client; the endpoints ask :func:`rules` what holds rather than testing the
profile's name:

=========================================  ============================================
rule under ``fapi2``                       FAPI 2.0 Security Profile
=========================================  ============================================
pushed authorization requests only         §5.3.2.2 (RFC 9126 §5)
``redirect_uri`` in every pushed request   §5.3.2.2
PKCE with S256 (every profile already)     §5.3.2.2
confidential clients, ``private_key_jwt``  §5.3.2.1 (confidential clients only;
                                           private_key_jwt or mTLS, we have no mTLS)
client assertion ``aud``: the issuer,      §5.3.2.1
as a string
sender-constrained (DPoP) access tokens    §5.3.2.1 (RFC 9449)
at every token request
no refresh token rotation                  §5.3.2.1 (a lost response must not cost
                                           the grant)
response type ``code`` only                §5.3.2.2
PS256 and ES256 only, for every JWS        §5.4.1 (ours too: ID tokens, signed
                                           introspection responses)
``iss`` in every authorization response    §5.3.2.2 (RFC 9207; every profile already)
code lifetime at most 60 seconds           §5.3.2.1 (every profile already: CODE_TTL)
=========================================  ============================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from aggregator.errors import InvalidClient, InvalidClientMetadata, InvalidRequest, UnsupportedResponseType
from aggregator.store.clients import ClientRecord
from config.settings import Settings

#: FAPI 2.0 Security Profile §5.4.1 (EdDSA is allowed too; we have no Ed25519 keys)
FAPI2_ALGS = ("PS256", "ES256")
_SIGNED_METADATA = ("token_endpoint_auth_signing_alg", "request_object_signing_alg",
                    "id_token_signed_response_alg")


@dataclass(frozen=True)
class Profile:
    """What a profile requires and permits; ``None`` permits everything the server implements."""

    name: str
    require_par: bool = False
    require_dpop: bool = False
    #: the only client authentication methods (registration and authentication alike)
    auth_methods: tuple[str, ...] | None = None
    #: the only JWS algorithms: ID tokens, client assertions, request objects, DPoP proofs
    algs: tuple[str, ...] | None = None
    response_types: tuple[str, ...] | None = None
    response_modes: tuple[str, ...] | None = None
    #: a client assertion's ``aud`` is the issuer identifier as a string, nothing else
    issuer_audience_only: bool = False
    rotate_refresh_tokens: bool = True
    #: an authorization request names its redirect URI even when only one is registered
    require_redirect_uri: bool = False

    # ------------------------------------------------------------------ what discovery lists

    def narrowed(self, implemented: Iterable[str], allowed: tuple[str, ...] | None) -> list[str]:
        """The implemented values this profile allows, in the implemented order."""
        return [value for value in implemented if allowed is None or value in allowed]

    def auth_methods_of(self, implemented: Iterable[str]) -> list[str]:
        return self.narrowed(implemented, self.auth_methods)

    def algs_of(self, implemented: Iterable[str]) -> tuple[str, ...]:
        return tuple(self.narrowed(implemented, self.algs))

    def response_types_of(self, implemented: Iterable[str]) -> list[str]:
        return self.narrowed(implemented, self.response_types)

    def response_modes_of(self, implemented: Iterable[str]) -> list[str]:
        return self.narrowed(implemented, self.response_modes)

    # ------------------------------------------------------------------ what the endpoints check

    def par_required(self, client: ClientRecord) -> bool:
        """RFC 9126 §5 (and §6 for the client's own ``require_pushed_authorization_requests``)."""
        return self.require_par or client.require_pushed_authorization_requests

    def dpop_requirement(self, client: ClientRecord) -> str | None:
        """Why this client must send a DPoP proof with a token request, or None."""
        if self.require_dpop:
            return "FAPI 2.0 Security Profile: sender-constrained tokens only"
        if client.dpop_bound_access_tokens:
            return "dpop_bound_access_tokens"  # RFC 9449 §5.2
        return None

    def check_client(self, client: ClientRecord) -> None:
        """A client registered before the profile changed may hold a method it no longer allows."""
        method = client.token_endpoint_auth_method
        if self.auth_methods is not None and method not in self.auth_methods:
            raise InvalidClient(f"This server follows the FAPI 2.0 Security Profile: clients authenticate "
                                f"with {' or '.join(self.auth_methods)}, and this client is registered "
                                f"with {method}. Update its registration (RFC 7592) with its public keys.")

    def check_request(self, params: Mapping[str, str]) -> None:
        """An authorization request's redirect URI, response type and mode (at ``/par`` and at
        ``/authorize``, where under fapi2 every request was pushed)."""
        if self.require_redirect_uri and not params.get("redirect_uri"):
            raise InvalidRequest("redirect_uri is required (FAPI 2.0 Security Profile).")
        response_type = params.get("response_type")
        if self.response_types is not None and response_type and response_type not in self.response_types:
            raise UnsupportedResponseType(f"response_type {response_type!r} is not supported: only "
                                          f"{', '.join(self.response_types)} (FAPI 2.0 Security Profile).")
        mode = params.get("response_mode")
        if self.response_modes is not None and mode and mode not in self.response_modes:
            raise InvalidRequest(f"response_mode {mode!r} is not supported: only "
                                 f"{', '.join(self.response_modes)}.")

    def audience_accepted(self, audience: Any, issuer: str, endpoints: Iterable[str]) -> bool:
        """A client assertion's ``aud`` (RFC 7523 §3 item 3): the issuer, the token endpoint or
        the endpoint called; under ``issuer_audience_only`` the issuer as a string, and only it."""
        if self.issuer_audience_only:
            return audience == issuer
        audiences = [audience] if isinstance(audience, str) else audience
        return isinstance(audiences, list) and bool(
            {issuer, *endpoints}.intersection(a for a in audiences if isinstance(a, str)))

    @property
    def audience_rule(self) -> str:
        if self.issuer_audience_only:
            return "The assertion's aud must be the issuer identifier, as a string (FAPI 2.0)."
        return "The assertion's aud must be the issuer or this endpoint."

    def client_algs(self, registered: str | None, implemented: tuple[str, ...]) -> tuple[str, ...]:
        """What a client's JWT may be signed with: its registered alg, else any we accept; one
        the profile forbids (registered before the profile changed) gives way to the profile's."""
        return self.algs_of((registered,) if registered else ()) or self.algs_of(implemented)

    def signing_alg(self, preferred: str) -> str:
        """What the AS signs with where it would use ``preferred`` (a client's registered ID token
        alg, RS256 for introspection responses): one the profile forbids (registered before the
        profile changed, say) gives way to the profile's first, which is what discovery lists."""
        if self.algs is None or preferred in self.algs:
            return preferred
        return self.algs[0]

    def check_metadata(self, document: Mapping[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
        """Registration (RFC 7591 §3.2.2 ``invalid_client_metadata``) of what the profile forbids;
        a default the profile forbids (RS256 ID tokens) becomes the profile's own."""
        method = metadata["token_endpoint_auth_method"]
        if self.auth_methods is not None and method not in self.auth_methods:
            raise InvalidClientMetadata(f"token_endpoint_auth_method: this server follows the FAPI 2.0 "
                                        f"Security Profile; register {' or '.join(self.auth_methods)}.")
        outside = [kind for kind in metadata["response_types"]
                   if self.response_types is not None and kind not in self.response_types]
        if outside:
            raise InvalidClientMetadata(f"response_types: only {', '.join(self.response_types or ())}.")
        if self.algs is None:
            return metadata
        chosen = dict(metadata)
        for name in _SIGNED_METADATA:
            value = chosen.get(name)
            if value is None or value in self.algs:
                continue
            if name in document:
                raise InvalidClientMetadata(f"{name}: only {', '.join(self.algs)} (FAPI 2.0 §5.4.1).")
            chosen[name] = self.algs[0]
        return chosen


DEFAULT = Profile("default")

FAPI2 = Profile(
    "fapi2",
    require_par=True,
    require_dpop=True,
    auth_methods=("private_key_jwt",),
    algs=FAPI2_ALGS,
    response_types=("code",),
    # the fragment serves responses carrying tokens (``code id_token``), which fapi2 has not
    response_modes=("query", "form_post"),
    issuer_audience_only=True,
    rotate_refresh_tokens=False,
    require_redirect_uri=True,
)


def rules(settings: Settings) -> Profile:
    """The profile these settings select (``AGGREGATOR_REQUIRE_PAR`` adds PAR to the default)."""
    if settings.profile == FAPI2.name:
        return FAPI2
    return replace(DEFAULT, require_par=settings.require_par)
