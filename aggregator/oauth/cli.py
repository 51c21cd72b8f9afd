"""``aggregator clients ...``: register, list and delete apps from the command line.

``create`` takes the same metadata as RFC 7591 registration (options, or a JSON document with
``--metadata``) and prints the registration response, secrets included, once.
"""

from __future__ import annotations

import json
from typing import Any

import click
from flask.cli import with_appcontext
from marshmallow import ValidationError

from aggregator.errors import ProtocolError
from config import json_setting


def _json_argument(value: str, what: str) -> Any:
    """JSON text, or ``@path`` to a file holding it (read as configuration values are)."""
    try:
        return json_setting(value)
    except ValidationError as exc:
        raise click.BadParameter(f"{what}: {' '.join(exc.messages)}") from None


@click.group("clients")
def clients() -> None:
    """Manage the apps (OAuth clients) registered at this provider."""


@clients.command("create")
@click.option("--name", "client_name", help="The app's name, shown on the consent page.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI (repeatable).")
@click.option("--grant-type", "grant_types", multiple=True,
              type=click.Choice(["authorization_code", "refresh_token", "client_credentials"]),
              help="Repeatable; default authorization_code.")
@click.option("--response-type", "response_types", multiple=True,
              type=click.Choice(["code", "code id_token"]), help="Repeatable; default from grant types.")
@click.option("--scope", help="Space-separated scopes the app may ask for (default: all).")
@click.option("--auth-method", "token_endpoint_auth_method",
              type=click.Choice(["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]))
@click.option("--jwks", help="The app's public JWK Set: JSON or @file.")
@click.option("--jwks-uri", help="Where the app publishes its JWK Set.")
@click.option("--logo-uri")
@click.option("--client-uri")
@click.option("--id-token-alg", "id_token_signed_response_alg",
              type=click.Choice(["RS256", "ES256", "PS256"]))
@click.option("--require-par", "require_pushed_authorization_requests", is_flag=True, default=None,
              help="Accept only pushed authorization requests from this app.")
@click.option("--resource-server-for", "resource_server_for", multiple=True,
              help="A client_id whose tokens this app may introspect (repeatable).")
@click.option("--metadata", "metadata_json", help="RFC 7591 metadata as JSON or @file (options override).")
@with_appcontext
def create(metadata_json: str | None, jwks: str | None, **options: Any) -> None:
    """Register an app and print its client_id, secret and registration access token as JSON."""
    from aggregator.oauth.clients import register_client
    from aggregator.services import services

    document: dict[str, Any] = _json_argument(metadata_json, "--metadata") if metadata_json else {}
    if not isinstance(document, dict):
        raise click.BadParameter("--metadata must be a JSON object.")
    if jwks:
        document["jwks"] = _json_argument(jwks, "--jwks")
    for name, value in options.items():
        if value not in (None, ()):
            document[name] = list(value) if isinstance(value, tuple) else value
    svc = services()
    try:
        issued = register_client(svc, document, operator=True)
    except ProtocolError as exc:
        raise click.UsageError(f"{exc.error}: {exc.description}") from None
    click.echo(json.dumps(issued.document(svc), indent=2))


@clients.command("list")
@with_appcontext
def list_clients() -> None:
    """Print every registered app's metadata as a JSON array (no secrets)."""
    from aggregator.services import services

    click.echo(json.dumps([client.metadata() for client in services().store.clients.list()], indent=2))


@clients.command("delete")
@click.argument("client_id")
@with_appcontext
def delete(client_id: str) -> None:
    """Delete an app, every grant people gave it and every token it holds."""
    from aggregator.oauth.clients import delete_client
    from aggregator.services import services

    if not delete_client(services(), client_id):
        raise click.UsageError(f"no client {client_id!r}")
    click.echo(json.dumps({"deleted": client_id}))
