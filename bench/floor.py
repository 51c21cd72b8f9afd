"""The floor: a minimal Flask endpoint doing one Redis GET, served like the AS.

``gunicorn bench.floor:app`` with ``REDIS_URL`` set; introspection throughput is reported as a
fraction of this endpoint's.
"""

from __future__ import annotations

import os

import redis
from flask import Flask, jsonify

app = Flask(__name__)
client = redis.Redis.from_url(os.environ["REDIS_URL"])


@app.get("/floor")
def floor():
    return jsonify(value=(client.get("bench:floor") or b"").decode())
