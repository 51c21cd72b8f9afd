"""``/openapi.json``: a valid OpenAPI 3.1 document of every JSON endpoint, and a property-based
fuzz run (schemathesis) of every documented operation against a live AS on loopback.

The fuzz run sends, per operation, ``FUZZ_EXAMPLES`` positive and as many negative examples
(default 8: ``make test``; ``make fuzz`` sets 500), with valid credentials for the operation's
security scheme, and requires of every answer: no 5xx, a documented status, the documented
content type and a body that matches the documented schema.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass, field

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from aggregator.openapi import PATH

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
INITIAL_ACCESS_TOKEN = "initial-access-token-for-the-fuzz-run"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
#: the blueprints whose every route answers JSON (the person's pages are HTML)
JSON_BLUEPRINTS = ("oauth", "introspection", "health", "openapi")


@dataclass
class FuzzTarget:
    """A live AS with registration open, one confidential client and its access token."""

    url: str
    basic: str = ""
    access_token: str = ""
    findings: list[str] = field(default_factory=list)
    examples: int = 0

    def register(self, metadata: dict) -> dict:
        response = requests.post(f"{self.url}/register", json=metadata, timeout=10,
                                 headers={"Authorization": f"Bearer {INITIAL_ACCESS_TOKEN}"})
        assert response.status_code == 201, response.text
        return response.json()

    def headers_for(self, security: list[dict]) -> dict[str, str]:
        """Valid credentials for the operation's first security requirement."""
        schemes = set(security[0]) if security else set()
        if "clientSecretBasic" in schemes:
            return {"Authorization": self.basic}
        if "initialAccessToken" in schemes:
            return {"Authorization": f"Bearer {INITIAL_ACCESS_TOKEN}"}
        if "accessToken" in schemes:
            return {"Authorization": f"Bearer {self.access_token}"}
        return {}


@pytest.fixture
def target(make_as) -> FuzzTarget:
    server = make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN)
    found = FuzzTarget(server.url)
    client = found.register({"client_name": "Fuzzer", "grant_types": ["client_credentials"],
                             "response_types": []})
    found.basic = "Basic " + base64.b64encode(
        f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    token = requests.post(f"{server.url}/token", data={"grant_type": "client_credentials"},
                          headers={"Authorization": found.basic}, timeout=10)
    found.access_token = token.json()["access_token"]
    return found


def test_the_document_is_valid_openapi_3_1_and_lists_every_json_endpoint(make_as):
    server = make_as()
    response = requests.get(server.url + PATH, timeout=10)
    assert response.status_code == 200
    document = response.json()
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": server.url}]
    documented = {(path, method.upper()) for path, item in document["paths"].items()
                  for method in item if method != "parameters"}
    routed = set()
    for rule in server.app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in JSON_BLUEPRINTS:
            path = rule.rule.replace("<", "{").replace(">", "}")
            routed |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == documented


def test_the_document_describes_errors_and_every_security_scheme(make_as):
    document = requests.get(make_as().url + PATH, timeout=10).json()
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and set(error["properties"]) == {"error", "error_description"}
    assert set(document["components"]["securitySchemes"]) == {
        "clientSecretBasic", "initialAccessToken", "registrationAccessToken", "accessToken"}
    token_form = document["components"]["schemas"]["TokenRequest"]["properties"]
    assert {"client_id", "client_secret", "client_assertion_type", "client_assertion"} <= set(token_form)
    token = document["paths"]["/token"]["post"]
    assert token["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}


def test_a_fuzz_run_over_every_operation_finds_no_5xx_and_nothing_undocumented(target):
    """Every operation, positive and negative examples: each answer conforms to the document."""
    schema = schemathesis.openapi.from_url(target.url + PATH)
    operations = [result.ok() for result in schema.get_all_operations()]
    started = time.monotonic()
    unsatisfiable: list[str] = []
    for operation in operations:
        _fuzz(target, operation, schemathesis.GenerationMode.POSITIVE)
        try:  # an operation with nothing a client could get wrong has no negative examples
            _fuzz(target, operation, schemathesis.GenerationMode.NEGATIVE)
        except Unsatisfiable:
            unsatisfiable.append(operation.label)
    elapsed = time.monotonic() - started
    print(f"fuzzed {len(operations)} operations, {target.examples} examples in {elapsed:.1f} s; "
          f"no negative examples for: {', '.join(unsatisfiable)}")
    assert len(operations) == 17
    assert not target.findings, "\n\n".join(target.findings[:10])


def _fuzz(target: FuzzTarget, operation, mode) -> None:
    security = operation.definition.raw.get("security", [])

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        headers = target.headers_for(security)
        if security and "registrationAccessToken" in security[0]:
            client = target.register({"grant_types": ["client_credentials"], "response_types": []})
            headers = {"Authorization": f"Bearer {client['registration_access_token']}"}
            if mode is schemathesis.GenerationMode.POSITIVE:  # its own registration
                case.path_parameters = {"client_id": client["client_id"]}
        target.examples += 1
        response = case.call(base_url=target.url, headers=headers, timeout=10)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except Exception as failure:  # noqa: BLE001  (collect every finding, then report)
            target.findings.append(f"{operation.label} ({mode.value}): {failure}")

    run()
