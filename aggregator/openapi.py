"""The OpenAPI 3.1 document of every JSON endpoint, served at ``GET /openapi.json``.

Generated with apispec's marshmallow plugin from the schemas the endpoints are described by:
client metadata (:mod:`aggregator.oauth.client_metadata`, what ``/register`` validates with),
the provider's requests and responses (:mod:`aggregator.oauth.schemas`), introspection
(:mod:`aggregator.introspection.schemas`), the event streams (:mod:`aggregator.events.schemas`),
the probes (:mod:`aggregator.health`) and the RFC 6749 §5.2 error body
(:class:`aggregator.errors.ErrorSchema`). The person's HTML pages (``/authorize``, sign-up,
connections, ...) are not part of it.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import jsonify

from aggregator.errors import ErrorSchema, api_blueprint
from aggregator.events.schemas import (
    PollRequestSchema,
    PollResponseSchema,
    StatusRequestSchema,
    StatusSchema,
    StreamRequestSchema,
    StreamSchema,
    VerificationRequestSchema,
)
from aggregator.health import HealthSchema
from aggregator.introspection.schemas import IntrospectionRequestSchema, IntrospectionResponseSchema
from aggregator.introspection.signed import MEDIA_TYPE as SIGNED_INTROSPECTION
from aggregator.oauth.client_metadata import ClientMetadataSchema
from aggregator.oauth.params import FORM
from aggregator.oauth.schemas import (
    ClientInformationSchema,
    ClientUpdateSchema,
    GrantSchema,
    JwkSetSchema,
    PushedAuthorizationRequestSchema,
    PushedAuthorizationResponseSchema,
    RevocationRequestSchema,
    ServerMetadataSchema,
    TokenRequestSchema,
    TokenResponseSchema,
    UserinfoRequestSchema,
    UserinfoSchema,
)
from aggregator.payments.schemas import PaymentSchema
from aggregator.services import services

PATH = "/openapi.json"
JSON = "application/json"

bp = api_blueprint("openapi", __name__)

SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "clientSecretBasic": {
        "type": "http", "scheme": "basic",
        "description": "client_secret_basic (RFC 6749 §2.3.1): form-urlencoded client_id and "
                       "client_secret. The other methods go in the form body instead: client_secret_post "
                       "(client_id, client_secret), private_key_jwt (client_assertion_type, "
                       "client_assertion, RFC 7523) and none (client_id, public clients only).",
    },
    "initialAccessToken": {
        "type": "http", "scheme": "bearer",
        "description": "RFC 7591 §3: the operator's AGGREGATOR_INITIAL_ACCESS_TOKEN.",
    },
    "registrationAccessToken": {
        "type": "http", "scheme": "bearer",
        "description": "RFC 7592 §3: the registration_access_token of the last registration "
                       "response (each read or update returns a new one).",
    },
    "accessToken": {
        "type": "http", "scheme": "bearer",
        "description": "RFC 6750: an access token issued with the openid scope.",
    },
    "eventsToken": {
        "type": "http", "scheme": "bearer",
        "description": "RFC 6750 (or RFC 9449 DPoP): the app's own access token from the client "
                       "credentials grant with the scope events.",
    },
}

#: one reusable error response per status: the RFC 6749 §5.2 body, with the codes it may carry
ERRORS: dict[int, tuple[str, str]] = {
    400: ("InvalidRequest", "invalid_request (a missing, repeated or malformed parameter), or the "
                            "endpoint's own code: invalid_grant, invalid_scope, unauthorized_client, "
                            "unsupported_grant_type, invalid_client_metadata, invalid_redirect_uri, ..."),
    401: ("Unauthorized", "invalid_client (client authentication failed) or invalid_token "
                          "(a missing or wrong Bearer token), with WWW-Authenticate."),
    403: ("Forbidden", "access_denied (registration is closed) or insufficient_scope."),
    404: ("NotFound", "not_found, or invalid_grant_id for a grant the client does not hold."),
    413: ("TooLarge", "invalid_request: the request body is too large."),
    415: ("UnsupportedMediaType", "invalid_request: the body is not of the documented content type."),
    409: ("Conflict", "invalid_request: the app has its event stream already (one per app)."),
}

#: client-authenticated endpoints: the Basic header, or (``{}``) the form-body methods
CLIENT_AUTH: list[dict[str, list[str]]] = [{"clientSecretBasic": []}, {}]
#: what every client-authenticated form endpoint may answer besides its success
FORM_ERRORS = (400, 401, 413, 415)
#: the example registration: a client_credentials-only client (RFC 7591 §2.1)
MACHINE_CLIENT = {"client_name": "Batch job", "grant_types": ["client_credentials"], "response_types": []}


def _json(description: str, schema: Any, media_type: str = JSON) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": schema}}}


def _body(schema: Any, media_type: str = FORM, *, required: bool = True,
          example: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"required": required, "content": {media_type: content}}


def _errors(*codes: int) -> dict[int, str]:
    return {code: ERRORS[code][0] for code in codes}


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    return {"in": "path", "name": name, "required": True, "description": description,
            "schema": {"type": "string", "minLength": 1}}


def _paths() -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """(path, operations, path parameters) for every JSON endpoint."""
    discovery = {"summary": "Authorization server metadata (RFC 8414, OpenID Connect Discovery)",
                 "security": [],
                 "responses": {200: _json("The metadata.", ServerMetadataSchema)}}
    client_information = _json("The client information, with a new registration access token.",
                               ClientInformationSchema)
    return [
        ("/.well-known/openid-configuration", {"get": {**discovery, "operationId": "openidConfiguration"}},
         []),
        ("/.well-known/oauth-authorization-server",
         {"get": {**discovery, "operationId": "oauthAuthorizationServer"}}, []),
        ("/jwks", {"get": {
            "operationId": "jwks", "summary": "The AS's public signing keys (RFC 7517)", "security": [],
            "responses": {200: _json("The JWK Set.", JwkSetSchema, "application/jwk-set+json")}}}, []),
        ("/register", {"post": {
            "operationId": "registerClient", "summary": "Dynamic client registration (RFC 7591)",
            "security": [{"initialAccessToken": []}],
            "requestBody": _body(ClientMetadataSchema, JSON, example=MACHINE_CLIENT),
            "responses": {201: _json("Registered; secrets are shown only now.", ClientInformationSchema),
                          **_errors(400, 401, 403, 413, 415)}}}, []),
        ("/register/{client_id}", {
            "get": {"operationId": "readClient", "summary": "Read the registration (RFC 7592 §2.1)",
                    "security": [{"registrationAccessToken": []}],
                    "responses": {200: client_information, **_errors(401, 404)}},
            "put": {"operationId": "updateClient", "summary": "Replace the metadata (RFC 7592 §2.2)",
                    "security": [{"registrationAccessToken": []}],
                    "requestBody": _body(ClientUpdateSchema, JSON,
                                         example={**MACHINE_CLIENT, "client_id": "BrHOHirALXmt1BAC-sDchw"}),
                    "responses": {200: client_information, **_errors(400, 401, 404, 413, 415)}},
            "delete": {"operationId": "deleteClient", "summary": "Delete the client (RFC 7592 §2.3)",
                       "security": [{"registrationAccessToken": []}],
                       "responses": {204: {"description": "Deleted, with its grants and tokens."},
                                     **_errors(401, 404)}},
        }, [_path_parameter("client_id", "The client's id.")]),
        ("/par", {"post": {
            "operationId": "pushAuthorizationRequest", "summary": "Pushed authorization request (RFC 9126)",
            "security": CLIENT_AUTH, "requestBody": _body(PushedAuthorizationRequestSchema),
            "responses": {201: _json("Pushed: use request_uri once at /authorize.",
                                     PushedAuthorizationResponseSchema), **_errors(*FORM_ERRORS)}}}, []),
        ("/token", {"post": {
            "operationId": "token", "summary": "Token endpoint (RFC 6749 §3.2)",
            "security": CLIENT_AUTH,
            "requestBody": _body(TokenRequestSchema, example={"grant_type": "client_credentials"}),
            "responses": {200: _json("The tokens.", TokenResponseSchema), **_errors(*FORM_ERRORS)}}}, []),
        ("/introspect", {"post": {
            "operationId": "introspect", "summary": "Aggregated token introspection (RFC 7662, RFC 9701)",
            "security": CLIENT_AUTH, "requestBody": _body(IntrospectionRequestSchema),
            "responses": {200: {"description": "The token's members and institutions; a signed JWT "
                                               f"with Accept: {SIGNED_INTROSPECTION}.",
                                "content": {JSON: {"schema": IntrospectionResponseSchema},
                                            SIGNED_INTROSPECTION: {"schema": {"type": "string"}}}},
                          **_errors(*FORM_ERRORS)}}}, []),
        ("/revoke", {"post": {
            "operationId": "revoke", "summary": "Token revocation (RFC 7009)",
            "security": CLIENT_AUTH, "requestBody": _body(RevocationRequestSchema),
            "responses": {200: {"description": "Revoked, or the token was unknown (an empty body)."},
                          **_errors(*FORM_ERRORS)}}}, []),
        ("/grants/{grant_id}", {
            "get": {"operationId": "readGrant", "summary": "Query a grant (OpenID Grant Management)",
                    "description": "Client-authenticated: the Basic header, or the form body sent "
                                   "with the request.",
                    "security": CLIENT_AUTH,
                    "responses": {200: _json("The grant.", GrantSchema), **_errors(*FORM_ERRORS, 404)}},
            "delete": {"operationId": "revokeGrant", "summary": "Revoke a grant and all its tokens",
                       "security": CLIENT_AUTH,
                       "responses": {204: {"description": "Revoked."}, **_errors(*FORM_ERRORS, 404)}},
        }, [_path_parameter("grant_id", "The grant_id of a token response.")]),
        ("/userinfo", {
            "get": {"operationId": "userinfo", "summary": "UserInfo (OIDC Core §5.3)",
                    "security": [{"accessToken": []}],
                    "responses": {200: _json("The claims.", UserinfoSchema), **_errors(400, 401, 403)}},
            "post": {"operationId": "userinfoPost", "summary": "UserInfo, token in the header or the body",
                     "security": [{"accessToken": []}, {}],
                     "requestBody": _body(UserinfoRequestSchema, required=False),
                     "responses": {200: _json("The claims.", UserinfoSchema),
                                   **_errors(400, 401, 403, 413)}},
        }, []),
        ("/payments/{payment_id}", {
            "get": {"operationId": "readPayment", "summary": "A payment made to the app (RFC 9396 "
                                                             "payment_initiation)",
                    "description": "The app's access token with the payments scope; only the app "
                                   "the payment was made to reads it (404 otherwise).",
                    "security": [{"accessToken": []}],
                    "responses": {200: _json("The payment.", PaymentSchema), **_errors(400, 401, 403, 404)}},
        }, [_path_parameter("payment_id", "The payment_id of the token response's "
                                          "payment_initiation entry.")]),
        ("/healthz", {"get": {"operationId": "healthz", "summary": "Liveness", "security": [],
                              "responses": {200: _json("Up.", HealthSchema)}}}, []),
        ("/readyz", {"get": {"operationId": "readyz", "summary": "Readiness: Redis answers", "security": [],
                             "responses": {200: _json("Ready.", HealthSchema),
                                           503: _json("Redis is unreachable.", HealthSchema)}}}, []),
        (PATH, {"get": {"operationId": "openapi", "summary": "This document", "security": [],
                        "responses": {200: _json("OpenAPI 3.1.", {"type": "object"})}}}, []),
    ] + _event_paths()


def _event_paths() -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """The SSF transmitter (:mod:`aggregator.events.transmitter`, docs/api.md "Events")."""
    app = [{"eventsToken": []}]
    stream_id = [{"in": "query", "name": "stream_id", "required": False,
                  "schema": {"type": "string", "minLength": 1, "maxLength": 100}}]
    stream = _json("The stream's configuration (SSF 1.0 §8.1.1).", StreamSchema)
    status = _json("The stream's status (SSF 1.0 §8.1.2).", StatusSchema)
    push = {"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": "https://app.example/ssf"}}
    return [
        ("/.well-known/ssf-configuration", {"get": {
            "operationId": "ssfConfiguration", "summary": "SSF transmitter metadata (SSF 1.0 §7.1)",
            "security": [], "responses": {200: _json("The metadata.", {"type": "object"})}}}, []),
        ("/ssf/stream", {
            "post": {"operationId": "createStream", "summary": "Create the app's stream (SSF 1.0 §8.1.1.1)",
                     "security": app, "requestBody": _body(StreamRequestSchema, JSON, example=push),
                     "responses": {201: stream, **_errors(400, 401, 403, 409, 413, 415)}},
            "get": {"operationId": "readStream", "summary": "Read the app's stream (§8.1.1.2): "
                                                            "one object with stream_id, else a list",
                    "security": app, "parameters": stream_id,
                    "responses": {200: _json("The stream, or a list of it.", {}),
                                  **_errors(400, 401, 403, 404)}},
            "put": {"operationId": "replaceStream", "summary": "Replace the configuration (§8.1.1.4)",
                    "security": app, "requestBody": _body(StreamRequestSchema, JSON),
                    "responses": {200: stream, **_errors(400, 401, 403, 404, 413, 415)}},
            "patch": {"operationId": "updateStream", "summary": "Update the members sent (§8.1.1.3)",
                      "security": app, "requestBody": _body(StreamRequestSchema, JSON),
                      "responses": {200: stream, **_errors(400, 401, 403, 404, 413, 415)}},
            "delete": {"operationId": "deleteStream", "summary": "Delete the stream (§8.1.1.5)",
                       "security": app, "parameters": stream_id,
                       "responses": {204: {"description": "Deleted, with the SETs waiting for it."},
                                     **_errors(400, 401, 403, 404)}},
        }, []),
        ("/ssf/status", {
            "get": {"operationId": "readStreamStatus", "summary": "Read the stream's status (§8.1.2.1)",
                    "security": app, "parameters": stream_id,
                    "responses": {200: status, **_errors(400, 401, 403, 404)}},
            "post": {"operationId": "updateStreamStatus",
                     "summary": "Enable, pause or disable the stream (§8.1.2.2)",
                     "security": app, "requestBody": _body(StatusRequestSchema, JSON),
                     "responses": {200: status, **_errors(400, 401, 403, 404, 413, 415)}},
        }, []),
        ("/ssf/verify", {"post": {
            "operationId": "verifyStream", "summary": "Ask for a verification event (§8.1.4)",
            "security": app, "requestBody": _body(VerificationRequestSchema, JSON),
            "responses": {204: {"description": "A verification SET is on its way."},
                          429: _json("slow_down: more than 30 requests this minute.", ErrorSchema),
                          **_errors(400, 401, 403, 404, 413, 415)}}}, []),
        ("/ssf/poll", {"post": {
            "operationId": "pollEvents", "summary": "Poll delivery (RFC 8936 §2.4)",
            "security": app, "requestBody": _body(PollRequestSchema, JSON),
            "responses": {200: _json("SETs by jti (RFC 8936 §2.5).", PollResponseSchema),
                          **_errors(400, 401, 403, 404, 413, 415)}}}, []),
    ]


@lru_cache(maxsize=8)
def openapi_document(issuer: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the AS at ``issuer`` (built once per issuer)."""
    spec = APISpec(
        title="Aggregating authorization server", version=_version(), openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()], servers=[{"url": issuer}],
        info={"description": "OAuth 2.0 / OpenID Connect provider whose introspection hands an app "
                             "the person's institutions. Every JSON error is RFC 6749 §5.2 "
                             "{error, error_description} with a 4xx status."},
    )
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    for name, description in ERRORS.values():
        spec.components.response(name, _json(description, ErrorSchema))
    for path, operations, parameters in _paths():
        spec.path(path=path, operations=operations, parameters=parameters)
    return spec.to_dict()


def _version() -> str:
    try:
        return version("aggregator")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0"


@bp.get(PATH)
def openapi():
    response = jsonify(openapi_document(services().issuer))
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
