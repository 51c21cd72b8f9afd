"""A client's key set from its ``jwks_uri``: at most one fetch per URI per interval, AS-wide.

Anyone can make the AS look up a client's keys (an assertion naming the client at ``/token``, a
``request`` object at ``/authorize``), before any signature is checked. So the fetch goes
through the outbound policy (:mod:`aggregator.outbound`: deadline, size cap, no redirects, no
private addresses in production), and its outcome, keys or failure, is cached in Redis for
every worker: keys for the response's ``Cache-Control: max-age`` within
[:data:`MIN_TTL`, :data:`MAX_TTL`], failures for :data:`FAILURE_TTL`. One worker fetches at a
time (a lease); a request that finds a fetch in flight waits at most :data:`WAIT` seconds and
otherwise fails with "try again", so no request thread is pinned by someone else's slow
server. An unknown ``kid`` refetches only keys older than :data:`REFETCH_INTERVAL`.

Errors never carry what the ``jwks_uri`` answered (status or body): that would make the AS a
scanner of whatever network it can reach.
"""

from __future__ import annotations

import logging
import re
import time

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from aggregator import json_input
from aggregator.crypto import new_token
from aggregator.outbound import OutboundError, OutboundSession, host_of
from aggregator.store.client_jwks import CachedKeySet, ClientJwksRepository

log = logging.getLogger("aggregator.oauth.client_jwks")

#: bounds and default of how long fetched keys are used (seconds)
MIN_TTL, MAX_TTL, DEFAULT_TTL = 60, 3600, 300
#: how long a failed fetch is remembered (seconds): no refetch before
FAILURE_TTL = 30
#: keys younger than this are not refetched for an unknown kid (seconds)
REFETCH_INTERVAL = 30
#: how long a request waits for another worker's fetch before answering "try again" (seconds)
WAIT = 0.2
#: a key set larger than this is refused (a few keys take a few kilobytes)
MAX_JWKS_BYTES = 64 * 1024
#: the longest one fetch may take (seconds), whatever AGGREGATOR_UPSTREAM_TIMEOUT says
MAX_DEADLINE = 5.0

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


class ClientKeyError(Exception):
    """The client's keys cannot be obtained or do not verify the JWT."""


class KeysUnavailable(ClientKeyError):
    """The keys cannot be had right now (fetch failed or in flight): retrying this request
    would not help before the next interval."""


class ClientJwks:
    """Key sets behind ``jwks_uri`` values, shared through Redis by every worker."""

    def __init__(self, repository: ClientJwksRepository, http: OutboundSession) -> None:
        self.repository = repository
        self.http = http

    def keyset(self, uri: str, *, refresh: bool = False) -> KeySet:
        """The keys at ``uri``; ``refresh`` (an unknown kid) refetches keys older than the interval."""
        cached = self.repository.get(uri)
        if cached is not None and not (refresh and _age(cached) >= REFETCH_INTERVAL):
            return _usable(cached)
        token = new_token(16)
        if self.repository.claim_fetch(uri, token, int((self.http.timeout + 2) * 1000)):
            try:
                current = self.repository.get(uri)
                if current is not None and current != cached:  # fetched while we looked
                    return _usable(current)
                entry, ttl = self._fetch(uri)
                self.repository.put(uri, entry, ttl)
            finally:
                self.repository.release_fetch(uri, token)
            return _usable(entry)
        if cached is not None:  # another worker refetches: these keys meanwhile
            return _usable(cached)
        waited_until = time.monotonic() + WAIT
        while time.monotonic() < waited_until:
            time.sleep(0.05)
            found = self.repository.get(uri)
            if found is not None:
                return _usable(found)
        raise KeysUnavailable("the client's keys could not be fetched, try again")

    def _fetch(self, uri: str) -> tuple[CachedKeySet, int]:
        """Fetch once: the entry to cache and its TTL. Never raises for what the URI answers."""
        now = time.time()
        try:
            response = self.http.get(uri, headers={"Accept": "application/json"})
            if response.status_code != 200:
                raise ValueError(f"answered {response.status_code}")
            jwks = json_input.loads(response.content, max_bytes=MAX_JWKS_BYTES)
            if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
                raise ValueError("not a JWK Set")
            KeySet.import_key_set(jwks)
        except (OutboundError, ValueError, JoseError, TypeError) as exc:
            # for the operator only: the client is told "could not be fetched", nothing more
            log.warning("client jwks_uri not fetched", extra={"host": host_of(uri),
                                                              "error": str(exc)[:200]})
            return CachedKeySet(None, now), FAILURE_TTL
        return CachedKeySet(jwks, now), cache_ttl(response.headers.get("Cache-Control", ""))


def _age(entry: CachedKeySet) -> float:
    return time.time() - entry.fetched_at


def _usable(entry: CachedKeySet) -> KeySet:
    if entry.jwks is None:
        raise KeysUnavailable("the client's jwks_uri could not be fetched")
    return KeySet.import_key_set(entry.jwks)


def cache_ttl(cache_control: str) -> int:
    """``max-age`` within [MIN_TTL, MAX_TTL]; DEFAULT_TTL without one (RFC 9111 §5.2.2.1)."""
    found = _MAX_AGE.search(cache_control)
    if not found:
        return DEFAULT_TTL
    return max(MIN_TTL, min(MAX_TTL, int(found.group(1))))

