"""The ``aggregator`` command for operators (a Flask CLI group).

Commands that need the store build the app from the environment, like the server does.
"""

from __future__ import annotations

import json
import sys

import click
from flask import Flask
from flask.cli import FlaskGroup, NoAppException, with_appcontext

from aggregator.services import services
from config import ConfigError


def _create_app() -> Flask:
    import os

    from aggregator import create_app
    from aggregator.runner import embedded_redis_url
    from config import load_settings

    try:
        environ = dict(os.environ)
        if not environ.get("REDIS_URL"):
            # alongside `make run`, talk to the Redis it embedded
            running = embedded_redis_url(load_settings(environ).data_dir)
            if running:
                environ["REDIS_URL"] = running
        return create_app(environ)
    except ConfigError as exc:
        # FlaskGroup reports this on commands that need the app; --help still works
        raise NoAppException(str(exc)) from None


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False)
def main() -> None:
    """Operate the aggregating authorization server."""


@main.command("run")
def run_command() -> None:
    """Start embedded Redis (unless REDIS_URL is set), the sandbox bank and the AS."""
    from aggregator.runner import main as run

    sys.exit(run())


@main.command("migrate")
@with_appcontext
def migrate_command() -> None:
    """Bring stored records to this version's schema (also done at every start; idempotent)."""
    from aggregator.store.migrations import SCHEMA, migrate, schema_version

    store = services().store
    report = migrate(store.redis)  # the app's start has usually done it already
    click.echo(json.dumps({"schema": schema_version(store.redis), "expected": SCHEMA,
                           "grants_rewritten": report.grants}))


@main.group()
def refresher() -> None:
    """The process that makes upstream refreshes, and its queue."""


@refresher.command("run")
def refresher_run() -> None:
    """Run a refresher until SIGTERM/SIGINT (`make run` starts one beside gunicorn)."""
    from aggregator.introspection.refresher import main as run

    sys.exit(run())


@refresher.command("status")
@with_appcontext
def refresher_status() -> None:
    """Queued and pending refresh jobs, and whether a refresher is alive."""
    click.echo(json.dumps(services().store.refresh_jobs.status()))


# ---------------------------------------------------------------- people


@main.group()
def users() -> None:
    """Manage people's accounts."""


@users.command("create")
@click.argument("username")
@click.password_option(prompt="Password (at least 12 characters)")
@with_appcontext
def users_create(username: str, password: str) -> None:
    from marshmallow import ValidationError

    from aggregator.accounts.forms import SignupForm
    from aggregator.store.people import UsernameTaken

    try:
        form = SignupForm().load({"username": username, "password": password})
    except ValidationError as exc:
        raise click.UsageError(json.dumps(exc.messages)) from None
    try:
        person = services().store.people.create(form["username"],
                                                 services().passwords.hash(form["password"]))
    except UsernameTaken:
        raise click.UsageError(f"username {username!r} is taken") from None
    click.echo(json.dumps({"id": person.id, "username": person.username,
                           "created_at": person.created_at}))


@users.command("list")
@with_appcontext
def users_list() -> None:
    people = services().store.people.list()
    click.echo(json.dumps([{"id": p.id, "username": p.username, "created_at": p.created_at}
                           for p in people], indent=2))


@users.command("delete")
@click.argument("username")
@click.confirmation_option(prompt="Delete this person, revoke their connections and grants?")
@with_appcontext
def users_delete(username: str) -> None:
    from aggregator.accounts.lifecycle import delete_person

    person = services().store.people.find_by_username(username)
    if person is None:
        raise click.UsageError(f"no person called {username!r}")
    problems = delete_person(services(), person)
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    click.echo(json.dumps({"deleted": person.username}))


# ---------------------------------------------------------------- keys


@main.group()
def keys() -> None:
    """Signing keys (JWKS) and encryption keys."""


@keys.command("rotate")
@with_appcontext
def keys_rotate() -> None:
    """Add new signing keys; the old ones stay published until their tokens expire."""
    new = services().signing_keys.rotate()
    click.echo(json.dumps({"new_signing_keys": new}))


@keys.command("list")
@with_appcontext
def keys_list() -> None:
    records = services().store.signing_keys.all()
    click.echo(json.dumps([{"kid": r.kid, "alg": r.alg, "created_at": r.created_at,
                            "retired_at": r.retired_at} for r in records], indent=2))


@keys.command("new-encryption-key")
def keys_new_encryption_key() -> None:
    """Print a new ``kid:key`` item: prepend it to AGGREGATOR_ENCRYPTION_KEYS to rotate."""
    from aggregator.crypto import KeyRing

    click.echo(KeyRing.new_key_item())


@keys.command("rotate-encryption")
@with_appcontext
def keys_rotate_encryption() -> None:
    """Development key ring only: add a new primary key (old ones keep decrypting)."""
    from aggregator.crypto import save_dev_key_ring

    svc = services()
    if svc.settings.encryption_keys:
        raise click.UsageError("AGGREGATOR_ENCRYPTION_KEYS is set: prepend the output of "
                               "`aggregator keys new-encryption-key` to it instead.")
    ring = svc.keyring.rotated()
    save_dev_key_ring(ring, svc.settings.data_dir)
    click.echo(json.dumps({"primary": ring.primary, "keys": ring.key_ids}))


# ---------------------------------------------------------------- more groups

#: Command groups contributed by other packages (the provider, audit, plugins); a plugin package
#: can add its own under this entry-point group.
COMMANDS_ENTRY_POINT_GROUP = "aggregator.commands"


def _add_contributed_commands() -> None:
    from importlib.metadata import entry_points

    for entry in entry_points(group=COMMANDS_ENTRY_POINT_GROUP):
        main.add_command(entry.load(), entry.name)


_add_contributed_commands()
