"""Institution names apps see: unique per person."""

from __future__ import annotations

from aggregator.registry.names import unique_names
from aggregator.store.registrations import RegistrationRecord


def registration(rid: str, name: str, created_at: int) -> RegistrationRecord:
    return RegistrationRecord(id=rid, person_id="p", provider="sandbox", institution_id="x",
                              institution_name=name, external_id=rid, endpoint="http://bank",
                              status="ok", created_at=created_at, updated_at=created_at)


def test_two_accounts_at_one_bank_get_numbered_in_the_order_they_were_linked():
    names = unique_names([
        registration("b", "Bank of Astoria", 20),
        registration("a", "Bank of Astoria", 10),
        registration("c", "Monami Card", 15),
    ])
    assert names == {"a": "Bank of Astoria", "c": "Monami Card", "b": "Bank of Astoria (2)"}


def test_a_number_never_collides_with_a_real_name():
    names = unique_names([
        registration("a", "Bank of Astoria", 10),
        registration("b", "Bank of Astoria (2)", 11),
        registration("c", "Bank of Astoria", 12),
    ])
    assert len(set(names.values())) == 3
    assert names["c"] == "Bank of Astoria (3)"
