"""``aggregator events ...``: the apps' event streams, for operators."""

from __future__ import annotations

import json
import sys

import click
from flask.cli import with_appcontext

from aggregator.services import services


@click.group()
def events() -> None:
    """Event streams to apps (OpenID SSF) and their delivery worker."""


@events.command("run")
def events_run() -> None:
    """Run a delivery worker until SIGTERM/SIGINT (`make run` starts one beside gunicorn)."""
    from aggregator.events.delivery import main as run

    sys.exit(run())


@events.command("status")
@click.option("--failing", is_flag=True, help="Only the streams whose delivery gave up.")
@with_appcontext
def events_status(failing: bool) -> None:
    """The delivery queue, and one line per stream: status, failing, SETs waiting."""
    streams = services().store.event_streams
    click.echo(json.dumps({"queue": streams.queue_status()}))
    for record in streams.all():
        if failing and not record.failing:
            continue
        click.echo(json.dumps({
            "client_id": record.client_id, "stream_id": record.stream_id, "method": record.method,
            "status": record.status, "failing": record.failing, "failed_at": record.failed_at or None,
            "reason": record.reason or None, **streams.waiting(record.client_id),
        }))
