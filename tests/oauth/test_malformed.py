"""Bad input anywhere: always the RFC's JSON error with a 4xx, never a 500."""

from __future__ import annotations

import itertools

import requests

from tests.oauth.apps import INITIAL_ACCESS_TOKEN, make_app

BODIES = [
    ("application/json", b'{"grant_type": "client_credentials"}'),
    ("application/json", b"[1, 2"),
    ("text/plain", b"grant_type=client_credentials"),
    ("application/xml", b"<grant_type>client_credentials</grant_type>"),
    ("multipart/form-data; boundary=x",
     b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--x--"),
    ("multipart/form-data", b"garbage"),
    ("application/x-www-form-urlencoded", b""),
    ("application/x-www-form-urlencoded", b"%zz%%=&&==&grant_type"),
    ("application/x-www-form-urlencoded", b"\xff\xfe\x00grant_type=\xff"),
    ("application/x-www-form-urlencoded", b"grant_type=authorization_code&grant_type=refresh_token"),
    ("application/x-www-form-urlencoded", b"token=" + b"a" * 5000 + b"&token=\x00"),
    ("application/x-www-form-urlencoded; charset=utf-16", "token=x".encode("utf-16")),
    ("application/x-www-form-urlencoded", b"x=" + b"y" * 70_000),  # over the body limit
    (None, b"\x00\x01\x02"),
]

CLIENT_ENDPOINTS = ["/token", "/par", "/revoke", "/grants/some-grant"]


def assert_json_4xx(response: requests.Response, what: str) -> None:
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json"), (what, response.text[:300])
    assert response.json()["error"], what


def test_client_endpoints_answer_malformed_bodies_with_rfc_json(server):
    app = make_app(server, grant_types=["authorization_code", "refresh_token", "client_credentials"])
    auths = [None, (app.client_id, app.secret), ("nobody", "x")]
    for path, (content_type, body), auth in itertools.product(CLIENT_ENDPOINTS, BODIES, auths):
        headers = {"Content-Type": content_type} if content_type else {}
        for method in ("POST", "DELETE") if path.startswith("/grants") else ("POST",):
            response = requests.request(method, f"{server.url}{path}", data=body, headers=headers,
                                        auth=auth, timeout=10)
            assert_json_4xx(response, f"{method} {path} {content_type} {body[:30]!r} {auth}")


def test_browsers_asking_for_html_still_get_json_from_api_endpoints(server):
    for path in CLIENT_ENDPOINTS + ["/userinfo", "/register"]:
        method = "GET" if path.startswith("/grants") else "POST"
        response = requests.request(method, f"{server.url}{path}", data={"x": "y"}, timeout=10,
                                    headers={"Accept": "text/html"})
        assert_json_4xx(response, path)


def test_registration_rejects_malformed_documents(server):
    headers = {"Authorization": f"Bearer {INITIAL_ACCESS_TOKEN}"}
    documents = [b"", b"null", b"[]", b"42", b'"text"', b"{", b'{"redirect_uris": [1, 2]}',
                 b'{"redirect_uris": null}', b'{"grant_types": "authorization_code"}',
                 b'{"jwks": "not a set"}', b'{"jwks": {"keys": [{"kty": "RSA"}]}}',
                 b'{"client_name": 7}', b'{"require_pushed_authorization_requests": "maybe"}',
                 b'{"a": ' * 200 + b"1" + b"}" * 200, b"\xff\xfe"]
    for body in documents:
        for content_type in ("application/json", "text/plain"):
            response = requests.post(f"{server.url}/register", data=body, timeout=10,
                                     headers={**headers, "Content-Type": content_type})
            assert_json_4xx(response, f"{content_type} {body[:30]!r}")
    app = make_app(server)
    uri = app.info["registration_client_uri"]
    for body in documents:
        response = requests.put(uri, data=body, timeout=10, headers={
            "Authorization": f"Bearer {app.info['registration_access_token']}",
            "Content-Type": "application/json"})
        assert_json_4xx(response, f"PUT {body[:30]!r}")


def test_userinfo_with_malformed_credentials(server):
    for headers in ({"Authorization": "Bearer"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer \x00"}, {"Authorization": "Bearer " + "a" * 4000}):
        response = requests.get(f"{server.url}/userinfo", headers=headers, timeout=10)
        assert_json_4xx(response, str(headers)[:60])
    both = requests.post(f"{server.url}/userinfo", data={"access_token": "x"}, timeout=10,
                         headers={"Authorization": "Bearer y"})
    assert_json_4xx(both, "two tokens")


def test_the_authorization_endpoint_answers_garbage_with_a_page(server, nat):
    app = make_app(server)
    queries = ["", "client_id=", f"client_id={app.client_id}&redirect_uri=%zz",
               f"client_id={app.client_id}&request=...", f"client_id={app.client_id}&request_uri=urn:x",
               f"client_id={app.client_id}&request=a.b.c&request_uri=x", "client_id=" + "a" * 3000,
               f"client_id={app.client_id}&claims=" + "[" * 500]
    for query in queries:
        response = nat.http.get(f"{server.url}/authorize?{query}", allow_redirects=False)
        assert 400 <= response.status_code < 500 or response.status_code in (302, 303), query
    for content_type, body in BODIES:
        headers = {"Content-Type": content_type} if content_type else {}
        response = nat.http.post(f"{server.url}/authorize", data=body, headers=headers,
                                 allow_redirects=False)
        assert 400 <= response.status_code < 500, (content_type, body[:30], response.status_code)
    for path in ("/authorize/continue/unknown", "/authorize/continue/" + "x" * 500):
        assert nat.http.get(f"{server.url}{path}").status_code == 400
        response = nat.post_form(path, {"decision": "allow"}, form_page="/")
        assert response.status_code == 400


def test_a_wrong_content_type_gets_the_same_answer_at_every_client_endpoint(server):
    """One chain of opening steps: a JSON body is 415 invalid_request, never cached, everywhere."""
    app = make_app(server, grant_types=["authorization_code", "refresh_token", "client_credentials"])
    for path in ["/token", "/par", "/revoke", "/introspect", "/grants/some-grant"]:
        method = "DELETE" if path.startswith("/grants") else "POST"
        response = requests.request(method, f"{server.url}{path}", json={"token": "x"},
                                    auth=(app.client_id, app.secret), timeout=10)
        assert (response.status_code, response.json()["error"]) == (415, "invalid_request"), path
        assert response.headers["Cache-Control"] == "no-store", path
        assert response.headers["Pragma"] == "no-cache", path
