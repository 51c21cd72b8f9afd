"""Which Redis errors mean "the store is unavailable, retry later", and why.

A store fault is an operational condition, not a bug: the server is unreachable, still loading
its data, a read-only replica, or refusing writes (``MISCONF``: an RDB/AOF write failed, usually
a full disk; ``OOM``: maxmemory reached). Any other Redis error (``WRONGTYPE``, a script bug) is
ours to fix and stays a server error.

Redis names the condition in its error code, the first word of the reply. redis-py keeps the
code at the start of the message, after ``caused error:`` when a pipeline annotates it, or after
``: -`` when a Lua script relays it. Messages may quote the command and its arguments (values,
tokens): never log them.
"""

from __future__ import annotations

import re
from enum import StrEnum

from redis import exceptions


class StoreFault(StrEnum):
    """Why the store cannot serve; the value is what ``/readyz`` reports."""

    UNREACHABLE = "redis unreachable"
    LOADING = "redis is loading its data"
    READ_ONLY = "redis is read-only (replica)"
    MISCONF = "redis refuses writes (MISCONF: disk full or persistence failing)"
    OUT_OF_MEMORY = "redis refuses writes (OOM: maxmemory reached)"


# redis-py raises its own class for the codes it knows (the code is then cut from the message);
# subclasses before their bases (BusyLoadingError is a ConnectionError)
_BY_CLASS: tuple[tuple[type[Exception], StoreFault], ...] = (
    (exceptions.BusyLoadingError, StoreFault.LOADING),
    (exceptions.ReadOnlyError, StoreFault.READ_ONLY),
    (exceptions.OutOfMemoryError, StoreFault.OUT_OF_MEMORY),
    (exceptions.MasterDownError, StoreFault.UNREACHABLE),
    # a Redis Cluster in failover: a master is down and its replica not yet promoted
    # (CLUSTERDOWN, TRYAGAIN during a resharding, a slot no node serves, redirects exhausted)
    (exceptions.ClusterDownError, StoreFault.UNREACHABLE),
    (exceptions.TryAgainError, StoreFault.UNREACHABLE),
    (exceptions.SlotNotCoveredError, StoreFault.UNREACHABLE),
    (exceptions.ClusterError, StoreFault.UNREACHABLE),
    (exceptions.MaxConnectionsError, StoreFault.UNREACHABLE),
    (exceptions.ConnectionError, StoreFault.UNREACHABLE),
    (exceptions.TimeoutError, StoreFault.UNREACHABLE),
)
# the rest reach us as a plain ResponseError carrying the code in its message
_BY_CODE = {
    "MISCONF": StoreFault.MISCONF,
    "READONLY": StoreFault.READ_ONLY,
    "OOM": StoreFault.OUT_OF_MEMORY,
    "LOADING": StoreFault.LOADING,
    "MASTERDOWN": StoreFault.UNREACHABLE,
    "CLUSTERDOWN": StoreFault.UNREACHABLE,
}
_CODE = re.compile(r"(?:^|caused error: |: -)(" + "|".join(_BY_CODE) + r") ")


def store_fault(exc: BaseException) -> StoreFault | None:
    """The store fault ``exc`` amounts to, or None when it is not one."""
    for kind, fault in _BY_CLASS:
        if isinstance(exc, kind):
            return fault
    # redis-py's generic cluster error: no node answered the topology query (a cross-slot
    # transaction, the other RedisClusterException, is our bug and stays one)
    if type(exc) is exceptions.RedisClusterException and "cannot be connected" in str(exc):
        return StoreFault.UNREACHABLE
    if isinstance(exc, exceptions.ResponseError):
        found = _CODE.search(str(exc))
        if found:
            return _BY_CODE[found.group(1)]
    return None
