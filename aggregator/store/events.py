"""Events to apps: the person's outbox of facts, and the apps' SSF streams and delivery queues.

Two stages, because two hash slots:

1. **Outbox** (the person's slot). A change that apps must hear of (a grant ended, a
   registration's status changed) adds a *fact* to ``event-outbox:{u:<person>}`` inside the
   very MULTI/EXEC or script that makes the change: the change and its fact are written together
   or not at all. The person is listed in ``event-outboxes:{ssf}`` just before the transaction
   and again just after it, so the delivery worker finds the outbox without SCAN (a status
   setter lists them before only when its record says the status changes, and after only when
   the script did write a fact).
2. **Streams and deliveries** (the slot of ``{ssf}``). The delivery worker turns each fact into
   one SET per app concerned and queues it, by a script that also checks the app's stream: push
   deliveries go to a Redis stream read through a consumer group (as the refresh jobs are), poll
   deliveries wait in the stream's poll set, a paused stream's SETs are held.

A fact relayed twice (a worker died between queueing and deleting it) yields the same ``jti``;
the marker ``ssf-queued:{ssf}:<jti>`` keeps it from being queued twice for a day.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import redis

from aggregator.store import consumer_groups, key_names

GROUP = "deliverers"
#: a delivery pending this long without its worker vouching for it is taken over (a worker
#: vouches for the ones in hand every second)
CLAIM_IDLE_MS = 5_000
HEARTBEAT_TTL_MS = 5_000
#: a queued jti is not queued again for this long
QUEUED_MARK_MS = 24 * 3600 * 1000
#: SETs held for a paused stream, and waiting for a poll receiver, at most (oldest dropped)
MAX_WAITING = 10_000
#: verification requests a stream may make per minute (each queues a SET)
MAX_VERIFICATIONS = 30
#: a person's index entry younger than this is kept even when their outbox looks empty: the
#: transaction announced by it may not have run yet (see ``forget_if_drained``)
ANNOUNCE_GRACE = 2.0

#: RFC 8936 poll delivery: its SETs wait in the stream's poll set (the scripts below spell it too)
POLL = "urn:ietf:rfc:8936"


@dataclass(frozen=True)
class Fact:
    """Something apps must hear of, as written in the person's outbox."""

    entry_id: str
    person_id: str
    data: dict[str, Any]


@dataclass
class StreamRecord:
    """An app's SSF stream (SSF 1.0 §8.1.1), with its delivery state."""

    stream_id: str
    client_id: str
    method: str
    endpoint_url: str
    events_requested: list[str]
    description: str = ""
    status: str = "enabled"
    reason: str = ""
    created_at: int = 0
    updated_at: int = 0
    #: when delivery last gave up (attempts exhausted), 0 when it has not since the last enable
    failed_at: int = 0

    @property
    def failing(self) -> bool:
        return bool(self.failed_at)


@dataclass(frozen=True)
class Delivery:
    """One SET to push to one stream, as taken from the queue."""

    entry_id: str
    client_id: str
    jti: str
    set: str
    attempt: int


# ---------------------------------------------------------------- stage 1: the person's outbox


def announce(client: redis.Redis, person_id: str) -> None:
    """List the person among those whose outbox may hold facts (before and after the write)."""
    client.zadd(key_names.EVENT_OUTBOXES, {person_id: time.time()})


def stage_fact(pipe: Any, person_id: str, fact: dict[str, Any]) -> None:
    """Add ``fact`` to the person's outbox inside the caller's transaction (``pipe``)."""
    pipe.xadd(key_names.event_outbox(person_id), {"fact": json.dumps(fact, separators=(",", ":"))})


def execute_with_fact(client: redis.Redis, pipe: Any, person_id: str,
                      fact: dict[str, Any] | None) -> list[Any]:
    """Run the transaction ``pipe`` (a MULTI in the person's slot, holding a change) with
    ``fact`` added to the person's outbox in it, the person announced just before it runs and
    again after; without a fact, just run it. Returns the transaction's results."""
    if fact is None:
        return pipe.execute()
    announce(client, person_id)
    stage_fact(pipe, person_id, fact)
    results = pipe.execute()
    announce(client, person_id)
    return results


def record_fact(client: redis.Redis, person_id: str, fact: dict[str, Any]) -> None:
    """A fact that changes nothing else (new data at an institution): announced and written."""
    execute_with_fact(client, client.pipeline(transaction=True), person_id, fact)


class EventOutbox:
    """The delivery worker's side of the outboxes: find, read and drain them."""

    _FORGET = """
    if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then
        redis.call('ZREM', KEYS[1], ARGV[1])
        return 1
    end
    return 0
    """
    _DROP_IF_EMPTY = """
    if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('XLEN', KEYS[1]) == 0 then
        redis.call('DEL', KEYS[1])
    end
    return redis.call('EXISTS', KEYS[1])
    """

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._forget = client.register_script(self._FORGET)
        self._drop_if_empty = client.register_script(self._DROP_IF_EMPTY)

    def people(self, count: int = 200) -> list[tuple[str, bytes]]:
        """Up to ``count`` listed people, oldest first, with their raw index score."""
        found = self.redis.zrange(key_names.EVENT_OUTBOXES, 0, count - 1, withscores=True,
                                  score_cast_func=bytes)
        return [(person.decode(), score) for person, score in found]

    def facts(self, person_id: str, count: int = 100) -> list[Fact]:
        entries = self.redis.xrange(key_names.event_outbox(person_id), count=count)
        return [Fact(entry_id.decode(), person_id, json.loads(data[b"fact"]))
                for entry_id, data in entries]

    def done(self, fact: Fact) -> None:
        self.redis.xdel(key_names.event_outbox(fact.person_id), fact.entry_id)

    def forget_if_drained(self, person_id: str, score: bytes) -> None:
        """Unlist the person when their outbox is empty and nobody announced them meanwhile.

        The score compare keeps an announcement made after we read the index; the grace keeps
        one made just before a transaction we could not see yet.
        """
        if float(score) > time.time() - ANNOUNCE_GRACE:
            return
        if not self._drop_if_empty(keys=[key_names.event_outbox(person_id)]):
            self._forget(keys=[key_names.EVENT_OUTBOXES], args=[person_id, score])


# ---------------------------------------------------------------- stage 2: streams and deliveries


class EventStreams:
    """Apps' streams and everything queued for them, in the slot of ``{ssf}``."""

    # Queue a SET for a stream as its state says: push -> the delivery queue, poll -> the poll
    # set, paused -> held, disabled or gone -> dropped. Once per jti.
    _QUEUE = """
    local method = redis.call('HGET', KEYS[1], 'method')
    if not method then return 'none' end
    local status = redis.call('HGET', KEYS[1], 'status')
    if status == 'disabled' then return 'disabled' end
    if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[4]) then return 'duplicate' end
    if status == 'paused' then
        redis.call('LPUSH', KEYS[5], cjson.encode({jti = ARGV[2], set = ARGV[3]}))
        redis.call('LTRIM', KEYS[5], 0, ARGV[5] - 1)
        return 'held'
    end
    if method == 'urn:ietf:rfc:8936' then
        redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
        redis.call('ZADD', KEYS[6], ARGV[6], ARGV[2])
        if redis.call('ZCARD', KEYS[6]) > tonumber(ARGV[5]) then
            local oldest = redis.call('ZPOPMIN', KEYS[6])
            redis.call('HDEL', KEYS[4], oldest[1])
        end
        return 'poll'
    end
    redis.call('XADD', KEYS[3], '*', 'client_id', ARGV[1], 'jti', ARGV[2], 'set', ARGV[3],
               'attempt', '0')
    return 'push'
    """

    # A failed push: the entry leaves the queue, and waits for its next attempt, or (attempts
    # exhausted) is held while the stream is paused as failing.
    _FAILED = """
    redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
    redis.call('XDEL', KEYS[1], ARGV[2])
    if redis.call('EXISTS', KEYS[3]) == 0 then return 'gone' end
    if ARGV[7] == '1' then
        redis.call('LPUSH', KEYS[4], cjson.encode({jti = ARGV[4], set = ARGV[5]}))
        redis.call('LTRIM', KEYS[4], 0, ARGV[9] - 1)
        redis.call('HSET', KEYS[3], 'status', 'paused', 'reason', ARGV[8], 'failed_at', ARGV[10],
                   'updated_at', ARGV[10])
        return 'failing'
    end
    redis.call('ZADD', KEYS[2], ARGV[6], cjson.encode({client_id = ARGV[3], jti = ARGV[4],
               set = ARGV[5], attempt = ARGV[11]}))
    return 'retry'
    """

    # A queued push whose stream changed meanwhile leaves the queue as the stream now says:
    # paused -> held, switched to poll -> the poll set, disabled or gone -> dropped.
    _REDIRECT = """
    redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
    redis.call('XDEL', KEYS[1], ARGV[2])
    local method = redis.call('HGET', KEYS[2], 'method')
    local status = redis.call('HGET', KEYS[2], 'status')
    if not method or status == 'disabled' then return 'dropped' end
    if status == 'paused' then
        redis.call('LPUSH', KEYS[3], cjson.encode({jti = ARGV[3], set = ARGV[4]}))
        redis.call('LTRIM', KEYS[3], 0, ARGV[5] - 1)
        return 'held'
    end
    redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
    redis.call('ZADD', KEYS[5], ARGV[6], ARGV[3])
    return 'poll'
    """

    # A stream switched from poll to push: the SETs waiting for a poll are pushed, oldest first.
    _POLLED_TO_PUSH = """
    local jtis = redis.call('ZRANGE', KEYS[1], 0, -1)
    for _, jti in ipairs(jtis) do
        local set = redis.call('HGET', KEYS[2], jti)
        if set then
            redis.call('XADD', KEYS[3], '*', 'client_id', ARGV[1], 'jti', jti, 'set', set,
                       'attempt', '0')
        end
    end
    redis.call('DEL', KEYS[1], KEYS[2])
    return #jtis
    """

    # Retries that are due go back into the delivery queue.
    _PROMOTE = """
    local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
    for _, raw in ipairs(due) do
        local item = cjson.decode(raw)
        redis.call('XADD', KEYS[2], '*', 'client_id', item.client_id, 'jti', item.jti,
                   'set', item.set, 'attempt', item.attempt)
        redis.call('ZREM', KEYS[1], raw)
    end
    return #due
    """

    # A stream enabled again: its held SETs go out (push) or wait for a poll, oldest first.
    _RELEASE = """
    local method = redis.call('HGET', KEYS[1], 'method')
    local held = redis.call('LRANGE', KEYS[2], 0, -1)
    for i = #held, 1, -1 do
        local item = cjson.decode(held[i])
        if method == 'urn:ietf:rfc:8936' then
            redis.call('HSET', KEYS[4], item.jti, item.set)
            redis.call('ZADD', KEYS[5], ARGV[2], item.jti)
        else
            redis.call('XADD', KEYS[3], '*', 'client_id', ARGV[1], 'jti', item.jti,
                       'set', item.set, 'attempt', '0')
        end
    end
    redis.call('DEL', KEYS[2])
    return #held
    """

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._queue = client.register_script(self._QUEUE)
        self._failed = client.register_script(self._FAILED)
        self._promote = client.register_script(self._PROMOTE)
        self._release = client.register_script(self._RELEASE)
        self._redirect = client.register_script(self._REDIRECT)
        self._polled_to_push = client.register_script(self._POLLED_TO_PUSH)

    # ------------------------------------------------------------------ streams

    def get(self, client_id: str) -> StreamRecord | None:
        raw = self.redis.hgetall(key_names.event_stream(client_id))
        if not raw:
            return None
        data = {k.decode(): v.decode() for k, v in raw.items()}
        return StreamRecord(
            stream_id=data["stream_id"], client_id=data["client_id"], method=data["method"],
            endpoint_url=data.get("endpoint_url", ""),
            events_requested=json.loads(data.get("events_requested") or "[]"),
            description=data.get("description", ""), status=data.get("status") or "enabled",
            reason=data.get("reason", ""), created_at=int(data.get("created_at") or 0),
            updated_at=int(data.get("updated_at") or 0), failed_at=int(data.get("failed_at") or 0),
        )

    def create(self, record: StreamRecord) -> bool:
        """Store a new stream; False when the client has one already (one stream per client)."""
        key = key_names.event_stream(record.client_id)
        if not self.redis.hsetnx(key, "stream_id", record.stream_id):
            return False
        self.save(record)
        self.redis.sadd(key_names.EVENT_STREAMS, record.client_id)
        return True

    def save(self, record: StreamRecord) -> None:
        """Store the stream's configuration; a switch from poll to push pushes what waited."""
        key = key_names.event_stream(record.client_id)
        before = self.redis.hget(key, "method")
        fields: dict[str, Any] = asdict(record)
        fields["events_requested"] = json.dumps(record.events_requested)
        fields["updated_at"] = int(time.time())
        self.redis.hset(key, mapping=fields)
        if before == POLL.encode() and record.method != POLL:
            self._polled_to_push(keys=[key_names.event_poll_order(record.client_id),
                                       key_names.event_poll(record.client_id),
                                       key_names.EVENT_DELIVERIES], args=[record.client_id])

    def delete(self, client_id: str) -> bool:
        """The stream and everything waiting for it (queued pushes are dropped when taken)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key_names.event_stream(client_id))
        pipe.delete(key_names.event_held(client_id), key_names.event_poll(client_id),
                    key_names.event_poll_order(client_id))
        pipe.srem(key_names.EVENT_STREAMS, client_id)
        return bool(pipe.execute()[0])

    def all(self) -> list[StreamRecord]:
        ids = sorted(raw.decode() for raw in self.redis.smembers(key_names.EVENT_STREAMS))
        return [record for record in (self.get(cid) for cid in ids) if record is not None]

    def set_status(self, client_id: str, status: str, reason: str = "") -> int:
        """Set the status an app asked for (SSF 1.0 §8.1.2.2); enabling releases held SETs
        and clears a failing mark. Returns how many held SETs were released."""
        key = key_names.event_stream(client_id)
        now = int(time.time())
        pipe = self.redis.pipeline(transaction=True)
        update: dict[str, Any] = {"status": status, "reason": reason, "updated_at": now}
        if status == "enabled":
            update["failed_at"] = 0
        pipe.hset(key, mapping=update)
        pipe.execute()
        if status != "enabled":
            return 0
        return int(self._release(
            keys=[key, key_names.event_held(client_id), key_names.EVENT_DELIVERIES,
                  key_names.event_poll(client_id), key_names.event_poll_order(client_id)],
            args=[client_id, time.time()]))

    def waiting(self, client_id: str) -> dict[str, int]:
        """For operators: SETs held and waiting for a poll."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.llen(key_names.event_held(client_id))
        pipe.zcard(key_names.event_poll_order(client_id))
        held, polled = pipe.execute()
        return {"held": int(held), "awaiting_poll": int(polled)}

    _COUNT = """
    local n = redis.call('INCR', KEYS[1])
    if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
    return n
    """

    def verification_allowed(self, client_id: str) -> bool:
        """At most MAX_VERIFICATIONS verification requests per stream and minute."""
        count = self.redis.eval(self._COUNT, 1, key_names.event_verifications(client_id), 60_000)
        return int(count) <= MAX_VERIFICATIONS

    # ------------------------------------------------------------------ queueing

    def queue(self, client_id: str, jti: str, signed: str) -> str:
        """Queue one SET for the client's stream; what became of it (push, poll, held,
        duplicate, disabled, none)."""
        return self._queue(
            keys=[key_names.event_stream(client_id), key_names.event_queued(jti),
                  key_names.EVENT_DELIVERIES, key_names.event_poll(client_id),
                  key_names.event_held(client_id), key_names.event_poll_order(client_id)],
            args=[client_id, jti, signed, QUEUED_MARK_MS, MAX_WAITING, time.time()],
        ).decode()

    # ------------------------------------------------------------------ poll (RFC 8936)

    def poll(self, client_id: str, ack: Iterable[str], max_events: int) -> tuple[dict[str, str], bool]:
        """Drop the acknowledged SETs, then up to ``max_events`` waiting ones (oldest first)
        and whether more wait."""
        poll_key, order_key = key_names.event_poll(client_id), key_names.event_poll_order(client_id)
        acked = list(ack)
        if acked:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hdel(poll_key, *acked)
            pipe.zrem(order_key, *acked)
            pipe.execute()
        if max_events <= 0:
            return {}, bool(self.redis.zcard(order_key))
        jtis = [raw.decode() for raw in self.redis.zrange(order_key, 0, max_events)]
        more = len(jtis) > max_events
        jtis = jtis[:max_events]
        if not jtis:
            return {}, False
        values = self.redis.hmget(poll_key, jtis)
        return {jti: value.decode() for jti, value in zip(jtis, values, strict=True) if value}, more

    # ------------------------------------------------------------------ the delivery worker

    def heartbeat(self, name: str) -> None:
        self.redis.set(key_names.EVENT_WORKER_ALIVE, name, px=HEARTBEAT_TTL_MS)

    def worker_alive(self) -> bool:
        return bool(self.redis.exists(key_names.EVENT_WORKER_ALIVE))

    def take(self, consumer: str, count: int, block_ms: int) -> list[Delivery]:
        """Deliveries for ``consumer``: abandoned ones first (a dead worker's), then new."""
        entries = consumer_groups.take(self.redis, key_names.EVENT_DELIVERIES, GROUP, consumer,
                                       count=count, block_ms=block_ms, claim_idle_ms=CLAIM_IDLE_MS)
        taken = []
        for entry_id, data in entries:
            if not data:  # deleted while pending
                continue
            fields = {k.decode(): v.decode() for k, v in data.items()}
            taken.append(Delivery(entry_id.decode(), fields["client_id"], fields["jti"],
                                  fields["set"], int(fields.get("attempt") or 0)))
        return taken

    def touch(self, consumer: str, entry_ids: list[str]) -> None:
        """Vouch for deliveries still in hand (XCLAIM resets their idle time)."""
        if entry_ids:
            self.redis.xclaim(key_names.EVENT_DELIVERIES, GROUP, consumer, 0, entry_ids, justid=True)

    def delivered(self, delivery: Delivery) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(key_names.EVENT_DELIVERIES, GROUP, delivery.entry_id)
        pipe.xdel(key_names.EVENT_DELIVERIES, delivery.entry_id)
        pipe.execute()

    def redirect(self, delivery: Delivery) -> str:
        """Take a push out of the queue for a stream that is no longer pushed to now (paused,
        switched to poll, disabled, deleted): ``held``, ``poll`` or ``dropped``."""
        return self._redirect(
            keys=[key_names.EVENT_DELIVERIES, key_names.event_stream(delivery.client_id),
                  key_names.event_held(delivery.client_id), key_names.event_poll(delivery.client_id),
                  key_names.event_poll_order(delivery.client_id)],
            args=[GROUP, delivery.entry_id, delivery.jti, delivery.set, MAX_WAITING, time.time()],
        ).decode()

    def failed(self, delivery: Delivery, *, retry_at: float | None, reason: str) -> str:
        """Leave the queue: retry at ``retry_at``, or (None: attempts exhausted) hold the SET
        and pause the stream as failing. ``retry``, ``failing`` or ``gone``."""
        return self._failed(
            keys=[key_names.EVENT_DELIVERIES, key_names.EVENT_RETRIES,
                  key_names.event_stream(delivery.client_id), key_names.event_held(delivery.client_id)],
            args=[GROUP, delivery.entry_id, delivery.client_id, delivery.jti, delivery.set,
                  retry_at or 0, "1" if retry_at is None else "0", reason, MAX_WAITING,
                  int(time.time()), delivery.attempt + 1],
        ).decode()

    def promote_due(self) -> int:
        """Move the retries that are due back into the delivery queue."""
        return int(self._promote(keys=[key_names.EVENT_RETRIES, key_names.EVENT_DELIVERIES],
                                 args=[time.time()]))

    def queue_status(self) -> dict[str, int | bool]:
        consumer_groups.ensure_group(self.redis, key_names.EVENT_DELIVERIES, GROUP)
        pending = self.redis.xpending(key_names.EVENT_DELIVERIES, GROUP)
        return {"queued": int(self.redis.xlen(key_names.EVENT_DELIVERIES)),
                "in_flight": int(pending["pending"]),
                "retrying": int(self.redis.zcard(key_names.EVENT_RETRIES)),
                "outboxes": int(self.redis.zcard(key_names.EVENT_OUTBOXES)),
                "worker_alive": self.worker_alive()}
