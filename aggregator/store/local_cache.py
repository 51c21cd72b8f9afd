"""Per worker process: the decoded records of the hot path, kept coherent by Redis itself.

Introspection and client authentication read the same few records again and again (the
client, the token, the grant, the person's registrations and their cached upstream tokens).
This cache keeps them decoded (JSON parsed, secrets decrypted) in the worker's memory, and Redis
tells it when any of them changes: ``CLIENT TRACKING ... BCAST PREFIX`` (Redis 6+, RESP2
redirection, so the embedded Redis 6.2 serves) on one dedicated connection, redirected to a
second dedicated connection subscribed to ``__redis__:invalidate``.

Guarantees (docs/introspection.md, "The worker cache"):

- *Read your writes, across processes.* Redis queues an invalidation to the listener before it
  answers the command that changed the key, so by the time any writer (this worker, another
  worker, the CLI) has its reply, the message is in our socket. Every lookup first drains the
  listener socket itself (a zero-timeout poll under a lock), so the very next request anywhere
  sees the change, even before the background thread runs.
- *No fill races an invalidation.* Every invalidation bumps a generation counter; a value read
  from Redis is kept only if the counter did not move while it was read.
- *Lost means bypassed.* When either connection drops, Redis restarts, or a heartbeat (``PING``
  on both every :data:`HEARTBEAT` seconds) goes unanswered for :data:`DEAD_AFTER` seconds, the
  cache is emptied and every read goes to Redis until both connections are back and tracking is
  on again. A flush of the whole database (``FLUSHALL``, Redis's null invalidation) empties it.

Off under Redis Cluster (tracking would have to follow every node: the store reads Redis
directly there) and with ``AGGREGATOR_LOCAL_CACHE=off``. Started lazily by the first lookup in
each process, so a gunicorn master never holds its connections or thread (fork-safe).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import redis

T = TypeVar("T")
log = logging.getLogger("aggregator.store.local_cache")

#: most records a worker keeps (least recently used go first)
MAX_ENTRIES = 50_000
#: seconds between PINGs on both dedicated connections
HEARTBEAT = 0.25
#: a connection that has not answered a PING for this long is taken as hung (so a silent
#: hang is noticed within HEARTBEAT + DEAD_AFTER: under a second)
DEAD_AFTER = 0.5
#: how long the background thread waits on the listener socket between looks
POLL = 0.1
#: pause between attempts to (re)connect
RECONNECT_PAUSE = 0.2
CHANNEL = b"__redis__:invalidate"


class LocalCache:
    """Decoded records by Redis key, invalidated by Redis (see the module's documentation)."""

    def __init__(self, connect: Callable[[], Any], prefixes: Iterable[str],
                 size: int = MAX_ENTRIES) -> None:
        #: makes one dedicated redis-py ``Connection`` (not from the pool)
        self._connect = connect
        self.prefixes = tuple(prefixes)
        self.size = size
        self._pid = 0
        self._start_lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        """Fresh state for this process (a forked child inherits none of its parent's)."""
        self._lock = threading.Lock()  # entries, deps, generation
        self._io = threading.Lock()  # the listener socket
        self._entries: OrderedDict[str, tuple[Any, tuple[str, ...]]] = OrderedDict()
        self._deps: dict[str, set[str]] = {}
        self._generation = 0
        self._active = False
        self._listener: Any = None
        self._tracking: Any = None
        self._ready: Callable[[float], bool] | None = None
        self._waiter: Callable[[float], bool] | None = None
        #: per connection, when its oldest PING still unanswered was sent (None: none is)
        self._pinged: dict[str, float | None] = {"listener": None, "tracking": None}
        self._stopped = threading.Event()

    # ------------------------------------------------------------------ the hot path

    def read(self, key: str, load: Callable[[], T | None],
             deps: Callable[[T], Iterable[str]] | None = None) -> T | None:
        """The record at ``key``: from memory, or ``load()`` (kept unless something changed
        meanwhile). ``deps(value)`` names the other keys it was built from (their change drops
        it too). A missing record (None) is not kept."""
        self._ensure_started()
        self.drain()
        with self._lock:
            if not self._active:
                generation = -1
            else:
                found = self._entries.get(key)
                if found is not None:
                    self._entries.move_to_end(key)
                    return found[0]
                generation = self._generation
        value = load()
        if value is not None and generation >= 0:
            self._keep(key, value, tuple(deps(value)) if deps else (), generation)
        return value

    def read_many(self, keys: Sequence[str],
                  load: Callable[[list[str]], dict[str, T | None]]) -> dict[str, T | None]:
        """Several records at once: those in memory, and ``load(missing)`` (one round trip)
        for the others, each kept as :meth:`read` keeps one."""
        self._ensure_started()
        self.drain()
        found: dict[str, T | None] = {}
        missing: list[str] = []
        with self._lock:
            generation = self._generation if self._active else -1
            for key in keys:
                hit = self._entries.get(key) if generation >= 0 else None
                if hit is None:
                    missing.append(key)
                else:
                    self._entries.move_to_end(key)
                    found[key] = hit[0]
        if missing:
            loaded = load(missing)
            if generation >= 0:
                for key, value in loaded.items():
                    if value is not None:
                        self._keep(key, value, (), generation)
            found.update(loaded)
        return found

    def _keep(self, key: str, value: Any, deps: tuple[str, ...], generation: int) -> None:
        with self._lock:
            if not self._active or generation != self._generation:
                return  # an invalidation came in while it was read: it may be stale already
            self._drop(key)
            self._entries[key] = (value, deps)
            for dep in (key, *deps):
                self._deps.setdefault(dep, set()).add(key)
            while len(self._entries) > self.size:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        """Forget one entry and its dependency links (``_lock`` held)."""
        found = self._entries.pop(key, None)
        if found is None:
            return
        for dep in (key, *found[1]):
            holders = self._deps.get(dep)
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self._deps[dep]

    def invalidate(self, keys: Iterable[str]) -> None:
        with self._lock:
            self._generation += 1
            for changed in keys:
                for holder in list(self._deps.get(changed, ())):
                    self._drop(holder)

    def _flush(self, *, active: bool) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._deps.clear()
            self._active = active

    @property
    def active(self) -> bool:
        """Whether lookups are served from memory now (False: bypassed, reads go to Redis)."""
        return self._active

    def __len__(self) -> int:
        return len(self._entries)

    # ------------------------------------------------------------------ invalidation messages

    def drain(self) -> None:
        """Apply every invalidation already received, without waiting for more; notice a
        closed connection (Redis restarted, ``CLIENT KILL``) at once.

        Most calls find nothing to read, and skip the lock (which the request threads would
        otherwise queue on, three times a request). The order of the two checks matters: a
        thread that has taken an invalidation off the socket holds ``_io`` until it has applied
        it, so "nothing to read, then nobody draining" means nothing is pending."""
        listener, tracking = self._listener, self._tracking
        if listener is None or tracking is None:
            return
        if not self._arrived((listener, tracking)) and not self._io.locked():
            return
        with self._io:
            if self._listener is None or not self._readable(
                    (self._listener, self._tracking), self._ready, 0):
                return
            try:
                while self._listener.can_read(timeout=0):
                    self._handle(self._listener.read_response(timeout=DEAD_AFTER))
                # nothing arrives on the tracking connection but its PINGs' answers, or EOF
                while self._tracking.can_read(timeout=0):
                    self._tracking.read_response(timeout=DEAD_AFTER)
                    self._pinged["tracking"] = None
            except (redis.RedisError, OSError, ValueError) as exc:
                self._lost(f"a tracking connection failed ({exc})")

    @classmethod
    def _arrived(cls, conns: tuple[Any, Any]) -> bool:
        """:meth:`_readable` with a stateless ``select``, which any thread may call, unlike the
        poll objects; a socket closed meanwhile counts as something to read."""
        try:
            socks = [conn._sock for conn in conns]
            return cls._readable(conns, lambda timeout: bool(select.select(socks, [], [], timeout)[0]), 0)
        except (OSError, ValueError, TypeError, AttributeError):
            return True  # closed meanwhile: the locked drain finds out

    @staticmethod
    def _readable(conns: tuple[Any, Any], poller: Callable[[float], bool], timeout: float) -> bool:
        """One syscall: has either connection anything to read (data, or EOF)? A drain reads
        every complete reply, so what the parsers buffer never waits unseen; TLS may hold
        decrypted bytes the socket no longer shows."""
        if any(getattr(conn._sock, "pending", _nothing)() for conn in conns):
            return True
        return poller(timeout)

    def _handle(self, message: Any) -> None:
        if not isinstance(message, list) or not message:
            return
        kind = message[0]
        if kind == b"pong":  # a PING's answer in subscribed mode
            self._pinged["listener"] = None
        elif kind == b"message" and len(message) == 3 and message[1] == CHANNEL:
            keys = message[2]
            if keys is None:  # FLUSHALL / FLUSHDB: everything is gone
                self._flush(active=self._active)
            else:
                self.invalidate(k.decode() if isinstance(k, bytes) else str(k) for k in keys)

    def _lost(self, why: str) -> None:
        """Empty and bypass the cache; the background thread reconnects (``_io`` held)."""
        if self._active:
            log.warning("local cache bypassed: %s", why)
        self._flush(active=False)
        for conn in (self._listener, self._tracking):
            if conn is not None:
                with contextlib.suppress(redis.RedisError, OSError):  # closing what failed
                    conn.disconnect()
        self._listener = self._tracking = None

    # ------------------------------------------------------------------ the background thread

    def _ensure_started(self) -> None:
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            # a forked child: the parent's connections and thread are not ours (never close
            # them here: that would shut the parent's sockets)
            self._reset()
            self._pid = os.getpid()
            thread = threading.Thread(target=_run, args=(weakref.ref(self), self._stopped),
                                      name="local-cache", daemon=True)
            thread.start()

    def stop(self) -> None:
        """Stop the background thread and close both connections (a test's AS stopping)."""
        self._stopped.set()
        with self._io:
            self._lost("stopped")

    def _establish(self) -> None:
        """Both connections, subscribed and tracking; then serve from memory again."""
        listener = self._connect()
        tracking = self._connect()
        try:
            listener.connect()
            listener.send_command("CLIENT", "ID")
            listener_id = listener.read_response()
            listener.send_command("SUBSCRIBE", CHANNEL)
            listener.read_response()  # ["subscribe", channel, 1]
            tracking.connect()
            args: list[Any] = ["CLIENT", "TRACKING", "ON", "REDIRECT", listener_id, "BCAST"]
            for prefix in self.prefixes:
                args += ["PREFIX", prefix]
            tracking.send_command(*args)
            tracking.read_response()
        except BaseException:
            listener.disconnect()
            tracking.disconnect()
            raise
        with self._io:
            if self._stopped.is_set():
                listener.disconnect()
                tracking.disconnect()
                return
            self._listener, self._tracking = listener, tracking
            # one poller for request threads (under ``_io``), one for the background wait:
            # a poll object must not be polled by two threads at once
            socks = [listener._sock, tracking._sock]
            self._ready, self._waiter = _poller(socks), _poller(socks)
            self._pinged = {"listener": None, "tracking": None}
            self._flush(active=True)  # fills begun while bypassed carry an old generation

    def _heartbeat(self) -> None:
        """PING both connections (answers are read by :meth:`drain`); one that has left a PING
        unanswered for DEAD_AFTER is hung."""
        now = time.monotonic()
        with self._io:
            if self._listener is None:
                return
            try:
                for name, conn in (("listener", self._listener), ("tracking", self._tracking)):
                    since = self._pinged[name]
                    if since is not None and now - since > DEAD_AFTER:
                        raise redis.TimeoutError(f"no PONG on the {name} connection")
                    conn.send_command("PING")
                    if since is None:
                        self._pinged[name] = now
            except (redis.RedisError, OSError, ValueError) as exc:
                self._lost(f"heartbeat failed ({exc})")

    def _wait_for_messages(self) -> None:
        waiter = self._waiter
        if self._listener is None or waiter is None:
            time.sleep(POLL)
            return
        with contextlib.suppress(OSError, ValueError, RuntimeError):  # closed: the drain notices
            waiter(POLL)
        self.drain()


def _nothing() -> int:
    return 0


def _poller(socks: list[Any]) -> Callable[[float], bool]:
    """``ready(timeout)``: whether any of ``socks`` has something to read. ``poll`` (no limit on
    descriptor numbers), or ``select`` where gevent's monkey-patching has removed ``poll``
    (its cooperative ``select`` has no such limit either)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        for sock in socks:
            poller.register(sock.fileno(), select.POLLIN)
        return lambda timeout: bool(poller.poll(int(timeout * 1000)))
    return lambda timeout: bool(select.select(socks, [], [], timeout)[0])


def _run(ref: weakref.ref[LocalCache], stopped: threading.Event) -> None:
    """Keep the connections up, read invalidations, beat; ends with its cache."""
    next_beat = 0.0
    while not stopped.is_set():
        cache = ref()
        if cache is None:
            return
        try:
            if cache._listener is None:
                cache._establish()
            cache._wait_for_messages()
            if time.monotonic() >= next_beat:
                cache._heartbeat()
                next_beat = time.monotonic() + HEARTBEAT
        except redis.ResponseError as exc:  # Redis < 6, or an ACL user without CLIENT/SUBSCRIBE
            log.warning("local cache off: Redis refused client tracking (%s)", exc)
            return
        except (redis.RedisError, OSError) as exc:
            log.debug("local cache: cannot connect (%s)", type(exc).__name__)
            stopped.wait(RECONNECT_PAUSE)
        except Exception:  # never die silently: bypass, say why, try again
            log.exception("local cache: unexpected failure; bypassed until reconnected")
            with cache._io:
                cache._lost("unexpected failure")
            stopped.wait(RECONNECT_PAUSE)
        del cache


def dedicated_connection(client: Any) -> Callable[[], Any]:
    """A maker of connections like ``client``'s (same server, credentials, TLS), outside its
    pool: RESP2 (redis-py 8 speaks RESP3 by default; RESP2 delivers invalidations as plain
    Pub/Sub messages on the redirect connection), no health check (a subscribed connection
    answers PING differently) and short reads."""
    pool = client.connection_pool
    options = {**pool.connection_kwargs, "protocol": 2, "health_check_interval": 0,
               "socket_timeout": DEAD_AFTER}
    return lambda: pool.connection_class(**options)
