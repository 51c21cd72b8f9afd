"""Fixtures for the foundation tests."""

from __future__ import annotations

import os

import pytest

from aggregator.testing.servers import reserve_port


@pytest.fixture
def run_env(tmp_path) -> dict[str, str]:
    """The runner's environment: its own ports and data dir, no plugins, no REDIS_URL."""
    port, redis_port = reserve_port(), reserve_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update({
        "AGGREGATOR_PORT": str(port),
        "AGGREGATOR_REDIS_PORT": str(redis_port),
        "AGGREGATOR_DATA_DIR": str(tmp_path / "var"),
        "AGGREGATOR_PLUGINS": "",
        "AGGREGATOR_WORKERS": "2",
        "AGGREGATOR_LOG_LEVEL": "WARNING",
    })
    return env
