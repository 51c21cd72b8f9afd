"""``context.http``: the outbound client every plugin gets, against a real local HTTP server."""

from __future__ import annotations

import time

import pytest
from flask import Flask, Response, redirect, request

from aggregator.testing.servers import reserve_port, serve_wsgi
from aggregator.upstream.contract import UpstreamUnavailable
from aggregator.upstream.http import UpstreamHTTP

SECRET = "tok-3f9a1c"


def upstream_app() -> Flask:
    app = Flask(__name__)

    @app.get("/slow")
    def slow() -> str:
        time.sleep(float(request.args.get("seconds", "1")))
        return "late"

    @app.get("/moved")
    def moved() -> Response:
        return redirect("/elsewhere", code=302)  # type: ignore[return-value]

    @app.get("/elsewhere")
    def elsewhere() -> str:
        return "followed"

    @app.get("/big")
    def big() -> Response:
        size = int(request.args["size"])
        if request.args.get("chunked"):
            return Response(b"x" * 1024 for _ in range(size // 1024))  # no Content-Length
        return Response(b"x" * size)

    return app


@pytest.fixture(scope="module")
def upstream():
    with serve_wsgi(upstream_app()) as server:
        yield server


def test_a_slow_upstream_times_out_as_unavailable_naming_only_the_host(upstream):
    http = UpstreamHTTP(0.3)
    with pytest.raises(UpstreamUnavailable) as caught:
        http.get(f"{upstream.url}/slow?seconds=2&access_token={SECRET}")
    assert "127.0.0.1" in caught.value.description
    assert SECRET not in caught.value.description and "?" not in caught.value.description
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_caller_may_give_its_own_timeout(upstream):
    assert UpstreamHTTP(0.1).get(f"{upstream.url}/slow?seconds=0.3", timeout=5).text == "late"


def test_a_refused_connection_is_unavailable_without_the_query():
    http = UpstreamHTTP(2)
    with pytest.raises(UpstreamUnavailable, match="cannot be reached") as caught:
        http.post(f"http://127.0.0.1:{reserve_port()}/token?code={SECRET}",
                  data={"refresh_token": SECRET})
    assert "127.0.0.1" in caught.value.description
    assert SECRET not in caught.value.description and "/token" not in caught.value.description


def test_redirects_are_not_followed_unless_asked(upstream):
    http = UpstreamHTTP(5)
    answer = http.get(f"{upstream.url}/moved")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/elsewhere")
    assert http.post(f"{upstream.url}/moved").status_code in (302, 405)
    assert http.get(f"{upstream.url}/moved", allow_redirects=True).text == "followed"


def test_bodies_larger_than_the_cap_are_refused(upstream):
    http = UpstreamHTTP(5, max_body=10_000)
    assert len(http.get(f"{upstream.url}/big?size=10000").content) == 10_000
    with pytest.raises(UpstreamUnavailable, match="larger than 10000 bytes"):
        http.get(f"{upstream.url}/big?size=20000")  # refused on its Content-Length
    with pytest.raises(UpstreamUnavailable, match="larger than 10000 bytes"):
        http.get(f"{upstream.url}/big?size=20480&chunked=1")  # refused while reading


def test_status_codes_are_answers_not_failures(upstream):
    assert UpstreamHTTP(5).get(f"{upstream.url}/no-such-path").status_code == 404


def test_no_cookies_are_kept_between_people(upstream):
    app = Flask(__name__)

    @app.get("/set")
    def set_cookie() -> Response:
        answer = Response("ok")
        answer.set_cookie("session", "person-a")
        return answer

    @app.get("/read")
    def read_cookie() -> str:
        return request.cookies.get("session", "none")

    with serve_wsgi(app) as server:
        http = UpstreamHTTP(5)
        http.get(f"{server.url}/set")
        assert http.get(f"{server.url}/read").text == "none"
