"""Per-browser state, kept server-side in this process's memory.

The browser's cookie (Flask's signed session) holds only a random visit id. This is an example
app: state is lost on restart and not shared between processes. A real app keeps it in a
database and the tokens encrypted.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from threading import Lock
from typing import TYPE_CHECKING, Any

from examples.grapher.client import AccessEnded, ASClient, token_expired

if TYPE_CHECKING:
    from examples.grapher.payments import FollowedPayment

#: an authorization request the person has not come back from yet (RFC 6749 §10.12: CSRF)
PENDING_TTL = 600
#: authorization requests kept per visit (several tabs, a back button); the oldest go first
PENDING_MAX = 5


@dataclass
class PendingAuthorization:
    """What we must check when the person comes back to ``/callback``."""

    client: ASClient
    state: str
    nonce: str
    code_verifier: str
    created: float = field(default_factory=time.time)


@dataclass
class Connection:
    """The Grapher's access to one person's data at one AS."""

    client: ASClient
    token: dict[str, Any]
    introspection_endpoint: str
    subject: str
    grant_id: str | None = None
    # Two tabs must not refresh at once: the AS rotates refresh tokens, and a spent one
    # presented again looks like theft (RFC 9700 §4.14.2) and may end the whole grant.
    _lock: Lock = field(default_factory=Lock, repr=False, compare=False)

    @property
    def issuer(self) -> str:
        return self.client.provider.issuer

    def introspect(self) -> dict[str, Any]:
        """The AS's answer about our access token (active, institutions, ...).

        An expired access token is refreshed first, and an inactive one once more (it may have
        expired between two page loads); when even a fresh token is inactive, or the refresh is
        refused, the grant is over: :class:`AccessEnded`.
        """
        with self._lock:
            return self._introspect()

    def _introspect(self) -> dict[str, Any]:
        refreshed = False
        if token_expired(self.token) and self.token.get("refresh_token"):
            self._refresh()
            refreshed = True
        answer = self.client.introspect(self.introspection_endpoint, self.token["access_token"])
        if answer.get("active") is not True and not refreshed and self.token.get("refresh_token"):
            self._refresh()
            answer = self.client.introspect(self.introspection_endpoint, self.token["access_token"])
        if answer.get("active") is not True:
            raise AccessEnded("The access token is no longer active.")
        return answer

    def _refresh(self) -> None:
        token = self.client.refresh(self.token["refresh_token"])
        token.setdefault("refresh_token", self.token["refresh_token"])
        self.token = token


@dataclass
class Visit:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    pending: dict[str, PendingAuthorization] = field(default_factory=dict)
    connection: Connection | None = None
    #: the AS that said access has ended, until the person connects again
    ended_at: str | None = None
    #: a one-off message for the next page (the person declined, for example)
    notice: str | None = None
    #: the latest payment made to the Grapher from this browser (examples/grapher/payments.py)
    payment: FollowedPayment | None = None
    touched: float = field(default_factory=time.time)

    def begin(self, pending: PendingAuthorization) -> None:
        self.pending[pending.state] = pending
        for state in list(self.pending)[:-PENDING_MAX]:
            del self.pending[state]

    def take_pending(self, state: str) -> PendingAuthorization | None:
        """The authorization request ``state`` belongs to, once; None if unknown or too old."""
        pending = self.pending.pop(state, None)
        if pending is None or time.time() - pending.created > PENDING_TTL:
            return None
        return pending

    def take_notice(self) -> str | None:
        notice, self.notice = self.notice, None
        return notice


class Visits:
    """Visits by id, forgotten after ``ttl`` seconds without a request."""

    def __init__(self, ttl: float = 8 * 3600) -> None:
        self.ttl = ttl
        self._visits: dict[str, Visit] = {}
        self._lock = Lock()

    def get_or_create(self, visit_id: str | None) -> tuple[str, Visit]:
        now = time.time()
        with self._lock:
            visit = self._visits.get(visit_id or "")
            if visit is None or now - visit.touched > self.ttl:
                self._forget_stale(now)
                visit_id, visit = secrets.token_urlsafe(32), Visit()
                self._visits[visit_id] = visit
            visit.touched = now
            return visit_id, visit  # type: ignore[return-value]

    def _forget_stale(self, now: float) -> None:
        for key in [k for k, v in self._visits.items() if now - v.touched > self.ttl]:
            del self._visits[key]
