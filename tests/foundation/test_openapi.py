"""``/openapi.json``: a valid OpenAPI 3.1 document of every JSON endpoint, and a property-based
fuzz run (schemathesis) of every documented operation against a live AS on loopback.

The fuzz run sends, per operation, ``FUZZ_EXAMPLES`` positive and as many negative examples
(default 15: ``make test``; ``make fuzz`` sets 500), with valid credentials for the operation's
security scheme, and requires of every answer: no 5xx, a documented status, the documented
content type and a body that matches the documented schema.
"""

from __future__ import annotations

import base64
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from aggregator.openapi import PATH
from tests.fixtures.aggregator import LiveAS

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))
INITIAL_ACCESS_TOKEN = "initial-access-token-for-the-fuzz-run"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
CLIENT_AUTH_FIELDS = ("client_id", "client_secret", "client_assertion_type", "client_assertion")
#: the blueprints whose every route answers JSON (the person's pages are HTML)
JSON_BLUEPRINTS = ("oauth", "introspection", "health", "openapi", "events")


@dataclass
class FuzzTarget:
    """A live AS with registration open, one confidential client, and a person who granted it
    ``openid`` (so that grant management and userinfo can answer 200, not only errors)."""

    server: LiveAS
    basic: str = ""
    client_id: str = ""
    person_id: str = ""
    findings: list[str] = field(default_factory=list)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)

    @property
    def url(self) -> str:
        return self.server.url

    def register(self, metadata: dict) -> dict:
        response = requests.post(f"{self.url}/register", json=metadata, timeout=10,
                                 headers={"Authorization": f"Bearer {INITIAL_ACCESS_TOKEN}"})
        assert response.status_code == 201, response.text
        return response.json()

    def new_grant(self) -> str:
        store = self.server.services.store
        return store.grants.create(self.client_id, self.person_id, ["openid", "accounts:read"], {}).id

    def new_access_token(self) -> str:
        """An ``openid`` access token of the person's grant (one per example: /revoke ends it)."""
        token, _ = self.server.services.store.tokens.issue_access_token(
            client_id=self.client_id, person_id=self.person_id, grant_id=self.new_grant(),
            scope="openid accounts:read", ttl=600)
        return token


@pytest.fixture
def target(make_as) -> FuzzTarget:
    found = FuzzTarget(make_as(AGGREGATOR_INITIAL_ACCESS_TOKEN=INITIAL_ACCESS_TOKEN))
    client = found.register({"client_name": "Fuzzer", "grant_types": ["client_credentials"],
                             "response_types": []})
    found.client_id = client["client_id"]
    found.basic = "Basic " + base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()
                                              ).decode()
    found.person_id = found.server.services.store.people.create("fuzz-person", "not-a-hash").id
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
        "clientSecretBasic", "initialAccessToken", "registrationAccessToken", "accessToken",
        "eventsToken"}
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
    examples = sum(target.statuses.values())
    print(f"\nfuzzed {len(operations)} operations, {examples} examples in {elapsed:.1f} s; "
          f"no negative examples for: {', '.join(unsatisfiable)}")
    for (label, status), count in sorted(target.statuses.items()):
        print(f"  {label:45} {status}  x{count}")
    assert len(operations) == 28
    assert {label for label, _ in target.statuses} == {op.label for op in operations}
    assert not target.findings, "\n\n".join(target.findings[:10])


def _fuzz(target: FuzzTarget, operation, mode: schemathesis.GenerationMode) -> None:
    """``FUZZ_EXAMPLES`` examples of ``operation``, each with valid credentials; every other
    positive example also reaches past the opening steps (no competing client credentials in the
    body, a live token, grant or registration of its own), so success paths are fuzzed too."""
    scheme = next(iter(operation.definition.raw["security"][0]), None) \
        if operation.definition.raw.get("security") else None
    seen = [0]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        seen[0] += 1
        deep = mode is schemathesis.GenerationMode.POSITIVE and seen[0] % 2 == 0
        headers = _credentials(target, case, scheme, deep)
        response = case.call(base_url=target.url, headers=headers, timeout=10)
        target.statuses[(operation.label, response.status_code)] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as failure:  # collect every finding, then report them together
            target.findings.append(f"{operation.label} ({mode.value}): {failure}")

    run()


def _credentials(target: FuzzTarget, case: schemathesis.Case, scheme: str | None,
                 deep: bool) -> dict[str, str]:
    """The Authorization header for ``scheme``; for a ``deep`` example, also the case's path
    and body pointed at live records."""
    body = case.body if isinstance(case.body, dict) else None
    if deep and body is not None:
        for name in CLIENT_AUTH_FIELDS:
            body.pop(name, None)
    if scheme == "clientSecretBasic":
        if deep and "grant_id" in case.path_parameters:
            case.path_parameters = {"grant_id": target.new_grant()}
        if deep and body is not None and "token" in body:
            body["token"] = target.new_access_token()
        if deep and body is not None and body.get("grant_type") == "client_credentials":
            body.pop("scope", None)
        return {"Authorization": target.basic}
    if scheme == "initialAccessToken":
        return {"Authorization": f"Bearer {INITIAL_ACCESS_TOKEN}"}
    if scheme == "registrationAccessToken":
        client = target.register({"grant_types": ["client_credentials"], "response_types": []})
        if deep:
            case.path_parameters = {"client_id": client["client_id"]}
            if body is not None:
                body["client_id"] = client["client_id"]
        return {"Authorization": f"Bearer {client['registration_access_token']}"}
    if scheme == "eventsToken":
        token, _ = target.server.services.store.tokens.issue_access_token(
            client_id=target.client_id, person_id=None, grant_id=None, scope="events", ttl=600)
        return {"Authorization": f"Bearer {token}"}
    if scheme == "accessToken":
        if deep and body is not None:
            body.pop("access_token", None)
        return {"Authorization": f"Bearer {target.new_access_token()}"}
    return {}
