"""Throttles hold under concurrency, count the real client behind proxies, and cover sign-up."""

from __future__ import annotations

import re

from tests.fixtures.aggregator import PersonAgent
from tests.introspection.crowd import at_once

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def guesser(server_url: str, username: str, *, forwarded_for: str | None = None):
    """A login form ready to post many times (one session, one CSRF token)."""
    agent = PersonAgent(server_url)
    token = agent.csrf("/login")
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}

    def guess(password: str = "wrong password!!", as_user: str = username) -> int:
        return agent.http.post(agent.url("/login"), allow_redirects=False, headers=headers,
                               data={"username": as_user, "password": password,
                                     "csrf_token": token}).status_code
    return guess


def test_sixty_concurrent_wrong_guesses_get_five_password_checks(make_as):
    server = make_as()
    PersonAgent(server.url).signup("target")
    guess = guesser(server.url, "target")

    answers = at_once(60, guess)

    # reserved before argon2 runs: exactly the documented five are checked, the rest refused
    assert sorted(answers).count(401) == 5 and answers.count(429) == 55


def test_behind_one_proxy_the_forged_leftmost_entry_is_not_the_client(make_as):
    server = make_as(AGGREGATOR_TRUST_PROXY="true")
    answers = []
    for n in range(40):
        # the client forges the leftmost entry; the proxy appends the address it saw
        guess = guesser(server.url, f"user-{n}", forwarded_for=f"203.0.113.{n}, 198.51.100.7")
        answers.append(guess())
    assert answers == [401] * 30 + [429] * 10, "thirty guesses per real address in the window"


def test_two_proxies_count_the_entry_two_hops_from_the_right(make_as):
    server = make_as(AGGREGATOR_TRUST_PROXY="2")
    answers = [guesser(server.url, f"user-{n}", forwarded_for=f"203.0.113.{n}, 198.51.100.7, 10.0.0.2")()
               for n in range(31)]
    assert answers[-1] == 429 and answers[:30] == [401] * 30


def test_signup_is_not_an_unthrottled_username_oracle(make_as):
    server = make_as()
    PersonAgent(server.url).signup("taken")  # one sign-up from this address so far
    agent = PersonAgent(server.url)
    statuses = []
    for _ in range(20):
        token = agent.csrf("/signup")
        statuses.append(agent.http.post(agent.url("/signup"), allow_redirects=False, data={
            "username": "taken", "password": "correct horse battery staple",
            "csrf_token": token}).status_code)
    assert statuses == [409] * 19 + [429], "twenty sign-up attempts per address an hour"
    assert "Too many sign-ups" in agent.http.post(agent.url("/signup"), data={
        "username": "fresh-name", "password": "correct horse battery staple",
        "csrf_token": agent.csrf("/signup")}).text
