"""Clients: the apps registered at this provider (RFC 7591 metadata plus what we keep secret).

The client secret and the registration access token are stored only as SHA-256 digests. The
per-client salt of pairwise subject identifiers is encrypted with the key ring. Each client also
indexes its grants, so that deleting the client can end every grant it held.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from aggregator.store import key_names
from aggregator.store.base import Repository

#: metadata members that are lists in RFC 7591 documents
_LIST_MEMBERS = ("redirect_uris", "grant_types", "response_types", "contacts", "resource_server_for")
#: what never leaves the repository in a metadata document
_PRIVATE = ("client_secret_hash", "registration_token_hash", "subject_salt", "created_at")


@dataclass(frozen=True)
class ClientRecord:
    """A registered client. ``metadata()`` is its RFC 7591 document (no secrets)."""

    client_id: str
    client_name: str | None
    redirect_uris: list[str]
    grant_types: list[str]
    response_types: list[str]
    scope: str
    token_endpoint_auth_method: str
    created_at: int
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    logo_uri: str | None = None
    client_uri: str | None = None
    policy_uri: str | None = None
    tos_uri: str | None = None
    contacts: list[str] = field(default_factory=list)
    token_endpoint_auth_signing_alg: str | None = None
    id_token_signed_response_alg: str = "RS256"
    request_object_signing_alg: str | None = None
    require_pushed_authorization_requests: bool = False
    #: RFC 9449 §5.2: every token request of this client carries a DPoP proof
    dpop_bound_access_tokens: bool = False
    #: extension: client_ids whose tokens this client (a resource server) may introspect
    resource_server_for: list[str] = field(default_factory=list)
    client_secret_hash: str | None = field(default=None, repr=False)
    registration_token_hash: str | None = field(default=None, repr=False)
    subject_salt: str = field(default="", repr=False)

    @property
    def is_public(self) -> bool:
        """A public client has no credentials (RFC 6749 §2.1): ``token_endpoint_auth_method=none``."""
        return self.token_endpoint_auth_method == "none"

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())

    @property
    def display_name(self) -> str:
        return self.client_name or self.client_id

    def metadata(self) -> dict[str, Any]:
        """The client's registered metadata as RFC 7591 §3.2.1 returns it (no secrets, no Nones)."""
        document: dict[str, Any] = {"client_id": self.client_id, "client_id_issued_at": self.created_at}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in _PRIVATE or item.name == "client_id" or value is None:
                continue
            document[item.name] = value
        if not self.is_public:
            document["client_secret_expires_at"] = 0  # RFC 7591 §3.2.1: 0 = never
        return document


class ClientRepository(Repository):
    """``client:{c:id}`` hashes (metadata as JSON, secrets as digests) and the ``clients`` set."""

    def _salt_aad(self, client_id: str) -> str:
        return key_names.client(client_id) + ":subject_salt"

    def save(self, record: ClientRecord) -> None:
        """Create or replace a client (metadata and secrets in one write)."""
        data = asdict(record)
        mapping = {
            "metadata": json.dumps({k: v for k, v in data.items() if k not in _PRIVATE},
                                   separators=(",", ":")),
            "client_secret_hash": record.client_secret_hash or "",
            "registration_token_hash": record.registration_token_hash or "",
            "subject_salt": self.keyring.encrypt(record.subject_salt.encode(),
                                                 self._salt_aad(record.client_id)),
            "created_at": record.created_at,
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key_names.client(record.client_id))
        pipe.hset(key_names.client(record.client_id), mapping=mapping)
        pipe.execute()
        self.redis.zadd(key_names.CLIENTS, {record.client_id: record.created_at})

    def get(self, client_id: str) -> ClientRecord | None:
        if not client_id or len(client_id) > 200:
            return None
        return self.cached(key_names.client(client_id), lambda: self._load(client_id))

    def _load(self, client_id: str) -> ClientRecord | None:
        data = self.decode(self.redis.hgetall(key_names.client(client_id)))
        if not data:
            return None
        metadata = json.loads(data["metadata"])
        for name in _LIST_MEMBERS:
            metadata[name] = list(metadata.get(name) or [])
        salt = self.keyring.decrypt(data["subject_salt"], self._salt_aad(client_id)).decode()
        return ClientRecord(
            **metadata,
            created_at=int(data["created_at"]),
            client_secret_hash=data.get("client_secret_hash") or None,
            registration_token_hash=data.get("registration_token_hash") or None,
            subject_salt=salt,
        )

    def exists(self, client_id: str) -> bool:
        return bool(self.redis.exists(key_names.client(client_id)))

    def list(self) -> list[ClientRecord]:
        ids = [raw.decode() for raw in self.redis.zrange(key_names.CLIENTS, 0, -1)]
        return [record for record in map(self.get, ids) if record is not None]

    def delete(self, client_id: str) -> bool:
        """Remove the client record; its grants and tokens are ended by the caller."""
        removed = self.redis.delete(key_names.client(client_id))
        self.redis.zrem(key_names.CLIENTS, client_id)
        return bool(removed)

    # the grants a client holds (person_id, grant_id), so deleting the client can end them
    def remember_grant(self, client_id: str, person_id: str, grant_id: str) -> None:
        self.redis.sadd(key_names.client_grants(client_id), f"{person_id}:{grant_id}")

    def forget_grant(self, client_id: str, person_id: str, grant_id: str) -> None:
        self.redis.srem(key_names.client_grants(client_id), f"{person_id}:{grant_id}")

    def grants_of(self, client_id: str) -> list[tuple[str, str]]:
        members = (raw.decode() for raw in self.redis.smembers(key_names.client_grants(client_id)))
        return [tuple(member.split(":", 1)) for member in members]  # type: ignore[misc]

    def drop_grant_index(self, client_id: str) -> None:
        self.redis.delete(key_names.client_grants(client_id))
