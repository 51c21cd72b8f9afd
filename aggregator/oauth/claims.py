"""The OpenID Connect ``claims`` request parameter (OIDC Core §5.5).

``{"userinfo": {"preferred_username": null}, "id_token": {"auth_time": {"essential": true}}}``
asks for individual claims. We honour the claims we hold (:data:`CLAIMS_SUPPORTED`), ignore
others (§5.5: "not an error"), and reject a malformed request with ``invalid_request``.
"""

from __future__ import annotations

from typing import Any

from aggregator import json_input
from aggregator.errors import InvalidRequest

#: claims that appear in our ID tokens and userinfo responses
CLAIMS_SUPPORTED: tuple[str, ...] = ("sub", "iss", "aud", "exp", "iat", "auth_time", "nonce",
                                     "at_hash", "c_hash", "s_hash", "preferred_username")
#: claims a person-describing request may ask for, beyond those always present
REQUESTABLE: frozenset[str] = frozenset({"preferred_username", "auth_time", "sub"})
#: the claims that describe the person: released only after a consent page named them
PERSONAL_CLAIMS: dict[str, str] = {"preferred_username": "Your username here"}
_TARGETS = ("userinfo", "id_token")


def parse_claims(value: str | dict | None) -> dict[str, dict[str, Any]]:
    """The claims request reduced to what we support: ``{"userinfo": {...}, "id_token": {...}}``."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json_input.loads(value, max_bytes=8192)
        except ValueError:
            raise InvalidRequest("The claims parameter is not valid JSON.") from None
    if not isinstance(value, dict):
        raise InvalidRequest("The claims parameter must be a JSON object.")
    parsed: dict[str, dict[str, Any]] = {}
    for target in _TARGETS:
        members = value.get(target)
        if members is None:
            continue
        if not isinstance(members, dict):
            raise InvalidRequest(f"claims.{target} must be a JSON object.")
        kept: dict[str, Any] = {}
        for name, request in members.items():
            if request is not None and not isinstance(request, dict):
                raise InvalidRequest(f"claims.{target}.{name} must be null or an object.")
            if name in REQUESTABLE:
                kept[name] = request
        if kept:
            parsed[target] = kept
    return parsed


def requested(claims: dict[str, dict[str, Any]], target: str, name: str) -> bool:
    return name in claims.get(target, {})


def asked_claims(claims: dict[str, dict[str, Any]]) -> frozenset[str]:
    """The personal claims a claims request asks for, wherever (ID token or userinfo)."""
    return frozenset(name for members in claims.values() for name in members
                     if name in PERSONAL_CLAIMS)
