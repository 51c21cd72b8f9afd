"""Which Redis errors are store faults (503, retry later) and which are bugs (500)."""

from __future__ import annotations

import pytest
from redis import exceptions

from aggregator.store.faults import StoreFault, store_fault


@pytest.mark.parametrize("error", [
    exceptions.ClusterDownError("CLUSTERDOWN The cluster is down"),
    exceptions.TryAgainError("TRYAGAIN"),
    exceptions.SlotNotCoveredError("slot 42 is not covered"),
    exceptions.MaxConnectionsError("Too many connections"),
    exceptions.ClusterError("TTL exhausted."),
    exceptions.RedisClusterException("Redis Cluster cannot be connected. Please provide ..."),
    exceptions.ConnectionError("refused"),
    exceptions.MasterDownError("MASTERDOWN"),
])
def test_a_cluster_in_failover_is_unreachable_for_now(error):
    assert store_fault(error) is StoreFault.UNREACHABLE


def test_a_cross_slot_transaction_is_a_bug_not_an_outage():
    assert store_fault(exceptions.CrossSlotTransactionError("different slots")) is None
    assert store_fault(exceptions.ResponseError("CROSSSLOT Keys don't hash to the same slot")) is None
