"""The refresher's queue: upstream refreshes requested by web workers, run by refresher processes.

A job is an entry of one Redis stream read through a consumer group, so each job goes to one
refresher and stays pending until that refresher acknowledges it: a refresher that dies
mid-job leaves it pending, and another one claims it after :data:`CLAIM_IDLE_MS`
(at-least-once; a repeat is harmless, the refresh itself is single-flight under the
registration's lease). A marker per (registration, scope set) keeps one job of each in the
queue however many requests ask. Refreshers announce themselves with a heartbeat key; a
failed refresh leaves a short note the waiting requests read.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from aggregator.store import consumer_groups, key_names
from aggregator.store.base import remember_person_key
from aggregator.store.registrations import scope_key

GROUP = "refreshers"
#: a job pending this long without its refresher vouching for it is taken over (a refresher
#: touches the jobs it is running every second, so only a dead one's, or one whose delivery was
#: lost with a Redis restart, grow this idle)
CLAIM_IDLE_MS = 10_000
#: a refresher is alive while its heartbeat is this recent
HEARTBEAT_TTL_MS = 5_000
#: how long a failure note is kept for waiters
OUTCOME_MS = 15_000
#: the queue is capped (approximately): jobs are small and short-lived
MAX_LEN = 100_000


@dataclass(frozen=True)
class RefreshJob:
    """Refresh ``registration_id`` for ``scopes`` unless its cached token has at least
    ``min_remaining`` seconds left (a renewal ahead of expiry asks for more than a waiter)."""

    entry_id: str
    person_id: str
    registration_id: str
    scopes: frozenset[str]
    min_remaining: int
    requested_at: float


@dataclass(frozen=True)
class FailedRefresh:
    status: str
    error: str
    at: float


class RefreshJobs:
    # the marker and the job together or not at all: a marker without its job would keep
    # anyone from queueing the refresh until the marker expired. Both are in the slot of
    # ``{refresh-jobs}`` (the marker's hash tag is the stream's name), so on a Redis Cluster
    # this script touches one slot.
    _REQUEST = """
    if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'person_id', ARGV[3],
               'registration_id', ARGV[4], 'scopes', ARGV[5], 'min_remaining', ARGV[6],
               'requested_at', ARGV[7])
    return 1
    """

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._request = client.register_script(self._REQUEST)

    # ------------------------------------------------------------------ web workers

    def request(self, person_id: str, registration_id: str, scopes: frozenset[str],
                min_remaining: int, ttl_ms: int) -> bool:
        """Queue a refresh unless one of the same is queued already; True when this call did."""
        marker = key_names.refresh_job(person_id, registration_id, scope_key(scopes))
        return bool(self._request(keys=[marker, key_names.REFRESH_JOBS], args=[
            ttl_ms, MAX_LEN, person_id, registration_id, " ".join(sorted(scopes)), min_remaining,
            time.time()]))

    def refresher_alive(self) -> bool:
        return bool(self.redis.exists(key_names.REFRESHER_ALIVE))

    def failure_since(self, person_id: str, registration_id: str, scopes: frozenset[str],
                      since: float) -> FailedRefresh | None:
        """A refresh of these that failed after ``since``, if any."""
        raw = self.redis.get(key_names.refresh_outcome(person_id, registration_id, scope_key(scopes)))
        if not raw:
            return None
        note = FailedRefresh(**json.loads(raw))
        return note if note.at >= since else None

    # ------------------------------------------------------------------ refreshers

    def heartbeat(self, name: str) -> None:
        self.redis.set(key_names.REFRESHER_ALIVE, name, px=HEARTBEAT_TTL_MS)

    def take(self, consumer: str, count: int, block_ms: int) -> list[RefreshJob]:
        """Jobs for ``consumer``: abandoned ones first (claimed from a dead refresher), then new."""
        entries = consumer_groups.take(self.redis, key_names.REFRESH_JOBS, GROUP, consumer,
                                       count=count, block_ms=block_ms, claim_idle_ms=CLAIM_IDLE_MS)
        return [job for job in (self._job(entry_id, data) for entry_id, data in entries) if job]

    def touch(self, consumer: str, entry_ids: list[str]) -> None:
        """Vouch for jobs still running here, so nobody takes them over (XCLAIM resets idle)."""
        if entry_ids:
            self.redis.xclaim(key_names.REFRESH_JOBS, GROUP, consumer, 0, entry_ids, justid=True)

    def done(self, job: RefreshJob, failure: tuple[str, str] | None = None) -> None:
        """Acknowledge ``job``; ``failure`` (status, error) is left for the requests waiting."""
        key = scope_key(job.scopes)
        # two slots, the person's and the queue's: no MULTI. The note goes first; a crash before
        # the acknowledgement leaves the job pending, and running it again is harmless.
        pipe = self.redis.pipeline(transaction=False)
        if failure is not None:
            outcome = key_names.refresh_outcome(job.person_id, job.registration_id, key)
            pipe.set(outcome,
                     json.dumps({"status": failure[0], "error": failure[1], "at": time.time()}),
                     px=OUTCOME_MS)
            remember_person_key(pipe, job.person_id, outcome, time.time() + OUTCOME_MS / 1000)
        pipe.delete(key_names.refresh_job(job.person_id, job.registration_id, key))
        pipe.xack(key_names.REFRESH_JOBS, GROUP, job.entry_id)
        pipe.xdel(key_names.REFRESH_JOBS, job.entry_id)
        pipe.execute()

    def status(self) -> dict[str, int | bool]:
        """For operators: queued and pending (taken, not yet acknowledged) jobs, and liveness."""
        consumer_groups.ensure_group(self.redis, key_names.REFRESH_JOBS, GROUP)
        pending = self.redis.xpending(key_names.REFRESH_JOBS, GROUP)
        return {"queued": int(self.redis.xlen(key_names.REFRESH_JOBS)),
                "pending": int(pending["pending"]), "refresher_alive": self.refresher_alive()}

    @staticmethod
    def _job(entry_id: bytes | str, data: dict) -> RefreshJob | None:
        if not data:  # deleted while pending (XAUTOCLAIM reports those as empty)
            return None
        fields = {k.decode(): v.decode() for k, v in data.items()}
        return RefreshJob(
            entry_id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
            person_id=fields["person_id"], registration_id=fields["registration_id"],
            scopes=frozenset(fields["scopes"].split()),
            min_remaining=int(fields.get("min_remaining") or 0),
            requested_at=float(fields.get("requested_at") or 0),
        )
