"""Throttles: attempts reserved atomically *before* the work they guard.

Each counter is one Redis key (one hash slot) incremented by a script that also starts its
window on the first attempt, so concurrent requests can never all read "under the limit" and
then all proceed: the Nth attempt in a window is refused before any password is hashed or
checked. A successful login gives its reservations back.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from aggregator.crypto import KeyRing
from aggregator.store import key_names
from aggregator.store.base import Repository

# INCR, and start the window with the first attempt; one key, so one slot
_RESERVE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


@dataclass(frozen=True)
class Limit:
    """At most ``attempts`` per ``window`` seconds for one subject of one ``kind``."""

    kind: str
    attempts: int
    window: int


class Throttle(Repository):
    """Counters for one action (``login``, ``signup``), each limit over its own subject."""

    def __init__(self, client: redis.Redis, keyring: KeyRing, action: str,
                 limits: tuple[Limit, ...]) -> None:
        super().__init__(client, keyring)
        self.action = action
        self.limits = limits
        self._reserve = client.register_script(_RESERVE)

    def _key(self, limit: Limit, subject: str) -> str:
        return key_names.throttle(self.action, limit.kind, subject)

    def reserve(self, subjects: dict[str, str]) -> bool:
        """Count one attempt for every subject (``{"user": ..., "ip": ...}``); False when any
        limit is now exceeded (the caller refuses the request without doing the work)."""
        allowed = True
        for limit in self.limits:
            count = int(self._reserve(keys=[self._key(limit, subjects[limit.kind])], args=[limit.window]))
            allowed = allowed and count <= limit.attempts
        return allowed

    def release(self, subjects: dict[str, str], *, reset: tuple[str, ...] = ()) -> None:
        """Give back the attempt of a request that succeeded; ``reset`` kinds start over."""
        for limit in self.limits:
            key = self._key(limit, subjects[limit.kind])
            if limit.kind in reset:
                self.redis.delete(key)
            else:
                self.redis.decr(key)


#: five wrong passwords per username and thirty per address in fifteen minutes
LOGIN_LIMITS = (Limit("user", 5, 15 * 60), Limit("ip", 30, 15 * 60))
#: sign-up answers whether a username is taken: twenty attempts per address an hour
SIGNUP_LIMITS = (Limit("ip", 20, 60 * 60),)
