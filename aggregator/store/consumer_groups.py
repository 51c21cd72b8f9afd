"""Work queues on Redis streams read through a consumer group (refresh jobs, event deliveries).

Each entry goes to one consumer and stays pending until acknowledged; a consumer that dies
leaves its entries pending, and another claims them once idle long enough (at-least-once).
"""

from __future__ import annotations

from typing import Any

import redis


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    """Create the group (and the stream) unless it exists."""
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def take(client: redis.Redis, stream: str, group: str, consumer: str, *, count: int,
         block_ms: int, claim_idle_ms: int) -> list[tuple[Any, dict]]:
    """Up to ``count`` entries for ``consumer``: abandoned ones first (pending longer than
    ``claim_idle_ms``, XAUTOCLAIM), then new ones (XREADGROUP, waiting up to ``block_ms``).
    An entry deleted while pending comes back with no fields."""
    ensure_group(client, stream, group)
    _, claimed, *_ = client.xautoclaim(stream, group, consumer, min_idle_time=claim_idle_ms,
                                       count=count)
    entries = list(claimed)
    if len(entries) < count:
        fresh = client.xreadgroup(group, consumer, {stream: ">"}, count=count - len(entries),
                                  block=block_ms)
        for _, items in fresh or []:
            entries.extend(items)
    return entries
