"""The sandbox bank: four pretend institutions, each an OAuth 2.0 authorization server and
resource server, for development, tests and benchmarks. See docs/sandbox-bank.md.
"""

from .app import create_bank_app
from .settings import BankSettings, SettingsError, load_settings

__all__ = ["BankSettings", "SettingsError", "create_bank_app", "load_settings"]
