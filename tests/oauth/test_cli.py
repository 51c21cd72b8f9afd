"""`aggregator clients create|list|delete`, as an operator registers apps without HTTP."""

from __future__ import annotations

import json

from aggregator.crypto import token_hash
from aggregator.oauth.cli import clients
from tests.oauth.apps import REDIRECT, new_key


def run(server, *args: str):
    result = server.app.test_cli_runner().invoke(clients, list(args), catch_exceptions=False)
    return result


def test_create_list_delete(server, tmp_path):
    created = run(server, "create", "--name", "Grapher", "--redirect-uri", REDIRECT,
                  "--grant-type", "authorization_code", "--grant-type", "refresh_token")
    assert created.exit_code == 0, created.output
    info = json.loads(created.output)
    assert info["client_name"] == "Grapher" and info["redirect_uris"] == [REDIRECT]
    stored = server.services.store.clients.get(info["client_id"])
    assert stored.client_secret_hash == token_hash(info["client_secret"])

    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [new_key("EC").as_dict(private=False)]}))
    machine = run(server, "create", "--name", "Batch", "--grant-type", "client_credentials",
                  "--auth-method", "private_key_jwt", "--jwks", f"@{jwks}",
                  "--resource-server-for", info["client_id"])
    assert machine.exit_code == 0, machine.output
    machine_info = json.loads(machine.output)
    assert machine_info["response_types"] == [] and "client_secret" not in machine_info
    assert machine_info["resource_server_for"] == [info["client_id"]]

    listed = json.loads(run(server, "list").output)
    assert {c["client_id"] for c in listed} == {info["client_id"], machine_info["client_id"]}
    assert all("client_secret" not in c for c in listed)

    assert json.loads(run(server, "delete", info["client_id"]).output) == {"deleted": info["client_id"]}
    assert server.services.store.clients.get(info["client_id"]) is None
    missing = server.app.test_cli_runner().invoke(clients, ["delete", info["client_id"]])
    assert missing.exit_code != 0


def test_create_validates_like_registration(server):
    result = server.app.test_cli_runner().invoke(clients, ["create", "--redirect-uri",
                                                           "http://app.example/cb"])
    assert result.exit_code != 0 and "invalid_redirect_uri" in result.output
    from_json = run(server, "create", "--metadata", json.dumps({"redirect_uris": [REDIRECT],
                                                                "client_name": "From JSON"}))
    assert json.loads(from_json.output)["client_name"] == "From JSON"
