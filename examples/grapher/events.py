"""News from the person's AS: the Grapher's OpenID SSF stream (poll delivery, RFC 8936).

When a page is about to show a connection, the Grapher polls its stream at that AS (creating it
the first time, with its own client-credentials token carrying the scope ``events``), checks each
SET against the AS's published keys (RFC 8417: ``typ``, ``iss``, ``aud``, signature), keeps
what it says by ``grant_id`` and acknowledges it. A page then shows the news for its own grant:
"Your access was revoked", "Bank X needs you to reconnect it", ... Best effort: an AS without
events, or one that fails to answer, simply yields no news.
"""

from __future__ import annotations

import contextlib
from threading import Lock
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from examples.grapher.client import ASClient

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
POLL = "urn:ietf:rfc:8936"
REVOKED = "Your access was revoked at your Authorization Server: the Grapher has forgotten your data."


class EventInbox:
    """The news of every grant the Grapher holds, by (issuer, grant_id), from its poll streams."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.http = requests.Session()
        self._news: dict[tuple[str, str], list[str]] = {}
        self._revoked: set[tuple[str, str]] = set()
        self._poll_endpoints: dict[str, str] = {}
        self._lock = Lock()

    def news_for(self, client: ASClient, grant_id: str | None) -> tuple[list[str], bool]:
        """What the AS said about ``grant_id`` since the last look, and whether it was revoked."""
        if not grant_id:
            return [], False
        with contextlib.suppress(requests.RequestException, AuthlibBaseError, ValueError, JoseError,
                                 KeyError, TypeError, AttributeError):
            self._poll(client)  # an AS without events, or one whose answer makes no sense
        key = (client.provider.issuer, grant_id)
        with self._lock:
            revoked = key in self._revoked
            self._revoked.discard(key)
            return self._news.pop(key, []), revoked

    def _poll(self, client: ASClient) -> None:
        issuer = client.provider.issuer
        config = self.http.get(f"{issuer}/.well-known/ssf-configuration", timeout=self.timeout)
        if config.status_code != 200:
            return  # this AS sends no events
        metadata = config.json()
        with client.session() as session:
            token = session.fetch_token(client.provider.endpoint("token_endpoint"),
                                        grant_type="client_credentials", scope="events")
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        endpoint = self._poll_endpoints.get(issuer) or self._stream(metadata, headers)
        self._poll_endpoints[issuer] = endpoint
        answer = self.http.post(endpoint, json={"returnImmediately": True, "maxEvents": 50},
                                headers=headers, timeout=self.timeout)
        sets = answer.json().get("sets", {}) if answer.status_code == 200 else {}
        if not sets:
            return
        keys = KeySet.import_key_set(self.http.get(metadata["jwks_uri"], timeout=self.timeout).json())
        for signed in sets.values():
            self._keep(issuer, client.client_id, signed, keys)
        self.http.post(endpoint, json={"ack": list(sets), "returnImmediately": True},
                       headers=headers, timeout=self.timeout)

    def _stream(self, metadata: dict[str, Any], headers: dict[str, str]) -> str:
        """Our poll stream's endpoint: created, or (409: it exists) read."""
        where = metadata["configuration_endpoint"]
        created = self.http.post(where, json={"delivery": {"method": POLL}}, headers=headers,
                                 timeout=self.timeout)
        if created.status_code == 409:
            created = self.http.get(where, headers=headers, timeout=self.timeout)
            stream = created.json()[0]
        else:
            stream = created.json()
        return stream["delivery"]["endpoint_url"]

    def _keep(self, issuer: str, client_id: str, signed: str, keys: KeySet) -> None:
        token = jwt.decode(signed, keys, algorithms=["RS256", "PS256", "ES256"])
        claims = token.claims
        if token.header.get("typ") != "secevent+jwt" or claims.get("iss") != issuer \
                or claims.get("aud") != client_id:
            return
        for event_type, event in claims.get("events", {}).items():
            grant_id = event.get("grant_id")
            message = _message(event_type, event)
            if not grant_id or message is None:
                continue
            with self._lock:
                self._news.setdefault((issuer, grant_id), []).append(message)
                if event_type == SESSION_REVOKED:
                    self._revoked.add((issuer, grant_id))


def _message(event_type: str, event: dict[str, Any]) -> str | None:
    """What the person reads about one event (None: nothing worth saying)."""
    institution = event.get("institution") or "An institution"
    if event_type == SESSION_REVOKED:
        return REVOKED
    if event_type.endswith("/events/institution-status-changed"):
        if event.get("status") == "ok":
            return f"{institution} is connected again."
        return f"{institution} needs you to reconnect it at your Authorization Server."
    if event_type.endswith("/events/new-data-available"):
        return f"{institution} has new data; the charts include it."
    if event_type.endswith("/events/grant-changed"):
        return "You changed what the Grapher may read at your Authorization Server."
    return None
