"""``python -m examples.grapher``: serve the Grapher on GRAPHER_HOST:GRAPHER_PORT (127.0.0.1:8002)."""

from __future__ import annotations

import signal
import sys

from werkzeug.serving import make_server

from examples.grapher import SettingsError, create_grapher_app
from examples.grapher.settings import GrapherSettings


def _exit(*_: object) -> None:
    raise SystemExit(0)


def main() -> int:
    try:
        settings = GrapherSettings.from_env()
        app = create_grapher_app(settings)
    except (SettingsError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    # One process on purpose: the Grapher keeps its visits in memory (it is an example app).
    server = make_server(settings.host, settings.port, app, threaded=True)
    signal.signal(signal.SIGTERM, _exit)
    print(f"Grapher: {settings.base_url}" + (f" (Authorization Server {settings.as_url})"
                                             if settings.as_url else ""), flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
