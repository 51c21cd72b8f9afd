"""gunicorn entry point: ``gunicorn wsgi:app``."""

from aggregator import create_app

# a worker (re)started while Redis is briefly unavailable serves 503s until it is back, rather
# than failing to boot and taking gunicorn's master down with it
app = create_app(wait_for_redis=True)
