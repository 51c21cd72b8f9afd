"""Every Redis key name the product uses. Nothing outside ``aggregator/store`` builds keys.

A person's records carry the hash tag ``{u:<person id>}`` so that in a Redis Cluster they share
one slot: MULTI/EXEC and Lua scripts may then touch several of them atomically.
"""

from __future__ import annotations


def person_tag(person_id: str) -> str:
    return "{u:" + person_id + "}"


# people
def person(person_id: str) -> str:
    return f"person:{person_tag(person_id)}"


def username_index(username: str) -> str:
    return f"username:{username.lower()}"


PEOPLE = "people"


# sessions (the cookie value is never stored: only its SHA-256)
def session(session_hash: str) -> str:
    return f"session:{session_hash}"


def person_sessions(person_id: str) -> str:
    return f"sessions:{person_tag(person_id)}"


# throttling
def login_failures(kind: str, subject: str) -> str:
    return f"throttle:login:{kind}:{subject}"


# keys
SIGNING_KEYS = "keys:signing"


# registrations
def registration(person_id: str, registration_id: str) -> str:
    return f"reg:{person_tag(person_id)}:{registration_id}"


def registrations(person_id: str) -> str:
    return f"regs:{person_tag(person_id)}"


def registration_by_external(person_id: str, provider: str, external_id: str) -> str:
    return f"reg-ext:{person_tag(person_id)}:{provider}:{external_id}"


def link_state(state_hash: str) -> str:
    return f"link:{state_hash}"


# plugin caches
def plugin_cache(plugin: str, key: str, person_id: str | None = None) -> str:
    if person_id is None:
        return f"plugin:{plugin}:{key}"
    return f"plugin:{person_tag(person_id)}:{plugin}:{key}"


# grants (what a person allowed an app)
def grant(person_id: str, grant_id: str) -> str:
    return f"grant:{person_tag(person_id)}:{grant_id}"


def grant_registrations(person_id: str, grant_id: str) -> str:
    return f"grant-regs:{person_tag(person_id)}:{grant_id}"


def grants(person_id: str) -> str:
    return f"grants:{person_tag(person_id)}"


def grant_owner(grant_id: str) -> str:
    return f"grant-owner:{grant_id}"


# cached upstream access tokens and the single-flight lock per registration
def upstream_token(person_id: str, registration_id: str, scope_key: str) -> str:
    return f"regtok:{person_tag(person_id)}:{registration_id}:{scope_key}"


def upstream_tokens(person_id: str, registration_id: str) -> str:
    return f"regtoks:{person_tag(person_id)}:{registration_id}"


def registration_lock(person_id: str, registration_id: str) -> str:
    return f"reglock:{person_tag(person_id)}:{registration_id}"
