"""gunicorn entry point: ``gunicorn wsgi:app``."""

from aggregator import create_app

app = create_app()
