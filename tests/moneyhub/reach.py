"""What Moneyhub tokens reach, read at the fake: the Data API's answer and the fake's records."""

from __future__ import annotations

import requests

from tests.fakes.moneyhub.models import AccessToken
from tests.fixtures.moneyhub import MoneyhubFake


def reached(endpoint: str, token: str) -> set[str]:
    """The connections whose accounts ``token`` reads at the Data API."""
    answer = requests.get(f"{endpoint}/accounts", headers={"Authorization": f"Bearer {token}"},
                          timeout=10)
    assert answer.status_code == 200, answer.text
    return {account["connectionId"] for account in answer.json()["data"]}


def data_tokens(fake: MoneyhubFake, user_id: str | None = None) -> list[AccessToken]:
    """The live data tokens (client credentials with ``sub``), those of ``user_id`` if given."""
    return [t for t in fake.controls.access_tokens(sub=user_id)
            if t.grant_type == "client_credentials" and t.sub is not None]


def tokens_reaching(fake: MoneyhubFake, connection_id: str) -> list[AccessToken]:
    """The live data tokens that reach ``connection_id`` (a data token reaches its user's all)."""
    return [t for t in data_tokens(fake)
            if connection_id in {c.id for c in fake.controls.connections(t.sub or "")}]
