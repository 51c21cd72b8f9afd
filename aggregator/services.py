"""The services one AS process holds, built once by ``create_app`` (Warehouse-style).

Views reach them through :func:`services`; tests build an app with their own settings rather
than swapping internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app

from aggregator.crypto import KeyRing
from aggregator.signing import SigningKeys
from aggregator.store import Store
from aggregator.upstream.contract import UpstreamPlugin
from config import Settings


@dataclass
class Services:
    settings: Settings
    keyring: KeyRing
    store: Store
    signing_keys: SigningKeys
    plugins: dict[str, UpstreamPlugin] = field(default_factory=dict)


def services() -> Services:
    return current_app.extensions["aggregator"]
