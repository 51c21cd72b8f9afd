"""Client authentication: each app with the one method it registered, and nothing weaker."""

from __future__ import annotations

import base64
import json
import time

import requests
from joserfc import jwt
from joserfc.jwk import OctKey

from aggregator.testing.servers import serve_wsgi
from tests.oauth.apps import make_app, new_key

ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def revoke_with(server, data=None, **kwargs) -> requests.Response:
    """/revoke of an unknown token answers 200 exactly when the client authenticated."""
    return requests.post(f"{server.url}/revoke", data={"token": "unknown", **(data or {})},
                         timeout=10, **kwargs)


def assert_invalid_client(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert response.headers["Cache-Control"] == "no-store"


def test_secret_basic_and_post_each_only_as_registered(server):
    basic = make_app(server, grant_types=["client_credentials"], response_types=[], redirect_uris=[])
    post = make_app(server, grant_types=["client_credentials"], response_types=[], redirect_uris=[],
                    token_endpoint_auth_method="client_secret_post")
    assert revoke_with(server, auth=(basic.client_id, basic.secret)).status_code == 200
    assert revoke_with(server, {"client_id": post.client_id,
                                "client_secret": post.secret}).status_code == 200
    # the other method, with the right secret, is refused
    assert_invalid_client(revoke_with(server, {"client_id": basic.client_id,
                                               "client_secret": basic.secret}))
    assert_invalid_client(revoke_with(server, auth=(post.client_id, post.secret)))
    assert_invalid_client(revoke_with(server, auth=(basic.client_id, basic.secret + "x")))
    assert_invalid_client(revoke_with(server, auth=("nobody", "secret")))


def test_basic_credentials_are_form_urlencoded_then_base64(server):
    app = make_app(server)
    raw = base64.b64encode(f"{app.client_id}:{app.secret}".encode()).decode()
    ok = revoke_with(server, headers={"Authorization": f"Basic {raw}"})
    assert ok.status_code == 200
    assert_invalid_client(revoke_with(server, headers={"Authorization": "Basic !!!"}))


def test_a_confidential_client_can_never_authenticate_with_none(server):
    app = make_app(server)
    assert_invalid_client(revoke_with(server, {"client_id": app.client_id}))
    code_exchange = requests.post(f"{server.url}/token", timeout=10, data={
        "grant_type": "authorization_code", "code": "x", "client_id": app.client_id,
        "redirect_uri": "https://app.example/callback", "code_verifier": "v" * 43})
    assert_invalid_client(code_exchange)


def test_a_public_client_authenticates_with_its_client_id_only(server):
    app = make_app(server, token_endpoint_auth_method="none",
                   redirect_uris=["http://127.0.0.1:9/cb"])
    assert revoke_with(server, {"client_id": app.client_id}).status_code == 200
    assert_invalid_client(revoke_with(server, {"client_id": app.client_id, "client_secret": "x"}))


def test_private_key_jwt_audiences_issuer_token_endpoint_or_the_endpoint_called(server):
    app = make_app(server, key=new_key("EC"))
    for audience in (server.url, f"{server.url}/token", f"{server.url}/revoke"):
        response = revoke_with(server, {"client_assertion_type": ASSERTION,
                                        "client_assertion": app.assertion(audience)})
        assert response.status_code == 200, (audience, response.text)
    for audience in (f"{server.url}/par", "https://elsewhere.example"):
        assert_invalid_client(revoke_with(server, {"client_assertion_type": ASSERTION,
                                                   "client_assertion": app.assertion(audience)}))


def test_private_key_jwt_rules_of_rfc_7523(server):
    app = make_app(server, key=new_key("RSA"))
    intruder = new_key("RSA")
    now = int(time.time())

    def attempt(assertion: str, **extra: str) -> requests.Response:
        return revoke_with(server, {"client_assertion_type": ASSERTION, "client_assertion": assertion,
                                    **extra})

    replayed = app.assertion()
    assert attempt(replayed).status_code == 200
    assert_invalid_client(attempt(replayed))  # jti single use
    assert_invalid_client(attempt(app.assertion(exp=now - 120)))
    assert_invalid_client(attempt(app.assertion(exp=None)))
    assert_invalid_client(attempt(app.assertion(exp=now + 7200)))
    assert_invalid_client(attempt(app.assertion(jti=None)))
    assert_invalid_client(attempt(app.assertion(iss="someone-else")))
    assert_invalid_client(attempt(app.assertion(), client_id="someone-else"))
    # signed by another key
    forged = jwt.encode({"alg": "PS256", "kid": app.key.kid},
                        {"iss": app.client_id, "sub": app.client_id, "aud": server.url,
                         "exp": now + 60, "jti": "forged"}, intruder, algorithms=["PS256"])
    assert_invalid_client(attempt(forged))
    # unsigned, and MAC-signed with a guessable secret
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(
        f'{{"iss":"{app.client_id}","sub":"{app.client_id}","aud":"{server.url}",'
        f'"exp":{now + 60},"jti":"none"}}'.encode()).rstrip(b"=").decode()
    assert_invalid_client(attempt(f"{header}.{body}."))
    hmac_signed = jwt.encode({"alg": "HS256"}, {"iss": app.client_id, "sub": app.client_id,
                                                "aud": server.url, "exp": now + 60, "jti": "hs"},
                             OctKey.import_key("x" * 32), algorithms=["HS256"])
    assert_invalid_client(attempt(hmac_signed))
    assert_invalid_client(attempt("not-a-jwt"))
    assert_invalid_client(revoke_with(server, {"client_assertion_type": "urn:other",
                                               "client_assertion": app.assertion()}))


def test_private_key_jwt_keys_from_a_jwks_uri(server):
    """The app publishes its public keys at a URL of its own; the AS fetches them."""
    key = new_key("EC")
    body = json.dumps({"keys": [key.as_dict(private=False)]}).encode()

    def jwks_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    with serve_wsgi(jwks_app) as published:
        app = make_app(server, token_endpoint_auth_method="private_key_jwt",
                       jwks_uri=f"{published.url}/jwks")
        app.key = key
        assert revoke_with(server, {"client_assertion_type": ASSERTION,
                                    "client_assertion": app.assertion()}).status_code == 200
        app.key = new_key("EC")  # a key the app never published
        assert_invalid_client(revoke_with(server, {"client_assertion_type": ASSERTION,
                                                   "client_assertion": app.assertion()}))


def test_two_methods_at_once_are_refused(server):
    app = make_app(server)
    response = revoke_with(server, {"client_id": app.client_id, "client_secret": app.secret},
                           auth=(app.client_id, app.secret))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
