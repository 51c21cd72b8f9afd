"""Every Redis key name the product uses. Nothing outside ``aggregator/store`` builds keys.

A person's records carry the hash tag ``{u:<person id>}`` so that in a Redis Cluster they share
one slot: MULTI/EXEC and Lua scripts may then touch several of them atomically. The refresh
queue and its markers share ``{refresh-jobs}`` for the same reason. No code lists keys by
pattern (no SCAN, no KEYS): every key is found from a record or index that names it.
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


def person_keys(person_id: str) -> str:
    """Set: the person's keys whose names no other record of theirs gives (token families,
    plugin caches, refresh failure notes), so deleting the person finds them without SCAN."""
    return f"person-keys:{person_tag(person_id)}"


def replication_probe(person_id: str) -> str:
    """A one-second key written just before a ``WAIT`` in the person's slot (see durability)."""
    return f"replicated:{person_tag(person_id)}"


def person_sessions(person_id: str) -> str:
    return f"sessions:{person_tag(person_id)}"


# throttling
def throttle(action: str, kind: str, subject: str) -> str:
    """Attempts at ``action`` (login, signup) by one subject (a username, an address)."""
    return f"throttle:{action}:{kind}:{subject}"


# keys
SIGNING_KEYS = "keys:signing"


# operations
READINESS_PROBE = "readyz:probe"


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


def grant_pairs(person_id: str, grant_id: str) -> str:
    """Hash: registration id -> the data scopes granted for it (space separated)."""
    return f"grant-pairs:{person_tag(person_id)}:{grant_id}"


def legacy_grant_registrations(person_id: str, grant_id: str) -> str:
    """Before schema 2: the set of registration ids a grant covered (migrated to grant_pairs)."""
    return f"grant-regs:{person_tag(person_id)}:{grant_id}"


SCHEMA_VERSION = "schema-version"


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


def upstream_token_rejected(person_id: str, registration_id: str) -> str:
    """Set for 30 s when an app reported the registration's token refused: the gate that makes
    many reports cause one forced refresh (``rejected_registration`` at introspection)."""
    return f"regtok-rejected:{person_tag(person_id)}:{registration_id}"


def registration_refresh_failure(person_id: str, registration_id: str) -> str:
    """A failed refresh's outcome, left briefly for the requests that waited on its lock."""
    return f"reglock-failed:{person_tag(person_id)}:{registration_id}"


# audit of introspections that released upstream tokens (never token values)
def audit_person(person_id: str) -> str:
    return f"audit:{person_tag(person_id)}"


AUDIT_ALL = "audit:all"


# ---------------------------------------------------------------- the provider (apps' side)
def client_tag(client_id: str) -> str:
    return "{c:" + client_id + "}"


def client(client_id: str) -> str:
    return f"client:{client_tag(client_id)}"


CLIENTS = "clients"


def client_grants(client_id: str) -> str:
    """``person_id:grant_id`` members: the grants to end when the client is deleted."""
    return f"client-grants:{client_tag(client_id)}"


def client_tokens(client_id: str) -> str:
    """Client-credentials tokens of a client (no person, no grant)."""
    return f"client-tokens:{client_tag(client_id)}"


def client_assertion(client_id: str, jti_hash: str) -> str:
    """A ``private_key_jwt`` assertion id seen once (RFC 7523 §3 replay protection)."""
    return f"jti:{client_tag(client_id)}:{jti_hash}"


def dpop_proof(client_id: str, jti_hash: str) -> str:
    """A DPoP proof id seen once (RFC 9449 §11.1 replay protection)."""
    return f"dpop-jti:{client_tag(client_id)}:{jti_hash}"


def client_jwks(uri_hash: str) -> str:
    """What a ``jwks_uri`` last answered (its keys, or that it failed), by the URI's SHA-256."""
    return f"jwks:{uri_hash}"


def client_jwks_fetch(uri_hash: str) -> str:
    """The single-flight lease of whoever is fetching that ``jwks_uri`` now."""
    return f"jwks-fetch:{uri_hash}"


# our tokens and codes, found by the SHA-256 of their value (the value itself is never stored)
def access_token(token_hash: str) -> str:
    return f"at:{token_hash}"


def refresh_token(token_hash: str) -> str:
    return f"rt:{token_hash}"


def authorization_code(code_hash: str) -> str:
    return f"code:{code_hash}"


def grant_tokens(person_id: str, grant_id: str) -> str:
    """Sorted set (score = expiry) of the token keys issued under a grant."""
    return f"grant-tokens:{person_tag(person_id)}:{grant_id}"


def token_family(person_id: str, family: str) -> str:
    """Sorted set of the token keys descending from one authorization code."""
    return f"token-family:{person_tag(person_id)}:{family}"


# authorization requests in flight
def pushed_request(uri_hash: str) -> str:
    """A pushed authorization request (RFC 9126), by the SHA-256 of its request_uri."""
    return f"par:{uri_hash}"


def pending_authorization(id_hash: str) -> str:
    """An authorization request waiting for the person (login, consent)."""
    return f"authz:{id_hash}"


# notices plugins leave for a person (webhooks)
def notices(person_id: str) -> str:
    return f"notices:{person_tag(person_id)}"


# the refresher: a job queue for upstream refreshes, and what waiters read back
# (the stream's name has no braces, so its slot is that of the tag ``{refresh-jobs}``)
REFRESH_JOBS = "refresh-jobs"
REFRESH_JOBS_TAG = "{refresh-jobs}"
REFRESHER_ALIVE = "refresher-alive"


def refresh_job(person_id: str, registration_id: str, scope_key: str) -> str:
    """Marks a queued refresh of one (registration, scope set): at most one in the queue.

    In the queue's slot, not the person's, so the marker and the job are written by one script.
    """
    return f"refresh-job:{REFRESH_JOBS_TAG}:{person_id}:{registration_id}:{scope_key}"


def refresh_outcome(person_id: str, registration_id: str, scope_key: str) -> str:
    """The latest failed refresh of one (registration, scope set), for the requests waiting."""
    return f"refresh-failed:{person_tag(person_id)}:{registration_id}:{scope_key}"


# payments: waiting at the bank (by the SHA-256 of the state sent upstream), then made
def payment_state(state_hash: str) -> str:
    return f"pay-state:{state_hash}"


def payment(person_id: str, payment_id: str) -> str:
    return f"payment:{person_tag(person_id)}:{payment_id}"


def person_payments(person_id: str) -> str:
    """Sorted set (score = created_at) of the person's payment ids."""
    return f"payments:{person_tag(person_id)}"


def payment_owner(payment_id: str) -> str:
    return f"payment-owner:{payment_id}"


def client_payments(client_id: str) -> str:
    """Sorted set (score = created_at) of the ids of the payments made to a client."""
    return f"client-payments:{client_tag(client_id)}"


def payment_family(person_id: str, family: str) -> str:
    """The payment whose authorization code started this token family."""
    return f"payment-family:{person_tag(person_id)}:{family}"


# events to apps (OpenID SSF): facts wait in the person's outbox, written in the transaction of
# the change that causes them; everything after that (streams, deliveries, retries, held and
# polled SETs) shares the slot of the tag ``{ssf}``, so the delivery scripts touch one slot
EVENTS_TAG = "{ssf}"


def event_outbox(person_id: str) -> str:
    """Stream: facts about the person (a grant ended, a status changed) not yet made into SETs."""
    return f"event-outbox:{person_tag(person_id)}"


#: sorted set: person ids whose outbox may hold facts (score: when last announced)
EVENT_OUTBOXES = f"event-outboxes:{EVENTS_TAG}"
#: set: the client ids that have an event stream
EVENT_STREAMS = f"ssf-streams:{EVENTS_TAG}"
#: stream (consumer group ``deliverers``): push deliveries due now
EVENT_DELIVERIES = f"ssf-deliveries:{EVENTS_TAG}"
#: sorted set: push deliveries waiting for their next attempt (score: when due)
EVENT_RETRIES = f"ssf-retries:{EVENTS_TAG}"
EVENT_WORKER_ALIVE = f"ssf-worker-alive:{EVENTS_TAG}"


def event_stream(client_id: str) -> str:
    """Hash: an app's one SSF stream (its configuration and status)."""
    return f"ssf-stream:{EVENTS_TAG}:{client_id}"


def event_held(client_id: str) -> str:
    """List: SETs held for a paused (or failing) stream, delivered when it is enabled again."""
    return f"ssf-held:{EVENTS_TAG}:{client_id}"


def event_poll(client_id: str) -> str:
    """Hash: jti -> SET waiting for a poll stream's receiver to acknowledge it (RFC 8936)."""
    return f"ssf-poll:{EVENTS_TAG}:{client_id}"


def event_poll_order(client_id: str) -> str:
    """Sorted set: the jtis of :func:`event_poll` in the order they were queued."""
    return f"ssf-poll-order:{EVENTS_TAG}:{client_id}"


def event_queued(jti: str) -> str:
    """Marks a SET queued once, so a fact relayed twice (a crash) is not queued twice."""
    return f"ssf-queued:{EVENTS_TAG}:{jti}"


def event_verifications(client_id: str) -> str:
    """Counts an app's verification requests in the current minute (a cap, not a schedule)."""
    return f"ssf-verify:{EVENTS_TAG}:{client_id}"


#: the prefixes of the records a worker may keep in memory (:mod:`aggregator.store.local_cache`),
#: those introspection and client authentication read; Redis announces every change under them
LOCALLY_CACHED = ("client:", "at:", "rt:", "grant:", "grant-pairs:", "reg:", "regs:", "regtok:")
