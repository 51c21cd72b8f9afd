"""One slow ``jwks_uri`` must not take the AS down: under gunicorn as `make run` starts it, a
client whose keys drip one byte every 3 s and 20 concurrent /token requests for it leave
/healthz answering in well under a second throughout."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.foundation.running import start_runner
from tests.oauth.apps import INITIAL_ACCESS_TOKEN, App, new_key
from tests.oauth.jwks_servers import drip_server

ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def test_a_dripping_jwks_uri_leaves_the_as_healthy(run_env, tmp_path):
    run_env["AGGREGATOR_INITIAL_ACCESS_TOKEN"] = INITIAL_ACCESS_TOKEN
    runner = start_runner(run_env, tmp_path / "runner.log")
    url = runner.url
    try:
        runner.wait_ready()
        with drip_server(3.0, limit=20) as dripping:
            registered = requests.post(f"{url}/register", timeout=10, json={
                "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": dripping.url,
                "grant_types": ["client_credentials"], "response_types": []},
                headers={"Authorization": f"Bearer {INITIAL_ACCESS_TOKEN}"})
            assert registered.status_code == 201, registered.text
            app = App(type("Issuer", (), {"url": url})(), registered.json(), new_key("EC"))

            def token(_: int) -> tuple[int, float]:
                started = time.monotonic()
                answer = requests.post(f"{url}/token", timeout=15, data={
                    "grant_type": "client_credentials", "client_assertion_type": ASSERTION,
                    "client_assertion": app.assertion()})
                return answer.status_code, time.monotonic() - started

            health: list[float] = []
            with ThreadPoolExecutor(20) as pool:
                answers = pool.map(token, range(20))
                until = time.monotonic() + 8  # past the 5 s fetch deadline, while the drip goes on
                while time.monotonic() < until:
                    started = time.monotonic()
                    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
                    health.append(time.monotonic() - started)
                    time.sleep(0.1)
                results = list(answers)
            assert {status for status, _ in results} == {401}
            assert max(elapsed for _, elapsed in results) < 7  # the fetch deadline, not the drip
            assert max(health) < 1, f"/healthz took {max(health):.2f} s"
            assert len(dripping.hits) == 1  # one fetch for every worker and request
            print(f"/healthz max {max(health) * 1000:.0f} ms over {len(health)} polls; "
                  f"/token max {max(e for _, e in results):.2f} s; fetches {len(dripping.hits)}")
    finally:
        runner.stop()
