"""The "Get Data" phase: call every institution the AS handed us, directly, with its own token.

Each institution's API answers ``GET {endpoint}/accounts`` and ``GET {endpoint}/transactions``
with ``{"data": [...]}`` (Moneyhub Data API shapes; amounts in minor units under ``amount.value``).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

#: the AS's word for an institution it could hand a token for
OK = "ok"
#: ours, for an institution whose API did not answer usefully
UNAVAILABLE = "unavailable"


@dataclass
class InstitutionData:
    """One institution's answer: its accounts and transactions, or why there are none."""

    name: str
    status: str
    message: str | None = None
    accounts: list[dict[str, Any]] = field(default_factory=list)
    transactions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def needs_person(self) -> bool:
        """The AS says the person must act there (reconnect, re-approve): not something we can fix."""
        return self.status not in (OK, UNAVAILABLE)


def fetch_all(institutions: Mapping[str, Any], http: requests.Session,
              timeout: float) -> list[InstitutionData]:
    """Every institution of an introspection response, fetched in parallel, in name order."""
    names = sorted(institutions)
    if not names:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        return list(pool.map(lambda name: fetch(name, institutions[name], http, timeout), names))


def fetch(name: str, entry: Any, http: requests.Session, timeout: float) -> InstitutionData:
    """Accounts and transactions of one ``institutions`` entry, or its status when it has no token."""
    if not isinstance(entry, Mapping):
        return InstitutionData(name, UNAVAILABLE, "The Authorization Server sent an unreadable entry.")
    status = entry.get("status", OK)
    if status != OK:
        return InstitutionData(name, str(status), str(entry.get("error") or "Needs your attention."))
    endpoint, token = entry.get("endpoint"), entry.get("access_token")
    if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("http", "https") or not token:
        return InstitutionData(name, UNAVAILABLE,
                               "The Authorization Server sent no usable endpoint or token.")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}  # RFC 6750 §2.1
    data = InstitutionData(name, OK)
    for path in ("accounts", "transactions"):
        try:
            response = http.get(f"{endpoint.rstrip('/')}/{path}", headers=headers, timeout=timeout)
        except requests.RequestException:
            return InstitutionData(name, UNAVAILABLE, f"{name} did not answer.")
        if response.status_code in (401, 403):
            # The AS hands out what it holds; the bank may have ended that grant since.
            return InstitutionData(name, UNAVAILABLE, f"{name} did not accept the token "
                                   f"(HTTP {response.status_code} on /{path}). If this lasts, check the "
                                   "connection at your Authorization Server.")
        items = _items(response)
        if items is None:
            return InstitutionData(name, UNAVAILABLE,
                                   f"{name} refused /{path} (HTTP {response.status_code}).")
        setattr(data, path, items)
    return data


def _items(response: requests.Response) -> list[dict[str, Any]] | None:
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    items = body.get("data") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return None
    return [item for item in items if isinstance(item, dict)]
