"""Server-side sessions in Redis behind Flask's ``session`` object.

The cookie carries only a random 256-bit id; Redis keeps the data under the id's SHA-256.
Logging in calls :func:`rotate_session`, so an id planted before login is worthless after it
(session fixation). Cookies are HttpOnly, SameSite=Lax, and ``__Host-`` + Secure under https.

Flask opens the session before it has matched the route and saves it after the view, outside
the error handlers' reach. A Redis failure on opening is therefore held and raised by the first
``before_request`` hook, where the route (page or API) and the handlers are known; a failed save
is not retried when Flask answers with the error instead (see ``aggregator.errors``).
"""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask, Request, Response, session
from flask.sessions import NullSession, SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from aggregator.crypto import new_token
from aggregator.store.sessions import SessionRepository
from config import Settings


class RedisSession(CallbackDict, SessionMixin):
    def __init__(self, initial: dict[str, Any] | None = None, sid: str | None = None,
                 new: bool = False) -> None:
        def on_update(self_: RedisSession) -> None:
            self_.modified = True

        super().__init__(initial or {}, on_update)
        self.sid = sid
        self.new = new
        self.modified = False
        self.rotate = False
        self.previous_sid: str | None = None
        self.save_failed = False


class UnloadedSession(NullSession):
    """The session Redis could not load: empty, never saved, and ``error`` raised at the first
    ``before_request`` hook."""

    def __init__(self, error: redis.RedisError) -> None:
        super().__init__()
        self.error = error


class RedisSessionInterface(SessionInterface):
    def __init__(self, settings: Settings, sessions: SessionRepository) -> None:
        self.settings = settings
        self.sessions = sessions
        self.cookie_name = "__Host-session" if self.settings.secure_cookies else "aggregator_session"

    def open_session(self, app: Flask, request: Request) -> RedisSession | UnloadedSession:
        sid = request.cookies.get(self.cookie_name)
        if sid and len(sid) < 100:
            try:
                data = self.sessions.load(sid)
            except redis.RedisError as exc:
                return UnloadedSession(exc)
            if data is not None:
                return RedisSession(data, sid=sid)
        return RedisSession(new=True)

    def save_session(self, app: Flask, session: RedisSession, response: Response) -> None:  # type: ignore[override]
        if session.save_failed:  # Flask saves again after answering with the error: no second try
            return
        try:
            self._save(session, response)
        except redis.RedisError:
            session.save_failed = True
            raise

    def _save(self, session: RedisSession, response: Response) -> None:
        store = self.sessions
        secure = self.settings.secure_cookies
        if session.rotate and session.sid:
            store.delete(session.sid)
            session.sid = None
        if not session:
            if session.sid:
                store.delete(session.sid)
                response.delete_cookie(self.cookie_name, path="/", secure=secure,
                                       samesite="Lax", httponly=True)
            return
        if not (session.modified or session.sid is None or session.rotate):
            return
        if session.sid is None:
            session.sid = new_token()
        store.save(session.sid, dict(session), self.settings.session_ttl)
        response.set_cookie(
            self.cookie_name, session.sid, max_age=self.settings.session_ttl, path="/",
            secure=secure, httponly=True, samesite="Lax",
        )
        response.vary.add("Cookie")


def install_sessions(app: Flask, settings: Settings, sessions: SessionRepository) -> None:
    """Keep ``app``'s sessions in Redis, and raise a failed load before any other hook runs
    (they read the session: CSRF, the current person)."""
    app.session_interface = RedisSessionInterface(settings, sessions)
    app.before_request_funcs.setdefault(None, []).insert(0, _raise_unloaded)


def _raise_unloaded() -> None:
    if isinstance(session, UnloadedSession):
        raise session.error


def rotate_session() -> None:
    """Give the current session a new id at the next save (call on login)."""
    session.rotate = True  # type: ignore[attr-defined]
    session.modified = True
