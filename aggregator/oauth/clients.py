"""Registering, updating and deleting clients (used by RFC 7591/7592 and by the CLI).

Credentials are generated here and handed out once: the repository only ever sees their
SHA-256 digests.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

from aggregator.crypto import new_token, token_hash
from aggregator.errors import InvalidClientMetadata
from aggregator.oauth.client_metadata import load_client_metadata
from aggregator.oauth.consents import end_grant
from aggregator.oauth.profile import rules
from aggregator.services import Services
from aggregator.store.clients import ClientRecord


@dataclass(frozen=True)
class IssuedClient:
    """A client with the credentials just issued to it (shown once)."""

    client: ClientRecord
    client_secret: str | None
    registration_access_token: str

    def document(self, svc: Services) -> dict[str, Any]:
        """RFC 7591 §3.2.1 / RFC 7592 §3 client information response."""
        body = self.client.metadata()
        if self.client_secret:
            body["client_secret"] = self.client_secret
        body["registration_access_token"] = self.registration_access_token
        body["registration_client_uri"] = svc.endpoints.client_configuration(self.client.client_id)
        return body


def _check_resource_servers(svc: Services, metadata: dict[str, Any], client_id: str, *,
                            operator: bool, current: list[str] | None = None) -> None:
    """``resource_server_for`` lets a client read other clients' tokens (and so their upstream
    bank tokens) at introspection: only an operator may grant it, never a self-registration."""
    if not operator and list(metadata["resource_server_for"]) != list(current or []):
        raise InvalidClientMetadata(
            "resource_server_for: only an operator can set this "
            "(aggregator clients create --resource-server-for ...)."
        )
    for other in metadata["resource_server_for"]:
        if other != client_id and not svc.store.clients.exists(other):
            raise InvalidClientMetadata(f"resource_server_for: there is no client {other!r}.")


def _metadata(svc: Services, document: Any) -> dict[str, Any]:
    """The validated metadata, within what the server profile allows."""
    return rules(svc.settings).check_metadata(document, load_client_metadata(document, svc.outbound_policy))


def register_client(svc: Services, document: Any, *, operator: bool = False) -> IssuedClient:
    """Validate metadata and create a client with fresh credentials (``operator``: the CLI)."""
    metadata = _metadata(svc, document)
    client_id = new_token(16)
    _check_resource_servers(svc, metadata, client_id, operator=operator)
    confidential = metadata["token_endpoint_auth_method"] in ("client_secret_basic",
                                                              "client_secret_post")
    secret = new_token() if confidential else None
    registration_token = new_token()
    record = ClientRecord(
        client_id=client_id,
        created_at=int(time.time()),
        client_secret_hash=token_hash(secret) if secret else None,
        registration_token_hash=token_hash(registration_token),
        subject_salt=secrets.token_urlsafe(32),
        **metadata,
    )
    svc.store.clients.save(record)
    return IssuedClient(record, secret, registration_token)


def update_client(svc: Services, client: ClientRecord, document: Any) -> IssuedClient:
    """RFC 7592 §2.2: replace the metadata; the client id and secret stay, the access token rotates.

    A client switching to a secret-based method gets a new secret; one switching away loses it.
    """
    metadata = _metadata(svc, document)
    _check_resource_servers(svc, metadata, client.client_id, operator=False,
                            current=list(client.resource_server_for))
    uses_secret = metadata["token_endpoint_auth_method"] in ("client_secret_basic", "client_secret_post")
    secret = None
    secret_hash = client.client_secret_hash if uses_secret else None
    if uses_secret and not secret_hash:
        secret = new_token()
        secret_hash = token_hash(secret)
    registration_token = new_token()
    record = replace(client, **metadata, client_secret_hash=secret_hash,
                     registration_token_hash=token_hash(registration_token))
    svc.store.clients.save(record)
    return IssuedClient(record, secret, registration_token)


def rotate_registration_token(svc: Services, client: ClientRecord) -> IssuedClient:
    """A fresh registration access token (we keep only digests, so a read returns a new one)."""
    registration_token = new_token()
    record = replace(client, registration_token_hash=token_hash(registration_token))
    svc.store.clients.save(record)
    return IssuedClient(record, None, registration_token)


def delete_client(svc: Services, client_id: str) -> bool:
    """Delete a client and end everything it held: its grants, every token, its event stream."""
    for person_id, grant_id in svc.store.clients.grants_of(client_id):
        grant = svc.store.grants.get_for(person_id, grant_id)
        if grant is not None:
            end_grant(svc, grant)
    svc.store.tokens.revoke_client_tokens(client_id)
    svc.store.clients.drop_grant_index(client_id)
    svc.store.event_streams.delete(client_id)  # its SSF stream and the SETs waiting for it
    return svc.store.clients.delete(client_id)
