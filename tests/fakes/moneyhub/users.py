"""User management at the identity service base (seed 001 "User Management"), bank icons."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from .catalog import icon_svg
from .context import fake
from .errors import InsufficientScope, InvalidRequest, InvalidToken, NotFound
from .models import AccessToken, User

bp = Blueprint("users", __name__)


def bearer(scope: str) -> AccessToken:
    """A client-credentials token (no ``sub``) carrying ``scope`` (RFC 6750 §3.1 errors)."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() != "bearer ":
        raise InvalidToken("a Bearer access token is required")
    token = fake().access_token(header[7:].strip())
    if token is None:
        raise InvalidToken("the access token is unknown or expired")
    if token.grant_type != "client_credentials" or token.sub is not None:
        raise InsufficientScope(f"a client_credentials token with {scope} is required")
    if scope not in token.scopes:
        raise InsufficientScope(f"the token lacks the {scope} scope")
    return token


def _user(user_id: str, token: AccessToken) -> User:
    user = fake().user(user_id, token.client_id)
    if user is None:
        raise NotFound("no such user for this client")
    return user


@bp.post("/users")
def create_user() -> tuple[Response, int]:
    token = bearer("user:create")
    body = request.get_json(silent=True)
    body = body if body is not None else {}
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    client_user_id = body.get("clientUserId")
    if client_user_id is not None and (not isinstance(client_user_id, str) or not client_user_id):
        raise InvalidRequest("clientUserId must be a non-empty string")
    user = fake().create_user(token.client_id, client_user_id)
    return jsonify(user.as_json(" ".join(sorted(token.scopes)))), 201


@bp.get("/users")
def list_users() -> Response:
    token = bearer("user:read")
    return jsonify([user.as_json() for user in fake().users(token.client_id)])


@bp.get("/users/<user_id>")
def get_user(user_id: str) -> Response:
    token = bearer("user:read")
    return jsonify(_user(user_id, token).as_json())


@bp.delete("/users/<user_id>")
def delete_user(user_id: str) -> tuple[str, int]:
    token = bearer("user:delete")
    fake().delete_user(_user(user_id, token).user_id)
    return "", 204


@bp.get("/users/<user_id>/connections")
def list_connections(user_id: str) -> Response:
    token = bearer("user:read")
    user = _user(user_id, token)
    return jsonify(data=[c.as_json() for c in fake().connections(user.user_id)], meta={})


@bp.delete("/users/<user_id>/connection/<connection_id>")
def delete_connection(user_id: str, connection_id: str) -> tuple[str, int]:
    token = bearer("user:delete")
    user = _user(user_id, token)
    connection = fake().connection(connection_id)
    if connection is None or connection.user_id != user.user_id:
        raise NotFound("no such connection for this user")
    fake().delete_connection(connection_id)
    return "", 204


@bp.get("/bank-icons/<bank_ref>")
def bank_icon(bank_ref: str) -> Response:
    """The bank's SVG; 404 when it has none, unless ``defaultIcon=true`` (seed 001)."""
    svg = icon_svg(bank_ref)
    if svg is None and request.args.get("defaultIcon") == "true":
        svg = icon_svg("default")
    if svg is None:
        raise NotFound("no icon for this bank")
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response
