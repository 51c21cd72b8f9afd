"""Login throttling: failure counters per username and per client IP, expiring on their own."""

from __future__ import annotations

from aggregator.store import key_names
from aggregator.store.base import Repository


class LoginThrottle(Repository):
    #: (kind, allowed failures, window in seconds)
    LIMITS = (("user", 5, 15 * 60), ("ip", 30, 15 * 60))

    def blocked(self, username: str, ip: str) -> bool:
        subjects = {"user": username.lower(), "ip": ip}
        pipe = self.redis.pipeline(transaction=False)
        for kind, _, _ in self.LIMITS:
            pipe.get(key_names.login_failures(kind, subjects[kind]))
        counts = [int(value or 0) for value in pipe.execute()]
        return any(count >= limit for count, (_, limit, _) in zip(counts, self.LIMITS, strict=True))

    def record_failure(self, username: str, ip: str) -> None:
        subjects = {"user": username.lower(), "ip": ip}
        pipe = self.redis.pipeline(transaction=True)
        for kind, _, window in self.LIMITS:
            key = key_names.login_failures(kind, subjects[kind])
            pipe.set(key, 0, ex=window, nx=True)  # the window starts at the first failure
            pipe.incr(key)
        pipe.execute()

    def record_success(self, username: str) -> None:
        self.redis.delete(key_names.login_failures("user", username.lower()))
