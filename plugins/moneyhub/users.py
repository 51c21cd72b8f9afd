"""Moneyhub users: one per link, and the rule that a data token reaches registrations only.

Moneyhub's data token is a client-credentials token with ``sub`` = a Moneyhub user (seed 001);
it reaches every connection of that user and cannot be narrowed to one. So every link gets its
own user, created just before the person is sent to Moneyhub, and a registration's token can
reach only the connection that link produced. What can still go wrong is handled here:

- a link whose callback never arrives leaves a user with a connection no registration names.
  Such users are remembered as *pending* (per person) and deleted at the person's next link once
  the callback can no longer come, or when the person is deleted;
- before a token is released, every connection of the user that is not the registration's own
  (or, for people linked under the old one-user-per-person model, not a registration here at
  all) is deleted at Moneyhub; when that fails, no token is released.

Whether a connection is a registration here is asked of the core through
``PersonNotices.report_status`` (False when unknown), reporting the connection's true status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aggregator.upstream.contract import (
    PersonNotices,
    PluginCache,
    Registration,
    UpstreamError,
    UpstreamUnavailable,
)
from plugins.moneyhub import connections
from plugins.moneyhub.identity import MoneyhubIdentity

log = logging.getLogger("plugins.moneyhub")

#: a pending link's user is abandoned after this long: the core keeps a pending link ten
#: minutes (docs/plugins.md), so its callback can no longer complete it
ABANDONED_AFTER = 15 * 60
#: metadata member marking a registration whose Moneyhub user is its own (absent: old model)
DEDICATED = "dedicated_user"


class MoneyhubUsers:
    """The Moneyhub users the plugin creates, their connections, and their clean-up."""

    def __init__(
        self,
        identity: MoneyhubIdentity,
        cache: PluginCache,
        notices: PersonNotices,
        clock: Callable[[], float],
        status_ttl: int,
    ) -> None:
        self.identity = identity
        self.cache = cache
        self.notices = notices
        self.clock = clock
        self.status_ttl = status_ttl

    # ------------------------------------------------------------------ one user per link

    def create_for_link(self, person_id: str) -> str:
        """A new Moneyhub user for one link (``POST /users``), remembered as pending; the
        person's abandoned links are cleaned first."""
        self.sweep(person_id)
        user_id = self.identity.create_user(person_id)
        self.cache.set(f"owner:{user_id}", person_id)  # webhooks name the Moneyhub user only
        pending = self._pending(person_id)
        pending[user_id] = int(self.clock())
        # a concurrent link of the same person may overwrite this entry: its user then stays
        # at Moneyhub unswept, but no registration names it, so no token ever reaches it
        self.cache.set("pending", pending, person_id=person_id)
        log.info("moneyhub user created for a link", extra={"person_id": person_id})
        return user_id

    def sweep(self, person_id: str, *, everything: bool = False) -> None:
        """Delete the users of the person's abandoned links; with ``everything`` (the person is
        deleted), of all their pending links, raising :class:`UpstreamError` if one remains.

        A pending user whose connection became a registration is kept and no longer pending;
        a deletion that fails is retried at the next sweep.
        """
        cutoff = self.clock() - ABANDONED_AFTER
        done, failed = [], 0
        for user_id, started in self._pending(person_id).items():
            if not everything and started > cutoff:
                continue  # its callback may still come
            try:
                if everything or not any(self.registered(person_id, connection)
                                         for connection in self.connections(user_id, fresh=True)):
                    self.delete(user_id)
            except UpstreamError:
                failed += 1
                continue
            done.append(user_id)
        if done:
            left = {u: t for u, t in self._pending(person_id).items() if u not in done}
            self.cache.set("pending", left, person_id=person_id)
        if failed:
            log.warning("abandoned moneyhub users not deleted yet", extra={"person_id": person_id})
            if everything:
                raise UpstreamError(f"Moneyhub could not delete {failed} profile(s) of "
                                    "unfinished connections; they hold no registration here.")

    def abandon(self, user_id: str) -> None:
        """Delete a link's user at once when its callback failed: no registration will name it
        (a failure here leaves it to the next sweep)."""
        try:
            self.delete(user_id)
        except UpstreamError:
            log.warning("moneyhub user of a failed link left for the next sweep")

    def delete(self, user_id: str) -> None:
        """``DELETE /users/:id``: the user and all its connections (seed 001)."""
        self.identity.delete_user(user_id)
        self.forget_connections(user_id)
        self.cache.delete(f"owner:{user_id}")

    def _pending(self, person_id: str) -> dict[str, int]:
        found = self.cache.get("pending", person_id=person_id)
        return dict(found) if isinstance(found, dict) else {}

    # ------------------------------------------------------------------ the old model

    def forget_person_user(self, person_id: str) -> None:
        """Delete the person's one shared user of the old model, if they still have it."""
        user_id = self.cache.get("user", person_id=person_id)
        if user_id:
            self.delete(user_id)
        self.cache.delete("user", person_id=person_id)

    def after_unlink(self, registration: Registration, user_id: str) -> None:
        """Old model: once its connection is deleted, the shared user keeps only registrations
        here; when none is left, the user itself is deleted."""
        remaining = self.reconcile(registration, self.connections(user_id, fresh=True))
        if not remaining:
            self.delete(user_id)
            self.cache.delete("user", person_id=registration.person.id)

    # ------------------------------------------------------------------ connections

    def connections(self, user_id: str, *, fresh: bool = False) -> list[dict[str, Any]]:
        """``GET /users/:id/connections`` (none when the user is gone), cached ``status_ttl``
        seconds; ``fresh`` asks Moneyhub whatever is cached."""
        key = f"connections:{user_id}"
        if not fresh:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        listed = self.identity.user_connections(user_id) or []
        if self.status_ttl:
            self.cache.set(key, listed, ttl=self.status_ttl)
        return listed

    def forget_connections(self, user_id: str) -> None:
        """Drop the cached connection list (it changed, or may have)."""
        self.cache.delete(f"connections:{user_id}")

    def registered(self, person_id: str, connection: dict[str, Any]) -> bool:
        """Is ``connection`` one of the person's registrations here? (Its status is reported
        on the way, as a webhook would.)"""
        report = connections.status_of(connection, self.clock())
        return self.notices.report_status(person_id, connection["id"], report)

    def reconcile(
        self, registration: Registration, listed: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Delete at Moneyhub every connection of the registration's user that its token must
        not reach; returns the connections kept.

        A dedicated user keeps the registration's own connection only. An old-model user keeps
        the person's registrations here (one share group, shared all or none). Raises
        :class:`UpstreamUnavailable` when a deletion fails: then no token may be released.
        """
        user_id = str(registration.metadata.get("moneyhub_user_id"))
        dedicated = bool(registration.metadata.get(DEDICATED))
        kept = []
        for connection in listed:
            own = connection["id"] == registration.external_id
            if own or (not dedicated and self.registered(registration.person.id, connection)):
                kept.append(connection)
                continue
            try:
                self.identity.delete_connection(user_id, connection["id"])
            except UpstreamError as failure:
                raise UpstreamUnavailable(
                    "Moneyhub holds a connection for this profile that is not registered here "
                    f"and could not delete it ({failure.description}); no token is released "
                    "until it is gone. Try again later."
                ) from None
            self.forget_connections(user_id)
            log.warning("moneyhub connection not registered here deleted",
                        extra={"person_id": registration.person.id})
        return kept
