"""The person's part of a Moneyhub link, played over HTTP against the fake."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import replace

import requests

from aggregator.testing.plugin_contract import as_registration, params_from_redirect
from aggregator.upstream.contract import LinkedInstitution, LinkStart, Person, Registration
from plugins.moneyhub.plugin import MoneyhubPlugin

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def approve(start: LinkStart) -> dict[str, str]:
    """Follow the authorization URL to the (auto-approving) fake: the callback's parameters."""
    response = requests.get(start.redirect_url, allow_redirects=False, timeout=10)
    if response.status_code == 302:
        return params_from_redirect(response.headers["Location"])
    assert response.status_code == 200, response.text  # form_post
    return dict(HIDDEN.findall(response.text))


def person(name: str = "alex") -> Person:
    return Person(id=secrets.token_hex(8), username=name)


def begin(plugin: MoneyhubPlugin, who: Person, institution_id: str,
          reconnect: Registration | None = None) -> tuple[LinkStart, dict, str]:
    state = secrets.token_urlsafe(16)
    start = plugin.begin_link(who, institution_id, state=state, reconnect=reconnect)
    return start, json.loads(json.dumps(start.remember)), state


def link(plugin: MoneyhubPlugin, who: Person, institution_id: str,
         reconnect: Registration | None = None) -> list[LinkedInstitution]:
    """A whole link: begin, the person approves at Moneyhub, complete."""
    start, remember, state = begin(plugin, who, institution_id, reconnect)
    params = approve(start)
    assert params.get("state") == state
    return plugin.complete_link(who, params, remember, reconnect=reconnect)


def registration(who: Person, linked: LinkedInstitution, registration_id: str = "r1"
                 ) -> Registration:
    """What the core hands back to the plugin once ``linked`` is stored."""
    return replace(as_registration(who, linked, registration_id), provider="moneyhub")
