"""The plugin contract test kit: every upstream plugin passes this suite against its upstream.

Subclass :class:`PluginContract` in a test module (its name must start with ``Test``) and
provide two fixtures:

``plugin``
    a configured plugin instance; :func:`build_plugin` makes one from environment-style
    settings with a real Redis-backed cache.
``approve``
    a function ``approve(link: LinkStart) -> dict[str, str]`` that plays the person at the
    upstream (log in, press "allow") and returns the parameters the upstream sent to the
    callback URL (query or fragment, parsed).

Optionally override ``institution_id`` (default: the first institution) and ``person``.
The suite needs a running upstream: the point is to test real HTTP, not a mock.

Plugins with the payments capability also run the payments part (the others skip it): a
payment begun for a registration, approved at the upstream by ``approve_payment`` (default:
``approve``), completed, settled by ``settle`` (default: nothing, the upstream settles on its own) and its
status read until ``completed``. Override ``payment`` to pay what the upstream accepts.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import redis
import requests
from marshmallow import Schema

from aggregator.crypto import KeyRing
from aggregator.registry.notices import RegistryNotices
from aggregator.store import Store
from aggregator.store.plugin_cache import RedisPluginCache
from aggregator.upstream.contract import (
    DATA_SCOPES,
    InvalidLinkOptions,
    LinkDenied,
    LinkedInstitution,
    LinkInvalid,
    LinkStart,
    PaymentDenied,
    PaymentRequest,
    PaymentsCapability,
    Person,
    Registration,
    UpstreamError,
    UpstreamPlugin,
)
from aggregator.upstream.http import UpstreamHTTP
from aggregator.upstream.loader import load_config

Approve = Callable[[LinkStart], dict[str, str]]

#: how long a token handed out must stay valid (the AS's default freshness margin)
FRESHNESS = 60
#: the states an app may see (``PaymentStatus``)
PAYMENT_STATUSES = ("pending", "completed", "rejected", "failed")
#: how long a payment may stay pending before the suite gives up waiting for it to settle
SETTLE_TIMEOUT = 30


def build_plugin(
    cls: type[UpstreamPlugin],
    name: str,
    environ: Mapping[str, str],
    redis_url: str,
    *,
    issuer: str = "http://127.0.0.1:8000",
    http_timeout: float = 10.0,
) -> UpstreamPlugin:
    """Configure ``cls`` from ``NAME_*``-style settings (keys already without the prefix), as
    the loader would."""
    from aggregator.upstream.contract import PluginContext

    config = load_config(cls, environ)
    keyring = KeyRing([("test", secrets.token_bytes(32))])
    client = redis.Redis.from_url(redis_url)
    context = PluginContext(
        issuer=issuer,
        callback_url=f"{issuer}/connections/callback/{name}",
        cache=RedisPluginCache(client, keyring, name),
        notices=RegistryNotices(Store(client, keyring), name),
        http=UpstreamHTTP(http_timeout),
    )
    return cls(config, context)


def params_from_redirect(location: str) -> dict[str, str]:
    """The callback parameters in a redirect URL: its query, or its fragment (hybrid flows)."""
    parts = urlsplit(location)
    params = dict(parse_qsl(parts.query))
    params.update(parse_qsl(parts.fragment))
    return params


def as_registration(person: Person, linked: LinkedInstitution, registration_id: str = "r1") -> Registration:
    """What the core would hand back to the plugin after storing ``linked``."""
    roundtrip = json.loads(json.dumps({"secrets": linked.secrets, "metadata": linked.metadata}))
    return Registration(
        id=registration_id,
        person=person,
        provider="contract",
        institution=linked.institution,
        external_id=linked.external_id,
        endpoint=linked.endpoint,
        secrets=roundtrip["secrets"],
        metadata=roundtrip["metadata"],
        consent_expires_at=linked.consent_expires_at,
        share_group=linked.share_group,
    )


class PluginContract:
    """The behaviour the core relies on; see the module docstring for how to use it."""

    @pytest.fixture
    def person(self) -> Person:
        return Person(id=secrets.token_hex(8), username=f"contract-{secrets.token_hex(3)}")

    @pytest.fixture
    def institution_id(self, plugin: UpstreamPlugin) -> str:
        return plugin.institutions()[0].id

    def link(self, plugin: UpstreamPlugin, person: Person, institution_id: str,
             approve: Approve) -> list[LinkedInstitution]:
        state = secrets.token_urlsafe(16)
        start = plugin.begin_link(person, institution_id, state=state)
        remember = json.loads(json.dumps(start.remember))  # the core stores it as JSON
        params = approve(start)
        assert params.get("state") == state, "the upstream must return the state unchanged"
        return plugin.complete_link(person, params, remember)

    # ---------------------------------------------------------------- describing

    def test_describes_itself(self, plugin: UpstreamPlugin) -> None:
        assert isinstance(plugin.name, str) and plugin.name
        assert isinstance(plugin.display_name, str) and plugin.display_name
        assert issubclass(plugin.config_schema, Schema)

    def test_lists_institutions(self, plugin: UpstreamPlugin) -> None:
        institutions = plugin.institutions()
        assert institutions, "a plugin offers at least one institution"
        ids = [institution.id for institution in institutions]
        assert len(ids) == len(set(ids)), "institution ids are unique within a plugin"
        assert all(institution.name for institution in institutions)

    # ---------------------------------------------------------------- linking

    def test_begin_link_points_the_browser_upstream(
        self, plugin: UpstreamPlugin, person: Person, institution_id: str
    ) -> None:
        start = plugin.begin_link(person, institution_id, state=secrets.token_urlsafe(16))
        assert urlsplit(start.redirect_url).scheme in ("http", "https")
        json.dumps(start.remember)  # must be JSON-serialisable: the core stores it

    def test_begin_link_refuses_an_unknown_institution(
        self, plugin: UpstreamPlugin, person: Person
    ) -> None:
        with pytest.raises(InvalidLinkOptions):
            plugin.begin_link(person, "no-such-institution-" + secrets.token_hex(4),
                              state=secrets.token_urlsafe(16))

    def test_a_completed_link_gives_a_token_that_works(
        self, plugin: UpstreamPlugin, person: Person, institution_id: str, approve: Approve
    ) -> None:
        linked = self.link(plugin, person, institution_id, approve)
        assert linked, "a completed link yields at least one registration"
        for item in linked:
            assert item.external_id
            assert urlsplit(item.endpoint).scheme in ("http", "https")
            json.dumps(item.secrets)
            json.dumps(item.metadata)
        registration = as_registration(person, linked[0])
        result = plugin.access_token(registration, DATA_SCOPES)
        assert result.token.access_token
        assert result.token.fresh_for(FRESHNESS), "tokens handed out must stay valid a while"
        response = requests.get(
            registration.endpoint.rstrip("/") + "/accounts",
            headers={"Authorization": f"{result.token.token_type} {result.token.access_token}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert isinstance(response.json(), dict | list)

    def test_a_refused_link_is_denied(
        self, plugin: UpstreamPlugin, person: Person, institution_id: str
    ) -> None:
        state = secrets.token_urlsafe(16)
        start = plugin.begin_link(person, institution_id, state=state)
        with pytest.raises(LinkDenied):
            plugin.complete_link(
                person, {"error": "access_denied", "error_description": "no", "state": state},
                json.loads(json.dumps(start.remember)),
            )

    def test_a_callback_without_a_code_is_invalid(
        self, plugin: UpstreamPlugin, person: Person, institution_id: str
    ) -> None:
        state = secrets.token_urlsafe(16)
        start = plugin.begin_link(person, institution_id, state=state)
        with pytest.raises(LinkInvalid):
            plugin.complete_link(person, {"state": state}, json.loads(json.dumps(start.remember)))

    def test_a_forged_code_is_refused(
        self, plugin: UpstreamPlugin, person: Person, institution_id: str
    ) -> None:
        state = secrets.token_urlsafe(16)
        start = plugin.begin_link(person, institution_id, state=state)
        with pytest.raises(UpstreamError) as caught:
            plugin.complete_link(person, {"state": state, "code": secrets.token_urlsafe(24)},
                                 json.loads(json.dumps(start.remember)))
        assert isinstance(caught.value, LinkInvalid | LinkDenied), (
            "an upstream refusing the code is the callback's fault, not an outage"
        )

    # ---------------------------------------------------------------- lifecycle

    def test_status_of_a_fresh_registration_is_ok(
        self, plugin: UpstreamPlugin, person: Person, institution_id: str, approve: Approve
    ) -> None:
        registration = as_registration(person, self.link(plugin, person, institution_id, approve)[0])
        assert plugin.status(registration).status == "ok"

    def test_unlink_revokes_upstream_and_is_idempotent(
        self, plugin: UpstreamPlugin, person: Person, institution_id: str, approve: Approve
    ) -> None:
        registration = as_registration(person, self.link(plugin, person, institution_id, approve)[0])
        plugin.unlink(registration)
        plugin.unlink(registration)  # already gone: must not fail
        time.sleep(0.01)
        with pytest.raises(UpstreamError) as caught:
            plugin.access_token(registration, DATA_SCOPES)
        assert caught.value.status in ("reauth_required", "expired", "error")

    # ---------------------------------------------------------------- payments (when capable)

    @pytest.fixture
    def payment(self) -> PaymentRequest:
        return PaymentRequest(amount="1.50", currency="GBP", creditor_name="Contract Kit Ltd",
                              sort_code="123456", account_number="12345678", reference="CONTRACT-1")

    @pytest.fixture
    def approve_payment(self, approve: Approve) -> Approve:
        return approve

    @pytest.fixture
    def settle(self) -> Callable[[str], None]:
        """Plays the bank settling an approved payment, given the upstream's payment id. The
        default does nothing (the upstream settles on its own, as the sandbox bank does);
        override it for an upstream whose test double settles only when told."""
        return lambda payment_id: None

    @pytest.fixture
    def payer(self, plugin: UpstreamPlugin, person: Person, institution_id: str,
              approve: Approve) -> Registration:
        """A registration of a plugin that can pay (the others skip the payments part)."""
        if not isinstance(plugin, PaymentsCapability):
            pytest.skip("this plugin does not offer payments")
        return as_registration(person, self.link(plugin, person, institution_id, approve)[0])

    def begin(self, plugin: UpstreamPlugin, payer: Registration,
              payment: PaymentRequest) -> tuple[str, LinkStart, dict[str, Any]]:
        assert isinstance(plugin, PaymentsCapability)
        plugin.check_payment(payment, payer)
        state = secrets.token_urlsafe(16)
        start = plugin.begin_payment(payer, payment, state=state)
        assert urlsplit(start.redirect_url).scheme in ("http", "https")
        return state, start, json.loads(json.dumps(start.remember))  # the core stores it as JSON

    def test_a_payment_is_made_and_its_status_read(
        self, plugin: UpstreamPlugin, payer: Registration, payment: PaymentRequest,
        approve_payment: Approve, settle: Callable[[str], None],
    ) -> None:
        state, start, remember = self.begin(plugin, payer, payment)
        params = approve_payment(start)
        assert params.get("state") == state, "the upstream must return the state unchanged"
        assert isinstance(plugin, PaymentsCapability)
        made = plugin.complete_payment(payer, params, remember)
        assert made.payment_id and made.status in PAYMENT_STATUSES
        settle(made.payment_id)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        status = plugin.payment_status(payer, made.payment_id)
        while status.status == "pending" and time.monotonic() < deadline:
            time.sleep(0.5)
            status = plugin.payment_status(payer, made.payment_id)
        assert status.payment_id == made.payment_id
        assert status.status == "completed", "an approved payment of a small amount settles"

    def test_a_refused_payment_is_denied(
        self, plugin: UpstreamPlugin, payer: Registration, payment: PaymentRequest
    ) -> None:
        state, _, remember = self.begin(plugin, payer, payment)
        assert isinstance(plugin, PaymentsCapability)
        with pytest.raises(PaymentDenied):
            plugin.complete_payment(payer, {"error": "access_denied", "state": state}, remember)

    def test_a_payment_callback_without_a_code_is_invalid(
        self, plugin: UpstreamPlugin, payer: Registration, payment: PaymentRequest
    ) -> None:
        state, _, remember = self.begin(plugin, payer, payment)
        assert isinstance(plugin, PaymentsCapability)
        with pytest.raises(LinkInvalid):
            plugin.complete_payment(payer, {"state": state}, remember)


def contract_test_names() -> list[str]:
    """The tests every plugin runs (for documentation and for checking a subclass ran them all)."""
    return sorted(name for name in dir(PluginContract) if name.startswith("test_"))


__all__: list[Any] = [
    "Approve",
    "PluginContract",
    "as_registration",
    "build_plugin",
    "contract_test_names",
    "params_from_redirect",
]
