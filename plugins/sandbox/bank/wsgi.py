"""WSGI entry point: ``gunicorn plugins.sandbox.bank.wsgi:app`` (settings from the environment)."""

from . import create_bank_app, load_settings

app = create_bank_app(load_settings())
