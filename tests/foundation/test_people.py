"""A person signs up, logs in and out; the pages protect them while they do."""

from __future__ import annotations

import re

import pytest

from tests.fixtures.aggregator import PersonAgent

PASSWORD = "correct horse battery staple"


@pytest.fixture
def server(make_as):
    return make_as()


@pytest.fixture
def agent(server):
    return PersonAgent(server.url)


def test_signup_logs_the_person_in_and_shows_the_dashboard(agent):
    response = agent.signup("nat")
    assert response.headers["Location"] == "/"
    dashboard = agent.http.get(agent.url("/"))
    assert dashboard.status_code == 200
    assert "Hello, nat" in dashboard.text


def test_every_form_field_has_a_visible_label(agent):
    for path in ("/signup", "/login"):
        page = agent.http.get(agent.url(path)).text
        for field in ("username", "password"):
            assert re.search(rf'<label for="{field}">[^<]+</label>', page), (path, field)
            assert f'id="{field}" name="{field}"' in page
        assert 'type="hidden" name="csrf_token"' in page


def test_signup_honours_a_safe_local_next_and_ignores_an_open_redirect(server):
    safe = PersonAgent(server.url)
    response = safe.post_form("/signup", {"username": "ana", "password": PASSWORD,
                                          "next": "/connections/new"})
    assert response.headers["Location"] == "/connections/new"
    for evil in ("https://evil.example/", "//evil.example", "/\\evil.example"):
        other = PersonAgent(server.url)
        response = other.post_form("/signup", {"username": f"u{abs(hash(evil)) % 10**6}",
                                               "password": PASSWORD, "next": evil})
        assert response.headers["Location"] == "/"


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("ab", PASSWORD, "3 to 64"),
        ("has space", PASSWORD, "3 to 64"),
        ("x" * 65, PASSWORD, "3 to 64"),
        ("valid.name", "short", "at least 12"),
    ],
)
def test_signup_rules_are_explained(agent, username, password, message):
    response = agent.post_form("/signup", {"username": username, "password": password})
    assert response.status_code == 400
    assert message in response.text


def test_a_long_password_without_composition_rules_is_fine(agent):
    assert agent.signup("plain", "aaaaaaaaaaaa").status_code == 302


def test_usernames_are_unique_case_insensitively(server):
    PersonAgent(server.url).signup("Nat")
    response = PersonAgent(server.url).post_form("/signup", {"username": "nat", "password": PASSWORD})
    assert response.status_code == 409
    assert "taken" in response.text


def test_login_rotates_the_session_id(server):
    PersonAgent(server.url).signup("rot")
    agent = PersonAgent(server.url)
    agent.http.get(agent.url("/login"))
    before = dict(agent.http.cookies)
    response = agent.login("rot")
    assert response.status_code == 302
    after = dict(agent.http.cookies)
    assert before and after and before != after, "a session id planted before login must not survive"


def test_wrong_password_then_throttling(server):
    PersonAgent(server.url).signup("target")
    agent = PersonAgent(server.url)
    for _ in range(5):
        assert agent.login("target", "wrong password!!").status_code == 401
    blocked = agent.login("target")  # even the right password waits now
    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.text


def test_unknown_user_and_wrong_password_look_the_same(server):
    PersonAgent(server.url).signup("known")
    agent = PersonAgent(server.url)
    unknown = agent.login("nobody-here", "whatever password")
    wrong = agent.login("known", "whatever password")
    assert unknown.status_code == wrong.status_code == 401
    assert "do not match" in unknown.text and "do not match" in wrong.text


def test_passwords_are_hashed_with_the_rfc9106_low_memory_profile(make_as):
    server = make_as(AGGREGATOR_PASSWORD_HASHING="argon2id")  # the default, as in production
    PersonAgent(server.url).signup("careful")
    stored = server.services.store.people.find_by_username("careful").password_hash
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PersonAgent(server.url).login("careful").status_code == 302
    assert PersonAgent(server.url).login("careful", "not the password").status_code == 401


def test_a_hash_made_with_test_only_parameters_is_upgraded_at_the_next_login(make_as, tmp_path):
    env = {"AGGREGATOR_DATA_DIR": str(tmp_path / "data")}
    quick = make_as(AGGREGATOR_PASSWORD_HASHING="argon2id-minimal", **env)
    PersonAgent(quick.url).signup("moved")
    assert quick.services.store.people.find_by_username("moved").password_hash.startswith(
        "$argon2id$v=19$m=8,t=1,p=1$")
    server = make_as(AGGREGATOR_PASSWORD_HASHING="argon2id", **env)  # same Redis and key ring
    assert PersonAgent(server.url).login("moved").status_code == 302
    stored = server.services.store.people.find_by_username("moved").password_hash
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_logout_needs_csrf_and_ends_the_session(agent):
    agent.signup("leaver")
    assert agent.http.post(agent.url("/logout")).status_code == 400
    response = agent.post_form("/logout", {}, form_page="/")
    assert response.status_code == 302
    again = agent.http.get(agent.url("/"), allow_redirects=False)
    assert again.status_code == 302 and again.headers["Location"].startswith("/login")


def test_forms_without_csrf_are_refused(agent):
    response = agent.http.post(agent.url("/signup"), data={"username": "x" * 5, "password": PASSWORD})
    assert response.status_code == 400
    assert "did not come from this site" in response.text


def test_auth_pages_carry_security_headers(agent):
    response = agent.http.get(agent.url("/login"))
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "X-Request-Id" in headers
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_the_dashboard_requires_login(server):
    response = PersonAgent(server.url).http.get(server.url + "/", allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2F"
