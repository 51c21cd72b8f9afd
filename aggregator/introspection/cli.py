"""``aggregator audit ...``: the operators' view of released upstream tokens (JSON lines)."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from aggregator.services import services


@click.group()
def audit() -> None:
    """Which apps received which people's upstream tokens (never the tokens)."""


@audit.command("list")
@click.option("--person", "username", help="Only this person's events (their username).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000),
              help="How many events, newest first.")
@with_appcontext
def audit_list(username: str | None, limit: int) -> None:
    """Print the newest events, one JSON object per line."""
    store = services().store
    if username is None:
        events = store.audit.recent(limit)
    else:
        person = store.people.find_by_username(username)
        if person is None:
            raise click.UsageError(f"no person called {username!r}")
        events = store.audit.for_person(person.id, limit)
    for event in events:
        click.echo(json.dumps(event.as_dict(), separators=(",", ":")))
