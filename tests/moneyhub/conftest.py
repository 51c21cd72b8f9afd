"""Fixtures for the Moneyhub tests: Moneyhub plugins configured against the fake."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from aggregator.testing.plugin_contract import build_plugin
from plugins.moneyhub.plugin import MoneyhubPlugin
from tests.fixtures.moneyhub import MoneyhubFake

#: the AS issuer the plugins under test believe in (its callback is registered at the fake)
ISSUER = "http://127.0.0.1:8000"


def plugin_environ(fake: MoneyhubFake, client: str, **settings: Any) -> dict[str, str]:
    """``MONEYHUB_*`` variables for ``client`` as the loader hands them over (prefix removed)."""
    extra = {f"MONEYHUB_{name.upper()}": str(value) for name, value in settings.items()}
    env = fake.clients[client].env(fake, **extra)
    return {key.removeprefix("MONEYHUB_").lower(): value for key, value in env.items()}


@pytest.fixture
def make_plugin(moneyhub_fake: MoneyhubFake, redis_url: str) -> Callable[..., MoneyhubPlugin]:
    """``make_plugin("jwt", response_type="code id_token", clock=...)``: a configured plugin whose
    callback URL is registered at the fake."""

    def make(client: str = "basic", *, clock: Callable[[], float] | None = None,
             **settings: Any) -> MoneyhubPlugin:
        moneyhub_fake.controls.add_redirect_uri(
            f"{ISSUER}/connections/callback/moneyhub", moneyhub_fake.clients[client].client_id
        )
        built = build_plugin(MoneyhubPlugin, "moneyhub",
                             plugin_environ(moneyhub_fake, client, **settings), redis_url,
                             issuer=ISSUER)
        if clock is None:
            return built  # type: ignore[return-value]
        return MoneyhubPlugin(built.config, built.context, clock=clock)

    return make
