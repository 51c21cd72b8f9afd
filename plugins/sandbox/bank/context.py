"""The per-application services every view reaches through ``current_bank()``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app, g

if TYPE_CHECKING:
    from .oauth import BankAuthorizationServer
    from .settings import BankSettings
    from .store import BankStore, Faults

EXTENSION = "sandbox_bank"


@dataclass(frozen=True)
class Bank:
    settings: BankSettings
    store: BankStore
    server: BankAuthorizationServer


def current_bank() -> Bank:
    return current_app.extensions[EXTENSION]


def current_faults() -> Faults:
    """The fault settings, read from Redis once per request so one request sees one setting."""
    if "sandbox_faults" not in g:
        g.sandbox_faults = current_bank().store.load_faults()
    return g.sandbox_faults
