"""The Moneyhub plugin passes the plugin contract suite against the fake, over HTTP."""

from __future__ import annotations

import pytest

from aggregator.testing.plugin_contract import PluginContract
from plugins.moneyhub.plugin import MoneyhubPlugin
from tests.moneyhub.journeys import approve as approve_at_moneyhub

#: the two ways an operator registers a client in Moneyhub's admin portal
CONFIGURATIONS = {
    "client_secret_basic+code": ("basic", {}),
    "private_key_jwt+code_id_token": ("jwt", {"response_type": "code id_token"}),
}


class TestMoneyhubContract(PluginContract):
    @pytest.fixture(params=sorted(CONFIGURATIONS))
    def plugin(self, request, make_plugin) -> MoneyhubPlugin:
        client, settings = CONFIGURATIONS[request.param]
        return make_plugin(client, **settings)

    @pytest.fixture
    def approve(self):
        return approve_at_moneyhub

    @pytest.fixture
    def settle(self, moneyhub_fake):
        """The fake keeps a payment pending until a test settles it, as the bank would."""
        return moneyhub_fake.controls.settle_payment
