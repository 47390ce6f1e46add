"""A Redis Cluster of a test's own: 3 masters and 3 replicas (6 redis-server processes) on free
127.0.0.1 ports, joined by `redis-cli --cluster create`, killed whatever state it ends in.

The cluster bus of every node gets its own free port (`--cluster-port`): the default, port + 10000,
is past 65535 for most ephemeral ports. A short `--cluster-node-timeout` (1 s) makes a failover
take a couple of seconds, so a test can kill a master and watch its replica take over.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from tests.app.live_server import free_port

NODE_TIMEOUT_MS = 1_000


def _binary(name: str) -> str:
    binary = shutil.which(name)
    if binary is None:
        if os.environ.get("RECSYS_REQUIRE_SERVICES"):
            pytest.fail(f"{name} is required for the Redis Cluster tests (scripts/test.sh installs it)")
        pytest.skip(f"{name} not installed: the Redis Cluster tests need redis-server and redis-cli")
    return binary


def _ask(port: int, *command: str) -> Any:
    """One command to one node, parsed by redis-py, on a connection closed right after."""
    with redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2, decode_responses=True) as node:
        return node.execute_command(*command)


def _raw(port: int, *command: str) -> str:
    """A command's reply as the server sent it (no redis-py parsing, whose shape of CLUSTER
    replies changes between versions)."""
    conn = redis.Connection(port=port, socket_timeout=2, socket_connect_timeout=2)
    try:
        conn.send_command(*command)
        reply = conn.read_response()
    finally:
        conn.disconnect()
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _cluster_nodes(port: int) -> list[dict[str, str]]:
    """CLUSTER NODES of one node, one dict per line."""
    rows = []
    for line in _raw(port, "CLUSTER", "NODES").splitlines():
        parts = line.split()
        rows.append(
            {
                "id": parts[0],
                "port": parts[1].split("@")[0].rsplit(":", 1)[1],
                "flags": parts[2],
                "master": parts[3],
                "slots": " ".join(parts[8:]),
            }
        )
    return rows


def _cluster_state(port: int) -> str:
    fields = dict(line.split(":", 1) for line in _raw(port, "CLUSTER", "INFO").split() if ":" in line)
    return fields["cluster_state"]


def _slot_ranges(text: str) -> list[tuple[int, int]]:
    ranges = []
    for part in text.split():
        if part.startswith("["):  # a slot being migrated or imported
            continue
        low, _, high = part.partition("-")
        ranges.append((int(low), int(high or low)))
    return ranges


@dataclass
class Killed:
    port: int
    replicas: list[int]  # ports of its replicas, one of which should take over
    at: float  # time.monotonic() of the SIGKILL


@dataclass
class Failover:
    """What killing one master took, in seconds since the SIGKILL."""

    killed_port: int
    promoted_port: int
    promoted_after_s: float  # one of its replicas says it is a master (ROLE)
    ok_after_s: float  # every live node says cluster_state:ok again


@dataclass
class PrivateCluster:
    procs: dict[int, subprocess.Popen[bytes]]
    folder: Path
    dead: set[int] = field(default_factory=set)

    @property
    def ports(self) -> list[int]:
        return sorted(self.procs)

    @property
    def live_ports(self) -> list[int]:
        return [p for p in self.ports if p not in self.dead]

    @property
    def url(self) -> str:
        """The URL the service is given: one live node; the client discovers the rest."""
        return f"redis://127.0.0.1:{self.live_ports[0]}/0"

    def masters(self) -> dict[int, list[tuple[int, int]]]:
        """Port of every live master and the slot ranges it serves."""
        rows = _cluster_nodes(self.live_ports[0])
        return {
            int(r["port"]): _slot_ranges(r["slots"])
            for r in rows
            if "master" in r["flags"] and "fail" not in r["flags"] and r["slots"]
        }

    def master_of(self, key: str, masters: dict[int, list[tuple[int, int]]] | None = None) -> int:
        """Port of the live master serving `key` (pass `masters()` to look up many keys at once)."""
        slot = key_slot(key.encode())
        for port, ranges in (masters or self.masters()).items():
            if any(low <= slot <= high for low, high in ranges):
                return port
        raise LookupError(f"no live master serves slot {slot} of {key!r}")

    def wait_ok(self, timeout_s: float = 20) -> None:
        """Until every live node says cluster_state:ok and agrees on who serves every slot."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                states = [_cluster_state(p) for p in self.live_ports]
                views = {tuple(sorted(self._owners(p))) for p in self.live_ports}
                if set(states) == {"ok"} and len(views) == 1:
                    return
            except (redis.RedisError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster not ok after {timeout_s}s: {self.describe()}")
            time.sleep(0.05)

    def _owners(self, port: int) -> list[tuple[int, int, int]]:
        return [
            (low, high, int(r["port"]))
            for r in _cluster_nodes(port)
            if "master" in r["flags"] and "fail" not in r["flags"]
            for low, high in _slot_ranges(r["slots"])
        ]

    def wait_replicated(self, timeout_s: float = 10) -> None:
        """Until every replica has applied everything its master wrote (replication is
        asynchronous; a test that kills a master must not lose the data it just published)."""
        deadline = time.monotonic() + timeout_s
        for port in self.masters():
            while True:
                info = _ask(port, "INFO", "replication")
                offset = info["master_repl_offset"]
                replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
                if replicas and all(int(r["offset"]) >= offset for r in replicas):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"replicas of {port} lag behind: {info}")
                time.sleep(0.02)

    def kill_master(self, port: int) -> Killed:
        """SIGKILL one master (no goodbye to the cluster), remembering which replicas may inherit."""
        rows = _cluster_nodes(self.live_ports[0])
        node_id = next(r["id"] for r in rows if int(r["port"]) == port)
        replicas = [int(r["port"]) for r in rows if r["master"] == node_id]
        proc = self.procs[port]
        proc.kill()
        killed_at = time.monotonic()
        proc.wait()
        self.dead.add(port)
        return Killed(port, replicas, killed_at)

    def wait_failover(self, killed: Killed, timeout_s: float = 30) -> Failover:
        """Until a replica of the killed master serves its slots and the cluster is ok again."""
        deadline = killed.at + timeout_s
        while True:
            try:
                heirs = [p for p in killed.replicas if _ask(p, "ROLE")[0] == "master"]
            except (redis.RedisError, OSError):
                heirs = []
            if heirs:
                promoted = time.monotonic() - killed.at
                self.wait_ok(max(1.0, deadline - time.monotonic()))
                return Failover(killed.port, heirs[0], promoted, time.monotonic() - killed.at)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no replica took over from {killed.port}: {self.describe()}")
            time.sleep(0.02)

    def describe(self) -> str:
        try:
            return "; ".join(
                f"{r['port']} {r['flags']} {r['slots']}" for r in _cluster_nodes(self.live_ports[0])
            )
        except (redis.RedisError, OSError) as exc:
            return f"(CLUSTER NODES failed: {exc})"


@contextmanager
def private_cluster(
    masters: int = 3, node_timeout_ms: int = NODE_TIMEOUT_MS, full_coverage: bool = True
) -> Iterator[PrivateCluster]:
    """`masters` masters with one replica each, cluster_state:ok on every node when yielded.
    A master is failed over `node_timeout_ms` (plus an election, about a second) after it dies.
    `full_coverage` is Redis' `cluster-require-full-coverage` (default yes): with it, every master
    refuses every command while a failed master's slots have no owner, not only the dead one."""
    server, cli = _binary("redis-server"), _binary("redis-cli")
    folder = Path(tempfile.mkdtemp(prefix="recsys-cluster-"))
    procs: dict[int, subprocess.Popen[bytes]] = {}
    taken: set[int] = set()

    def distinct_port() -> int:
        """A free port no node of this cluster has: the kernel may hand the same ephemeral port
        to two probes in a row, and a repeat made one node replace another in `procs` (its
        process leaked, five nodes left for `--cluster create`)."""
        while (port := free_port()) in taken:
            pass
        taken.add(port)
        return port

    try:
        for _ in range(masters * 2):
            port, bus = distinct_port(), distinct_port()
            args = [
                server,
                "--port", str(port),
                "--cluster-port", str(bus),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(folder / f"nodes-{port}.conf"),
                "--cluster-node-timeout", str(node_timeout_ms),
                "--save", "",
                "--appendonly", "no",
                "--repl-diskless-sync-delay", "0",  # replicas sync at once, not after 5 s
                "--cluster-require-full-coverage", "yes" if full_coverage else "no",
                "--dir", str(folder),
                "--logfile", str(folder / f"redis-{port}.log"),
            ]  # fmt: skip
            procs[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        for port, proc in procs.items():
            _wait_ping(port, proc)
        create = [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in procs)]
        done = subprocess.run(
            [*create, "--cluster-replicas", "1", "--cluster-yes"], capture_output=True, timeout=60
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout.decode()[-2000:]}")
        cluster = PrivateCluster(procs, folder)
        cluster.wait_ok()
        _wait_replicas_linked(cluster)
        yield cluster
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_ping(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _ask(port, "PING")
            return
        except (redis.ConnectionError, OSError):
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server on {port} exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _wait_replicas_linked(cluster: PrivateCluster, timeout_s: float = 20) -> None:
    """Until every master has a replica whose link is up (a replica that never synced would
    refuse to take over, and the failover tests would wait for nothing)."""
    deadline = time.monotonic() + timeout_s
    while True:
        linked = 0
        for port in cluster.masters():
            info = _ask(port, "INFO", "replication")
            linked += any(
                isinstance(v, dict) and v.get("state") == "online"
                for k, v in info.items()
                if k.startswith("slave")
            )
        if linked == len(cluster.masters()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"replicas not in sync: {cluster.describe()}")
        time.sleep(0.05)
