"""A faithful fake of Moneyhub's identity service and Data API, built from seeds 000-003.

``create_fake_moneyhub(settings)`` returns a Flask app; tests run it on loopback with
``aggregator.testing.servers.serve_wsgi`` (see ``tests/fixtures/moneyhub.py``) and steer it with
the public methods of :class:`FakeMoneyhub`.
"""

from .app import create_fake_moneyhub
from .catalog import BANKS, BANKS_BY_ID, Bank, banks_of_type
from .settings import FakeClient, FakeMoneyhubSettings
from .state import ID_TOKEN_FAULTS, FakeMoneyhub

__all__ = [
    "BANKS",
    "BANKS_BY_ID",
    "ID_TOKEN_FAULTS",
    "Bank",
    "FakeClient",
    "FakeMoneyhub",
    "FakeMoneyhubSettings",
    "banks_of_type",
    "create_fake_moneyhub",
]
