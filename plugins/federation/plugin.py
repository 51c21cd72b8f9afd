"""The federation plugin: another instance of this product (another aggregator) as an upstream.

One link runs the upstream aggregator's own authorization, as an app would: PAR (RFC 9126),
PKCE S256 (RFC 7636), its consent page where the person picks institutions there, the scopes
``openid offline_access`` and the data scopes. The code is exchanged, the ID token verified, and
the access token introspected at the upstream (RFC 7662, client-authenticated): every institution
it lists becomes one registration here, with its name, endpoint and provider.

The link's grant at the upstream (refresh token, grant id, its access tokens per scope set) is
kept once, encrypted in the plugin's per-person cache, and shared by the link's registrations;
a per-link lock makes one refresh at a time, since the upstream rotates refresh tokens and
takes a spent one as theft (RFC 9700 §4.14.2). ``access_token()`` introspects the upstream with
an access token narrowed to the data scopes asked (RFC 6749 §6) and hands out that one
institution's token and endpoint; each registration's token reaches only its own institution,
so registrations of one link are not a ``share_group`` and an app may be granted one of them.
``unlink()`` ends the upstream grant when the link's last registration goes; ``status()`` maps
the upstream entry's status onto ours, an upstream grant that is gone meaning ``reauth_required``.
The upstream's events (its SSF stream, ``plugins/federation/events.py``) change statuses at once.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from flask import Blueprint

from aggregator.upstream.contract import (
    DATA_SCOPES,
    ConsentExpired,
    Institution,
    LinkedInstitution,
    LinkInvalid,
    LinkStart,
    Person,
    PluginContext,
    ReauthRequired,
    Registration,
    StatusReport,
    TokenResult,
    UpstreamError,
    UpstreamToken,
    UpstreamUnavailable,
)
from aggregator.upstream.oidc_client import OAuthRefusal, OIDCClient, upstream_token
from plugins.federation import events
from plugins.federation.config import FederationConfig
from plugins.oidc.plugin import OIDCPlugin

log = logging.getLogger("aggregator.plugins.federation")

#: the chooser's one entry: the person's account at the upstream aggregator
ACCOUNT = "account"
#: an upstream access token with less than this many seconds left is renewed before use
RENEW_MARGIN = 30
#: how long one holder may keep a link's lock (a crashed holder's lapses then)
LOCK_SECONDS = 30


class UpstreamAggregator(OIDCClient):
    """The upstream aggregator as our client sees it: an OpenID Provider that also offers
    token introspection (RFC 7662) and OpenID Grant Management."""

    required_metadata = ("authorization_endpoint", "token_endpoint", "introspection_endpoint")

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 §2.1: our client-authenticated question; the upstream's answer (§2.2)."""
        response = self._authenticated_post(self.metadata()["introspection_endpoint"], {"token": token})
        if response.status_code != 200:
            raise self.refusal(response)
        body = self.json(response, "introspection response")
        if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
            raise UpstreamUnavailable(f"{self.name} sent an unreadable introspection response.")
        return body

    def end_grant(self, grant_id: str) -> bool:
        """OpenID Grant Management ``DELETE /grants/{id}``: the grant and every token issued
        under it end. False when the upstream offers no grant management; True when the
        grant is gone, already gone (404) included."""
        endpoint = self.metadata().get("grant_management_endpoint")
        if not isinstance(endpoint, str):
            return False
        data, auth = self.credentials.authenticate({}, self.metadata()["token_endpoint"], self.clock())
        response = self.send("DELETE", f"{endpoint}/{quote(grant_id, safe='')}", data=data or None,
                             auth=auth, headers={"Accept": "application/json"})
        if response.status_code in (200, 204, 404):
            return True
        raise self.refusal(response)


class FederationPlugin(OIDCPlugin):
    """Links the person's account at another aggregator: one registration per institution there."""

    name = "federation"
    display_name = "Another aggregator"
    config_schema = FederationConfig

    def __init__(self, config: Mapping[str, Any], context: PluginContext) -> None:
        self.issuer: str = config["issuer"]
        self.upstream_name: str = config["name"]
        super().__init__(
            {
                "client_id": config["client_id"],
                "client_secret": config.get("client_secret"),
                "auth_method": config.get("auth_method", "client_secret_basic"),
                "private_jwks": config.get("private_jwks"),
                "scopes": {scope: scope for scope in DATA_SCOPES},  # the upstream's are ours
                # a refresh token (offline_access) keeps the link alive; openid names the person
                "extra_scopes": "openid offline_access",
                "institutions": [{
                    "id": ACCOUNT, "name": self.upstream_name, "issuer": self.issuer,
                    "description": "Your account there: pick the institutions to bring here.",
                }],
            },
            context,
        )

    def upstream(self, issuer: str) -> UpstreamAggregator:
        if issuer != self.issuer:
            raise LinkInvalid("This connection belongs to another aggregator than the one configured.")
        return UpstreamAggregator(issuer, self.credentials, self.context.http, self.context.cache,
                                  name=self.upstream_name)

    # -- linking ------------------------------------------------------------------------------

    def begin_link(
        self, person: Person, institution_id: str, *, state: str,
        reconnect: Registration | None = None,
    ) -> LinkStart:
        # a reconnect names its registration's institution (one at the upstream); every link,
        # a reconnect included, is to the person's account there
        return super().begin_link(person, ACCOUNT if reconnect is not None else institution_id,
                                  state=state, reconnect=reconnect)

    def complete_link(
        self, person: Person, params: Mapping[str, str], remember: Mapping[str, Any], *,
        reconnect: Registration | None = None,
    ) -> list[LinkedInstitution]:
        upstream = self.upstream(remember["issuer"])
        code = upstream.authorization_code(params)
        try:
            token = upstream.exchange_code(code, self.context.callback_url, remember["code_verifier"])
        except OAuthRefusal as refusal:
            raise LinkInvalid(refusal.explain("accept the authorization code")) from None
        subject = self._claims(upstream, token, remember.get("nonce")).get("sub")
        if not isinstance(subject, str) or not subject:
            raise LinkInvalid(f"{self.upstream_name} did not say which account signed in.")
        if not isinstance(token.get("refresh_token"), str):
            raise LinkInvalid(f"{self.upstream_name} did not grant lasting access (offline_access).")
        body = self._introspect(upstream, token["access_token"])
        if not body["active"]:
            raise LinkInvalid(f"{self.upstream_name} says its new token is not active.")
        link = secrets.token_urlsafe(12)
        linked = [self._linked(upstream, link, subject, name, entry)
                  for name, entry in _entries(body, self.upstream_name)]
        if not linked:
            raise LinkInvalid(f"You shared no institution at {self.upstream_name}.")
        grant_id = token.get("grant_id") or body.get("grant_id")
        self._save(person.id, link, {
            "subject": subject,  # with a member, the registration's external id (events)
            "refresh_token": token["refresh_token"],
            "grant_id": grant_id,
            "tokens": {_scope_key(DATA_SCOPES): _cached(upstream_token(token))},
            "members": [item.metadata["upstream_registration"] for item in linked],
        })
        if isinstance(grant_id, str):
            self._share_grant(person.id, grant_id, link, joining=True)
        previous = reconnect.metadata.get("link") if reconnect is not None else None
        if previous and previous != link:
            self._retire(upstream, person.id, previous)
        events.subscription(self)  # idempotent: the first link subscribes (else pull)
        return linked

    def _linked(self, upstream: UpstreamAggregator, link: str, subject: str, name: str,
                entry: Mapping[str, Any]) -> LinkedInstitution:
        """One institution of the upstream's introspection as a registration here."""
        upstream_id = entry["registration_id"]
        return LinkedInstitution(
            institution=Institution(upstream_id, name, description=f"Through {self.upstream_name}"),
            external_id=f"{subject}:{upstream_id}",
            endpoint=entry["endpoint"],
            secrets={},  # the link's grant is kept once for all its registrations (module doc)
            metadata={"issuer": upstream.issuer, "link": link, "upstream_registration": upstream_id,
                      "upstream_provider": str(entry.get("provider") or "")},
            token=_handed(entry) if entry.get("status") == "ok" else None,
        )

    # -- tokens and status --------------------------------------------------------------------

    def access_token(self, registration: Registration, scopes: frozenset[str]) -> TokenResult:
        entry = self._upstream_entry(registration, scopes)
        token = _handed(entry) if entry.get("status") == "ok" else None
        if token is None:
            raise self._not_ok(entry)
        moved = entry["endpoint"] != registration.endpoint  # the upstream's own endpoint changed
        return TokenResult(token, metadata={**registration.metadata, "endpoint": entry["endpoint"]}
                           if moved else None)

    def status(self, registration: Registration) -> StatusReport:
        events.subscription(self)  # links made before the upstream offered events
        try:
            entry = self._upstream_entry(registration, DATA_SCOPES)
            if entry.get("status") != "ok":
                raise self._not_ok(entry)
        except UpstreamUnavailable:
            raise  # no news: the core keeps the stored status
        except UpstreamError as exc:
            return StatusReport(exc.status, exc.description)
        return StatusReport("ok")

    def _upstream_entry(self, registration: Registration, scopes: frozenset[str]) -> dict[str, Any]:
        """The registration's institution entry in the upstream's introspection of a link token
        for ``scopes``. An inactive token is refreshed once: a refused refresh means the person
        revoked this server there (or the grant ended), and so ``reauth_required``."""
        link, wanted = registration.metadata.get("link"), registration.metadata.get("upstream_registration")
        state = self._state(registration.person.id, link)
        if state is None or wanted not in state["members"]:
            raise ReauthRequired("This connection was removed; connect it again.")
        entries = self._link_entries(self.upstream(registration.metadata["issuer"]),
                                     registration.person.id, link, scopes)
        if wanted not in entries:
            raise self._unshared()
        return entries[wanted]

    def _link_entries(self, upstream: UpstreamAggregator, person_id: str, link: str,
                      scopes: frozenset[str]) -> dict[str, dict[str, Any]]:
        """The link's institution entries at the upstream, by their registration id there."""
        token = self._link_token(upstream, person_id, link, scopes)
        body = self._introspect(upstream, token)
        if not body["active"]:
            token = self._link_token(upstream, person_id, link, scopes, dead=token)
            body = self._introspect(upstream, token)
            if not body["active"]:
                raise ReauthRequired(f"{self.upstream_name} no longer accepts this connection; "
                                     "connect it again.")
        return {entry["registration_id"]: entry for _, entry in _entries(body, self.upstream_name)}

    def _unshared(self) -> ReauthRequired:
        return ReauthRequired(f"This institution is no longer shared at {self.upstream_name}; "
                              "connect it again.")

    def _not_ok(self, entry: Mapping[str, Any]) -> UpstreamError:
        """The upstream entry's status as ours: the person must act there, or try later."""
        words = f"{self.upstream_name}: {str(entry.get('error') or 'no token available')[:200]}"
        if entry.get("status") == "reauth_required":
            return ReauthRequired(words)
        if entry.get("status") == "expired":
            return ConsentExpired(words)
        return UpstreamUnavailable(words)

    def _introspect(self, upstream: UpstreamAggregator, token: str) -> dict[str, Any]:
        try:
            return upstream.introspect(token)
        except OAuthRefusal as refusal:  # our own client is refused: configuration, not the person
            raise UpstreamError(refusal.explain("answer an introspection")) from None

    def _link_token(self, upstream: UpstreamAggregator, person_id: str, link: str,
                    scopes: frozenset[str], dead: str | None = None) -> str:
        """An upstream access token of the link narrowed to ``scopes`` (RFC 6749 §6), from the
        cache while it has :data:`RENEW_MARGIN` seconds left and is not ``dead``, else refreshed
        under the link's lock."""
        key = _scope_key(scopes)

        def usable(state: Mapping[str, Any] | None) -> str | None:
            if state is None:
                raise ReauthRequired("This connection was removed; connect it again.")
            cached = state["tokens"].get(key)
            lasts = cached is not None and cached["expires_at"] - time.time() >= RENEW_MARGIN
            if lasts and cached["access_token"] != dead:
                return cached["access_token"]
            return None

        found = usable(self._state(person_id, link))
        if found:
            return found
        with self._lock(person_id, link):
            state = self._state(person_id, link)
            found = usable(state)  # another holder may have just refreshed it
            if found:
                return found
            assert state is not None
            scope = " ".join(sorted(scopes & DATA_SCOPES))
            if not scope:
                raise UpstreamError("No data was asked for.")
            try:
                answer = upstream.refresh(state["refresh_token"], scope)
            except OAuthRefusal as refusal:
                if refusal.error == "invalid_grant":
                    raise ReauthRequired(f"{self.upstream_name} no longer accepts this connection "
                                         "(it may have been revoked there); connect it again.") from None
                raise UpstreamError(refusal.explain("renew the connection")) from None
            now = time.time()
            # persisted before use: the upstream has spent the old refresh token already
            state["refresh_token"] = answer.get("refresh_token") or state["refresh_token"]
            state["tokens"] = {k: v for k, v in state["tokens"].items() if v["expires_at"] > now}
            state["tokens"][key] = _cached(upstream_token(answer, now))
            self._save(person_id, link, state)
            return answer["access_token"]

    # -- removal ------------------------------------------------------------------------------

    def unlink(self, registration: Registration) -> None:
        link, leaving = registration.metadata.get("link"), registration.metadata.get("upstream_registration")
        if self._state(registration.person.id, link) is None:
            return  # already gone
        upstream = self.upstream(registration.metadata["issuer"])
        with self._lock(registration.person.id, link):
            state = self._state(registration.person.id, link)
            if state is None:
                return
            state["members"] = [member for member in state["members"] if member != leaving]
            if state["members"]:  # other registrations still use the grant
                self._save(registration.person.id, link, state)
                return
            self._end(upstream, registration.person.id, link, state)
            self.context.cache.delete(_link_key(link), person_id=registration.person.id)

    def _end(self, upstream: UpstreamAggregator, person_id: str, link: str,
             state: Mapping[str, Any]) -> None:
        """End what ``link`` holds upstream: the whole grant through Grant Management when no
        other link of the person shares it (the upstream keeps one grant per client, so a
        second link or a reconnect may), else RFC 7009 §2.1 revocation of the link's refresh
        token, which ends the tokens issued from it and nothing else."""
        grant_id = state.get("grant_id")
        shared = isinstance(grant_id, str) and self._share_grant(person_id, grant_id, link, joining=False)
        try:
            if isinstance(grant_id, str) and not shared and upstream.end_grant(grant_id):
                return
            upstream.revoke(state["refresh_token"], "refresh_token")
        except OAuthRefusal as refusal:
            raise UpstreamError(refusal.explain("end this server's access")) from None

    def _retire(self, upstream: UpstreamAggregator, person_id: str, link: str) -> None:
        """A reconnect replaced ``link``: end what it held upstream. Its registrations that the
        new link did not bring back are left ``reauth_required``."""
        try:
            with self._lock(person_id, link):
                state = self._state(person_id, link)
                if state is not None:
                    self._end(upstream, person_id, link, state)
                    self.context.cache.delete(_link_key(link), person_id=person_id)
        except UpstreamError as exc:
            log.warning("the replaced upstream grant was not ended", extra={"error": exc.description})

    def _share_grant(self, person_id: str, grant_id: str, link: str, *, joining: bool) -> bool:
        """Add ``link`` to (or take it out of) the links using the upstream grant ``grant_id``;
        True when other links use it. The grant's owner is indexed for the upstream's events,
        which name the grant and not our person."""
        key = f"grant-links:{grant_id}"
        with self._lock(person_id, key):
            links = set(self.context.cache.get(key, person_id=person_id) or ())
            links = links | {link} if joining else links - {link}
            if links:
                self.context.cache.set(key, sorted(links), person_id=person_id)
                self.context.cache.set(_owner_key(grant_id), person_id)
            else:
                self.context.cache.delete(key, person_id=person_id)
                self.context.cache.delete(_owner_key(grant_id))
        return bool(links - {link})

    # -- the upstream's events (plugins/federation/events.py) ---------------------------------

    def blueprint(self) -> Blueprint | None:
        """``/plugins/federation/events``: the upstream pushes its SETs there (RFC 8935)."""
        return events.events_blueprint(self)

    def _grant_links(self, grant_id: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(person id, link, link state) of every link holding the upstream grant ``grant_id``."""
        person_id = self.context.cache.get(_owner_key(grant_id))
        if not isinstance(person_id, str):
            return
        for link in self.context.cache.get(f"grant-links:{grant_id}", person_id=person_id) or ():
            state = self._state(person_id, link)
            if state is not None and isinstance(state.get("subject"), str):
                yield person_id, link, state

    def registrations_of_grant(self, grant_id: str) -> list[tuple[str, str]]:
        """(person id, external id) of every registration resting on the upstream grant."""
        return [(person_id, f"{state['subject']}:{member}")
                for person_id, _, state in self._grant_links(grant_id) for member in state["members"]]

    def check_grant(self, grant_id: str) -> list[tuple[str, str, StatusReport]]:
        """A status check of every registration resting on the upstream grant, one
        introspection per link: (person id, external id, report). An unreachable upstream
        gives no news."""
        upstream = self.upstream(self.issuer)
        reports: list[tuple[str, str, StatusReport]] = []
        for person_id, link, state in list(self._grant_links(grant_id)):
            try:
                entries: dict[str, dict[str, Any]] | None = self._link_entries(
                    upstream, person_id, link, DATA_SCOPES)
                failure = None
            except UpstreamUnavailable:
                continue
            except UpstreamError as exc:
                entries, failure = None, StatusReport(exc.status, exc.description)
            for member in state["members"]:
                report = failure
                if entries is not None:
                    entry = entries.get(member)
                    problem = self._unshared() if entry is None else (
                        self._not_ok(entry) if entry.get("status") != "ok" else None)
                    report = StatusReport(problem.status, problem.description) if problem \
                        else StatusReport("ok")
                assert report is not None
                reports.append((person_id, f"{state['subject']}:{member}", report))
        return reports

    # -- the link's grant, kept once (encrypted by the core's plugin cache) -------------------

    def _state(self, person_id: str, link: Any) -> dict[str, Any] | None:
        if not isinstance(link, str):
            return None
        found = self.context.cache.get(_link_key(link), person_id=person_id)
        return found if isinstance(found, dict) else None

    def _save(self, person_id: str, link: str, state: dict[str, Any]) -> None:
        self.context.cache.set(_link_key(link), state, person_id=person_id)

    @contextmanager
    def _lock(self, person_id: str, link: str) -> Iterator[None]:
        """One holder per link at a time, across every worker (``SET NX`` with a lifetime)."""
        key = f"lock:{link}"
        deadline = time.monotonic() + 2 * self.context.http_timeout
        while not self.context.cache.add(key, 1, ttl=LOCK_SECONDS, person_id=person_id):
            if time.monotonic() > deadline:
                raise UpstreamUnavailable(f"{self.upstream_name} is busy with this connection; "
                                          "try again in a moment.")
            time.sleep(0.02)
        try:
            yield
        finally:
            self.context.cache.delete(key, person_id=person_id)


def _link_key(link: str) -> str:
    return f"link:{link}"


def _owner_key(grant_id: str) -> str:
    return f"grant-owner:{grant_id}"


def _scope_key(scopes: frozenset[str]) -> str:
    return " ".join(sorted(scopes & DATA_SCOPES))


def _cached(token: UpstreamToken) -> dict[str, Any]:
    return {"access_token": token.access_token, "expires_at": token.expires_at}


def _handed(entry: Mapping[str, Any]) -> UpstreamToken | None:
    """An ``ok`` entry's institution token as ours; None when it has none."""
    access_token, expires_at = entry.get("access_token"), entry.get("expires_at")
    if not isinstance(access_token, str) or not isinstance(expires_at, int):
        return None
    return UpstreamToken(access_token, expires_at, str(entry.get("token_type") or "Bearer"))


def _entries(body: Mapping[str, Any], upstream: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The introspection's ``institutions`` (name, entry), each with the members we rely on."""
    institutions = body.get("institutions") or {}
    if not isinstance(institutions, dict):
        raise UpstreamUnavailable(f"{upstream} sent unreadable institutions.")
    for name, entry in institutions.items():
        if (isinstance(entry, dict) and isinstance(entry.get("registration_id"), str)
                and isinstance(entry.get("endpoint"), str)):
            yield name, entry
