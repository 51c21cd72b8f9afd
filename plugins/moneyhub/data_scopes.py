"""Our data scopes -> Moneyhub's data scopes (seed 001 "Data access"), least privilege first.

| our scope           | Moneyhub scope           | why                                                  |
| ------------------- | ------------------------ | ---------------------------------------------------- |
| ``accounts:read``     | ``accounts:read``          | the accounts list                                    |
| ``balances:read``     | ``accounts:read``          | Moneyhub's balances are part of the account resource |
| ``transactions:read`` | ``transactions:read:all``  | incoming and outgoing, as our scope promises         |

Never requested: ``accounts_details:read`` (full account numbers), any ``:write`` scope.
"""

from __future__ import annotations

from collections.abc import Iterable

from aggregator.upstream.contract import DATA_SCOPES

SCOPE_MAP: dict[str, tuple[str, ...]] = {
    "accounts:read": ("accounts:read",),
    "balances:read": ("accounts:read",),
    "transactions:read": ("transactions:read:all",),
}
assert set(SCOPE_MAP) == DATA_SCOPES, "every data scope of the contract needs a mapping"


def moneyhub_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The Moneyhub scopes for ``scopes`` (unknown ones are ignored), sorted and unique."""
    return tuple(sorted({mapped for scope in scopes for mapped in SCOPE_MAP.get(scope, ())}))
