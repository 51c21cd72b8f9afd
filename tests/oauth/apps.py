"""Apps for the provider tests: registered over HTTP, and driving a person through consent."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from aggregator.store.registrations import RegistrationRecord
from aggregator.upstream.contract import Institution, LinkedInstitution
from tests.fixtures.aggregator import LiveAS, PersonAgent

INITIAL_ACCESS_TOKEN = "initial-access-token-for-the-tests"
DATA = "accounts:read balances:read transactions:read"
REDIRECT = "https://app.example/callback"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def register(server: LiveAS, **metadata: Any) -> requests.Response:
    return requests.post(f"{server.url}/register", json=metadata, timeout=10,
                         headers={"Authorization": f"Bearer {INITIAL_ACCESS_TOKEN}"})


@dataclass
class App:
    """A registered client as its developer holds it: the registration response and any key."""

    server: LiveAS
    info: dict[str, Any]
    key: RSAKey | ECKey | None = None
    assertions: int = field(default=0)

    @property
    def client_id(self) -> str:
        return self.info["client_id"]

    @property
    def secret(self) -> str | None:
        return self.info.get("client_secret")

    def assertion(self, audience: str | None = None, **claims: Any) -> str:
        """A fresh ``private_key_jwt`` client assertion (RFC 7523)."""
        assert self.key is not None
        now = int(time.time())
        payload = {"iss": self.client_id, "sub": self.client_id, "aud": audience or self.server.url,
                   "iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(16), **claims}
        alg = "ES256" if isinstance(self.key, ECKey) else "PS256"
        return jwt.encode({"alg": alg, "kid": self.key.kid}, payload, self.key, algorithms=[alg])

    def auth(self) -> dict[str, Any]:
        """``requests`` keyword arguments that authenticate this client its registered way."""
        method = self.info["token_endpoint_auth_method"]
        if method == "client_secret_basic":
            return {"auth": (self.client_id, self.secret)}
        if method == "client_secret_post":
            return {"data": {"client_id": self.client_id, "client_secret": self.secret}}
        if method == "private_key_jwt":
            return {"data": {"client_assertion_type":
                             "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                             "client_assertion": self.assertion()}}
        return {"data": {"client_id": self.client_id}}

    def post(self, path: str, data: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        """POST a form to ``path``, authenticated as this client."""
        auth = self.auth()
        body = {**auth.pop("data", {}), **(data or {})}
        kwargs.setdefault("timeout", 10)
        return requests.post(f"{self.server.url}{path}", data=body, **auth, **kwargs)

    def request_object(self, **params: Any) -> str:
        """A signed request object (RFC 9101) carrying ``params``."""
        assert self.key is not None
        now = int(time.time())
        payload = {"iss": self.client_id, "aud": self.server.url, "client_id": self.client_id,
                   "exp": now + 300, "nbf": now, **params}
        alg = "ES256" if isinstance(self.key, ECKey) else "PS256"
        return jwt.encode({"alg": alg, "kid": self.key.kid}, payload, self.key, algorithms=[alg])


def new_key(kind: str = "RSA") -> RSAKey | ECKey:
    params = {"kid": secrets.token_hex(4), "use": "sig"}
    if kind == "EC":
        return ECKey.generate_key("P-256", parameters=params, private=True)
    return RSAKey.generate_key(2048, parameters=params, private=True)


def make_app(server: LiveAS, *, key: RSAKey | ECKey | None = None, **metadata: Any) -> App:
    """Register an app (defaults: confidential, client_secret_basic, every scope, one redirect)."""
    document: dict[str, Any] = {
        "client_name": "Grapher",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": f"openid offline_access {DATA}",
        **metadata,
    }
    if key is not None:
        document.setdefault("token_endpoint_auth_method", "private_key_jwt")
        document.setdefault("jwks", {"keys": [key.as_dict(private=False)]})
    response = register(server, **document)
    assert response.status_code == 201, response.text
    return App(server, response.json(), key)


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def authorization_url(server: LiveAS, **params: str) -> str:
    return f"{server.url}/authorize?{urlencode(params)}"


def seed_registration(server: LiveAS, agent_or_person_id: PersonAgent | str, name: str,
                      *, provider: str = "sandbox", share_group: str | None = None) -> RegistrationRecord:
    """A linked institution of the person, stored as the registry would store it (test setup)."""
    person_id = agent_or_person_id if isinstance(agent_or_person_id, str) else person_id_of(
        server, agent_or_person_id)
    return server.services.store.registrations.save_linked(person_id, provider, LinkedInstitution(
        Institution(name.lower().replace(" ", "-"), name), external_id=secrets.token_hex(6),
        endpoint=f"https://bank.example/{secrets.token_hex(3)}",
        secrets={"refresh_token": "upstream-secret"}, share_group=share_group,
    ))


def person_id_of(server: LiveAS, agent: PersonAgent) -> str:
    username = agent.username  # type: ignore[attr-defined]
    record = server.services.store.people.find_by_username(username)
    assert record is not None
    return record.id


def signed_up(server: LiveAS, username: str = "nat") -> PersonAgent:
    agent = PersonAgent(server.url)
    agent.signup(username)
    agent.username = username  # type: ignore[attr-defined]
    return agent


def walk(agent: PersonAgent, url: str) -> requests.Response:
    """Follow redirects within the AS; stop at a page or at a redirect leaving it."""
    response = agent.http.get(agent.url(url), allow_redirects=False)
    while response.status_code in (302, 303) and response.headers["Location"].startswith(
            (agent.base_url, "/")):
        response = agent.http.get(agent.url(response.headers["Location"]), allow_redirects=False)
    return response


def consent_form(page: requests.Response) -> tuple[str, str, list[str]]:
    """(action, csrf token, ticked registration ids) of a consent page."""
    action = re.search(r'<form id="consent" method="post" action="([^"]+)"', page.text)
    csrf = CSRF.search(page.text)
    assert action and csrf, page.text
    ticked = re.findall(r'name="registration" value="([^"]+)"\s+checked', page.text)
    return action.group(1), csrf.group(1), ticked


def decide(agent: PersonAgent, page: requests.Response, decision: str = "allow",
           registrations: list[str] | None = None) -> requests.Response:
    """Submit the consent page (by default with the boxes as they are ticked)."""
    action, csrf, ticked = consent_form(page)
    data: dict[str, Any] = {"csrf_token": csrf, "decision": decision,
                            "registration": ticked if registrations is None else registrations}
    return agent.http.post(agent.url(action), data=data, allow_redirects=False)


def response_params(response: requests.Response) -> dict[str, str]:
    """The authorization response parameters from a redirect (query or fragment)."""
    assert response.status_code in (302, 303), (response.status_code, response.text[:500])
    parts = urlsplit(response.headers["Location"])
    source = parts.fragment or parts.query
    return {key: values[0] for key, values in parse_qs(source).items()}


def assert_error_redirect(response: requests.Response, server: LiveAS, error: str, state: str = "st-1",
                          target: str = REDIRECT) -> dict[str, str]:
    """An error sent back to the app's redirect URI, with ``state`` and ``iss`` (RFC 9207)."""
    assert response.headers["Location"].startswith(target), response.headers["Location"]
    params = response_params(response)
    assert params["error"] == error, params
    assert params["state"] == state and params["iss"] == server.url
    return params


def account_information(*actions: str, institutions: list[str] | None = None) -> dict[str, Any]:
    """One RFC 9396 ``account_information`` detail."""
    detail: dict[str, Any] = {"type": "account_information", "actions": list(actions)}
    if institutions is not None:
        detail["institutions"] = institutions
    return detail


def granted(registration: RegistrationRecord, *actions: str) -> dict[str, Any]:
    """An ``authorization_details`` entry of what was granted at one institution (token
    response, introspection, grant management)."""
    return {"type": "account_information", "actions": list(actions),
            "registration_id": registration.id, "name": registration.institution_name}


def details(*entries: dict[str, Any]) -> str:
    """The ``authorization_details`` parameter: a JSON array."""
    return json.dumps(list(entries))


#: a request by scope and by details together: transactions anywhere, accounts at Astoria too
TRANSACTIONS_AND_ASTORIA_ACCOUNTS = {
    "scope": "openid transactions:read",
    "authorization_details": details(account_information("accounts:read", institutions=["Bank of Astoria"])),
}


def ask(server: LiveAS, app: App, agent: PersonAgent, **params: str) -> tuple[requests.Response, str]:
    """The app sends the person to ``/authorize`` (code flow with PKCE, ``state=st-1``);
    returns where the person ends up (a page or a redirect to the app) and the PKCE verifier."""
    verifier, challenge = pkce()
    query = {"client_id": app.client_id, "response_type": "code", "redirect_uri": REDIRECT,
             "state": "st-1", "code_challenge": challenge, "code_challenge_method": "S256", **params}
    return walk(agent, authorization_url(server, **query)), verifier


def pushed(app: App, **params: str) -> requests.Response:
    """The app pushes an authorization request (RFC 9126): code flow with PKCE, ``state=st-1``."""
    _, challenge = pkce()
    return app.post("/par", {"response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
                             "state": "st-1", "code_challenge": challenge,
                             "code_challenge_method": "S256", **params})


def allow(app: App, agent: PersonAgent, page: requests.Response, verifier: str,
          registrations: list[str] | None = None) -> dict[str, Any]:
    """The person allows on the consent page (ticking ``registrations``, or as the page ticks
    them) and the app exchanges the code; returns the token response."""
    assert page.status_code == 200 and 'name="decision"' in page.text, (page.status_code, page.text[:500])
    params = response_params(decide(agent, page, registrations=registrations))
    response = exchange(app, params["code"], verifier)
    assert response.status_code == 200, response.text
    return response.json()


def code_flow(server: LiveAS, app: App, agent: PersonAgent, *, scope: str = f"openid {DATA}",
              use_pkce: bool = True, **extra: str) -> tuple[dict[str, str], str]:
    """Run a plain authorization request through consent; returns (response params, verifier)."""
    verifier, challenge = pkce()
    params = {"client_id": app.client_id, "response_type": "code", "redirect_uri": REDIRECT,
              "scope": scope, "state": "st-1", **extra}
    if use_pkce:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    url = authorization_url(server, **params)
    page = walk(agent, url)
    if page.status_code == 200 and 'name="decision"' in page.text:
        page = decide(agent, page)
    return response_params(page), verifier


def id_token_claims(server: LiveAS, id_token: str) -> dict[str, Any]:
    """Verify an ID token with the AS's published keys; returns its claims."""
    keyset = KeySet.import_key_set(requests.get(f"{server.url}/jwks", timeout=10).json())
    return jwt.decode(id_token, keyset, algorithms=["RS256", "PS256", "ES256"]).claims


def exchange(app: App, code: str, verifier: str | None, **extra: str) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra}
    if verifier is not None:
        data["code_verifier"] = verifier
    return app.post("/token", data)
