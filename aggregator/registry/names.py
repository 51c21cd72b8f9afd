"""Institution names as apps see them: unique per person, stable while registrations stay."""

from __future__ import annotations

from collections.abc import Iterable

from aggregator.store.registrations import RegistrationRecord


def unique_names(records: Iterable[RegistrationRecord]) -> dict[str, str]:
    """Registration id -> its institution's name, with " (2)", " (3)"... on repeats.

    Numbered over all of a person's registrations in the order they were made (ties broken
    by name, then id), so a name does not depend on which registrations one grant covers.
    """
    names: dict[str, str] = {}
    taken: set[str] = set()
    for record in sorted(records, key=order):
        name = record.institution_name
        number = 1
        while name in taken:
            number += 1
            name = f"{record.institution_name} ({number})"
        taken.add(name)
        names[record.id] = name
    return names


def order(record: RegistrationRecord) -> tuple[int, str, str]:
    """The order institutions are numbered and listed in."""
    return record.created_at, record.institution_name, record.id
