"""A real Redis Cluster on loopback (3 masters, 3 replicas) and a Sentinel-watched pair, made of
embedded redis-server processes; every process is stopped by :meth:`stop`."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis
from redis.crc import key_slot

from aggregator.embedded_redis import EmbeddedRedis, port_is_free, redis_server_binary
from aggregator.testing.servers import reserve_port

#: how long a master may be silent before its replica is promoted (ms); short, for the tests
NODE_TIMEOUT_MS = 1000


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too (so at most 55535)."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        if port_is_free(port) and port_is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


class LocalCluster:
    def __init__(self, data_dir: Path, size: int = 6) -> None:
        self.nodes = [
            EmbeddedRedis(data_dir / f"node-{i}", cluster_port(), extra_args=(
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-replica-validity-factor", "0", "--appendfsync", "always"))
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        """The seed node's URL (any node would do)."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> LocalCluster:
        try:
            for node in self.nodes:
                node.start()
            self._create()
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        cli = Path(redis_server_binary()).with_name("redis-cli")
        if not cli.exists():
            cli = Path(shutil.which("redis-cli") or "redis-cli")
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run([str(cli), "--cluster", "create", *addresses, "--cluster-replicas", "1",  # noqa: S603
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)

    def client(self, node: EmbeddedRedis) -> redis.Redis:
        return redis.Redis(port=node.port, socket_timeout=2, socket_connect_timeout=1)

    def alive(self) -> list[EmbeddedRedis]:
        return [node for node in self.nodes if node.exit_code() is None]

    def wait_healthy(self, timeout: float = 30) -> None:
        """Every live node sees the cluster ``ok`` and every master a connected replica."""
        def healthy() -> bool:
            for node in self.alive():
                with self.client(node) as client:
                    if client.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                        return False
            return len(self.masters()) == 3
        wait_until(healthy, timeout, "the cluster is ok")

    def masters(self) -> list[EmbeddedRedis]:
        found = []
        for node in self.alive():
            with self.client(node) as client:
                if client.info("replication")["role"] == "master":
                    found.append(node)
        return found

    def master_of(self, key: str) -> EmbeddedRedis:
        slot = key_slot(key.encode())
        with self.client(self.alive()[0]) as client:
            for start, end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    port = int(primary[1])
                    return next(node for node in self.nodes if node.port == port)
        raise AssertionError(f"no master serves slot {slot}")

    def kill(self, node: EmbeddedRedis) -> None:
        """kill -9: no shutdown, no last write to disk."""
        assert node.process is not None
        os.kill(node.process.pid, signal.SIGKILL)
        node.process.wait(timeout=10)

    def flush(self) -> None:
        for node in self.masters():
            with self.client(node) as client:
                client.flushall()

    def every_key(self) -> list[bytes]:
        """Every key on every master (a test's check, never the product's)."""
        found: list[bytes] = []
        for node in self.masters():
            with self.client(node) as client:
                found += list(client.scan_iter(count=1000))
        return found

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class LocalSentinel:
    """One primary, one replica, one sentinel watching them as ``MASTER_NAME``."""

    MASTER_NAME = "aggregator"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.primary = EmbeddedRedis(data_dir / "primary", reserve_port())
        self.replica = EmbeddedRedis(data_dir / "replica", reserve_port(), extra_args=(
            "--replicaof", "127.0.0.1", str(self.primary.port)))
        self.sentinel_port = reserve_port()
        self.sentinel: subprocess.Popen | None = None

    @property
    def sentinels(self) -> str:
        return f"127.0.0.1:{self.sentinel_port}"

    def start(self) -> LocalSentinel:
        try:
            self.primary.start()
            self.replica.start()
            config = self.data_dir / "sentinel.conf"
            config.write_text(
                f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.data_dir}\n"
                f"sentinel monitor {self.MASTER_NAME} 127.0.0.1 {self.primary.port} 1\n"
                f"sentinel down-after-milliseconds {self.MASTER_NAME} 1000\n"
                f"sentinel failover-timeout {self.MASTER_NAME} 5000\n")
            self.sentinel = subprocess.Popen(  # noqa: S603
                [redis_server_binary(), str(config), "--sentinel"], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            wait_until(self._ready, 20, "the replica is in sync and the sentinel watches")
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        with redis.Redis(port=self.primary.port, socket_timeout=1) as client:
            if client.info("replication")["connected_slaves"] < 1:
                return False
        with redis.Redis(port=self.sentinel_port, socket_timeout=1) as client:
            return bool(client.sentinel_master(self.MASTER_NAME))

    def stop(self) -> None:
        if self.sentinel is not None and self.sentinel.poll() is None:
            self.sentinel.terminate()
            try:
                self.sentinel.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.sentinel.kill()
                self.sentinel.wait(timeout=5)
        self.replica.stop()
        self.primary.stop()
