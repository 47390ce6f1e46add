"""The production feature store on Redis or Redis Cluster (redis.asyncio with hiredis), key
schema in keys.py.

Reads are one script call per user (four keys sharing one hash tag, so one node of a cluster).
Publish writes one packed value per user with MSET in chunks, several chunks per round trip, over
two connections so packing the next chunk overlaps Redis applying the last one. A cluster refuses
an MSET across hash slots, so there publish sorts the users by slot first and sends one MSET per
slot (about users / 16,384 keys each) straight to the slot's master. Measured with 300,000 users
on one 2-core machine (a local 3-master cluster beside the client): about 80,000 users/s, against
30,000 for one pipelined SET per user (the cluster client's cost per command dominates) and
150,000 for one Redis.

Recording events is exactly once per request id with one Lua script (`_RECORD`) for both
deployments: it checks a marker, applies the writes and sets the marker in one atomic step.
On one Redis the whole batch (every user's count, seen and recent keys and the stream entries)
is a single script call under the single marker `idem:<request id>`: all or nothing, one round
trip (the MULTI/EXEC with WATCH it replaces took three). A cluster runs a script only on keys of
one slot, so there the batch is split into parts, one per user and one for the stream, each with a
marker in its own slot (keys.py), and every slot gets one script call (all in one pipelined round
trip per node). A part is applied at most once per request id, so a retry after a lost answer or
a failover completes what the first attempt left undone and repeats nothing; `duplicate` means no
part was left to apply. Between the two attempts another reader may see some users' parts
without the rest, which is the price of a keyspace spread over nodes.

Every Redis failure, including the cluster client's own errors (no node for a slot, no
connection left, no reachable node), surfaces as StoreUnavailableError, which serving turns into
a fallback, never a 500. On a cluster, reads of a master that just refused a connection fail at
once for a moment, and the client is kept from re-reading the slot map through it
(`_NodeBreaker`), so a dead master does not take the users of the other masters down with it.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from feature_store.base import (
    LiveEvent,
    ProgressFn,
    RecordResult,
    StoreUnavailableError,
    StreamEntry,
    UserProfile,
)
from feature_store.bulk_pack import pack_rows, take_rows
from feature_store.catalog import CatalogChanges, CatalogConflictError, ItemRecord, latest
from feature_store.errors import VersionNotReadyError
from feature_store.keys import KeySchema
from feature_store.live_view import LiveRecord, LiveView, fold_live, unpack_records
from feature_store.locks import check_lock_name
from feature_store.profile_codec import ProfileDecodeError, unpack_profile
from feature_store.settings import StoreSettings
from feature_store.version_files import ProfileTable
from feature_store.version_names import check_version_name

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # an extra of redis-py (installed with ours); see _evalsha_held
    _hiredis_pack = None

T = TypeVar("T")

# Switch the live pointer only to a completely written version; remember the old one.
# A lock is a key holding its holder, with an expiry: taken when absent, renewed by its holder;
# otherwise the reply names who has it. Released only by the holder that set it.
_LOCK = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_ACTIVATE = """
local st = redis.call('HGET', KEYS[3], ARGV[1])
if not st or cjson.decode(st)['status'] ~= 'complete' then
  return redis.error_reply('NOTREADY ' .. ARGV[1] .. ' is not completely written')
end
local old = redis.call('GET', KEYS[1])
if old ~= ARGV[1] then
  if old then redis.call('SET', KEYS[2], old) end
  redis.call('SET', KEYS[1], ARGV[1])
end
return old
"""


# A user's published profile in one version and their run-time events (of no version), in one
# round trip. Both keys share the user's hash tag, so this runs on Redis Cluster too. ARGV[1]
# bounds the events read, whatever the list holds. On one Redis a third key, the catalog
# generation, rides along (a cluster keeps it in another slot and reads it beside the script).
_READ_PROFILE = """
local out = {redis.call('GET', KEYS[1]), redis.call('LRANGE', KEYS[2], -tonumber(ARGV[1]), -1)}
if KEYS[3] then out[3] = redis.call('GET', KEYS[3]) or '0' end
return out
"""

# Writes item records under one new catalog generation. KEYS: generation, records hash, log
# sorted set. ARGV[1] the number of items, then per item: id, the seq the writer expects (-1: any,
# 0: absent) and the record's JSON. Any mismatch writes nothing and answers CONFLICT <id>.
_PUT_ITEMS = """
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  local id, want = ARGV[2 + 3 * i], tonumber(ARGV[3 + 3 * i])
  if want >= 0 and tonumber(redis.call('ZSCORE', KEYS[3], id) or '0') ~= want then
    return redis.error_reply('CONFLICT ' .. id)
  end
end
local gen = redis.call('INCR', KEYS[1])
for i = 0, n - 1 do
  redis.call('HSET', KEYS[2], ARGV[2 + 3 * i], ARGV[4 + 3 * i])
  redis.call('ZADD', KEYS[3], gen, ARGV[2 + 3 * i])
end
return gen
"""

# The generation and every record written after ARGV[1], in one consistent read:
# {generation, {id, seq, json, id, seq, json, ...}}.
_CATALOG_CHANGES = """
local gen = tonumber(redis.call('GET', KEYS[1]) or '0')
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. ARGV[1], '+inf', 'WITHSCORES')
local out = {}
for i = 1, #ids, 2 do
  out[#out + 1] = ids[i]
  out[#out + 1] = ids[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], ids[i]) or ''
end
return {gen, out}
"""

# The records of ARGV's item ids: {id, seq, json, ...} for those that exist.
_GET_ITEMS = """
local out = {}
for i = 1, #ARGV do
  local seq = redis.call('ZSCORE', KEYS[3], ARGV[i])
  if seq then
    out[#out + 1] = ARGV[i]
    out[#out + 1] = seq
    out[#out + 1] = redis.call('HGET', KEYS[2], ARGV[i]) or ''
  end
end
return out
"""


# Applies the parts of an interaction batch, each at most once per request id. ARGV[1] is the
# markers' TTL in seconds, ARGV[2] the stream's approximate MAXLEN, ARGV[3] the events kept per
# user, ARGV[4] this call's nonce (written into the markers it sets: when redis-py sends the same
# call again after a lost reply, the part it finds done is its own, not a duplicate request); then
# part after part: the index in KEYS of its marker (0: not guarded), its number of writes, and the
# writes, each one of
#   L key n value1 ...          RPUSH key values, then LTRIM key to the newest ARGV[3]
#   X key n field1 value1 ...   XADD key MAXLEN ~ maxlen * (n field/value pairs)
# where key is an index in KEYS. A part whose marker exists is skipped whole. Returns one flag per
# part: 1 applied by this call, 0 applied before by another call with the same request id (the
# caller checks the reply: a server that answers anything else stored nothing it can vouch for).
_RECORD = """
local ttl, maxlen, cap, nonce, i, done = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], 5, {}
while i <= #ARGV do
  local marker, writes = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local seen = marker > 0 and redis.call('GET', KEYS[marker])
  local skip = seen and true or false
  i = i + 2
  for _ = 1, writes do
    local op, key, n = ARGV[i], KEYS[tonumber(ARGV[i + 1])], tonumber(ARGV[i + 2])
    if not skip then
      if op == 'X' then
        redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', unpack(ARGV, i + 3, i + 2 + 2 * n))
      else
        redis.call('RPUSH', key, unpack(ARGV, i + 3, i + 2 + n))
        redis.call('LTRIM', key, -cap, -1)
      end
    end
    i = i + 3 + (op == 'X' and 2 * n or n)
  end
  if marker > 0 and not skip then redis.call('SET', KEYS[marker], nonce, 'EX', ttl) end
  done[#done + 1] = (not skip or seen == nonce) and 1 or 0
end
return done
"""


@dataclass
class _Part:
    """Writes applied together or not at all, guarded by one marker when there is a request id."""

    marker: str | None
    events: int  # events this part stores (for RecordResult.stored)
    streams: bool  # holds the batch's stream entries
    writes: list[tuple[str, str, list[bytes | str | int]]] = field(default_factory=list)

    def add(self, op: str, key: str, *args: bytes | str | int) -> None:
        self.writes.append((op, key, list(args)))

    @property
    def first_key(self) -> str:
        return self.marker or self.writes[0][1]


@dataclass
class _Call:
    """One call of the record script: its KEYS, its ARGV and the parts it applies, in order."""

    keys: list[str] = field(default_factory=list)
    args: list[bytes | str | int] = field(default_factory=list)
    parts: list[_Part] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict)

    def _key(self, key: str) -> int:
        at = self._index.get(key)
        if at is None:
            self.keys.append(key)
            at = self._index[key] = len(self.keys)
        return at

    def add(self, part: _Part) -> None:
        self.parts.append(part)
        self.args += [self._key(part.marker) if part.marker else 0, len(part.writes)]
        for op, key, values in part.writes:
            self.args += [op, self._key(key), len(values) // 2 if op == "X" else len(values)]
            self.args += values


class _NodeBreaker:
    """Answers reads of a master that just refused a connection with StoreUnavailableError, at
    once, for `pause_s`, instead of asking the cluster client.

    The client answers every refused connection by re-reading the whole slot map before its
    retry (CLUSTER SLOTS, then COMMAND: about 10 ms of CPU, measured), and a third of the reads
    going to a dead master keeps it doing that. Measured with one of three masters killed and 16
    concurrent readers in one process: about 190 reads a second of the other masters' users got
    through without the breaker, 1,400 to 5,300 with it (runs on a busy 2-core machine). Behind
    the breaker about one read per pause goes through, so the map is still re-read a few times a
    second; the first re-read after the failover points the slots at the new master, whose name
    is not held open, so recovery waits at most `pause_s` longer.
    """

    def __init__(self, client: RedisCluster, pause_s: float = 0.2, remember_s: float = 5.0) -> None:
        self._client = client
        self._pause_s = pause_s
        self._remember_s = remember_s
        self._open_until: dict[str, float] = {}  # fail reads of the node at once until then
        self._refused_at: dict[str, float] = {}  # when each node last refused (for _steer_clear)

    def _node(self, key: str) -> str | None:
        """The master the client would send `key` to; None before the slot map is loaded."""
        nodes = self._client.nodes_manager.slots_cache.get(key_slot(key.encode()))
        return nodes[0].name if nodes else None

    async def call(self, key: str, command: Callable[[], Awaitable[T]]) -> T:
        node = self._node(key)
        if node is not None and node in self._open_until:
            if time.monotonic() < self._open_until[node]:
                raise StoreUnavailableError(f"redis master {node} refused a connection just now")
            del self._open_until[node]  # this read is the probe
        try:
            return await command()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            # The client names the node it could not reach. A read can also fail while the client
            # re-reads the slot map through another node: that is no fault of the read's master.
            failed = getattr(exc, "connection", None)
            now = time.monotonic()
            if isinstance(failed, ClusterNode):
                self._open_until[failed.name] = now + self._pause_s
                self._refused_at[failed.name] = now
            self._steer_clear(now)
            raise

    def _steer_clear(self, now: float) -> None:
        """Keeps masters that refused lately out of the client's way when it re-reads the slot
        map. It asks its default node, the first master in its list, for the command table; if
        that one is down the re-read fails, and every read with it, whichever master it was for.
        The client moves a node to the end of its list when a command to it fails, live masters
        too (a connection it closed itself under a concurrent command), so a dead master can end
        up first again: seen in the failover test, where the other masters' users then fell back
        for as long as it stayed down."""
        self._refused_at = {n: t for n, t in self._refused_at.items() if now - t < self._remember_s}
        down = set(self._refused_at)
        if not down:
            return
        for name in down:
            self._client.nodes_manager.move_node_to_end_of_cached_nodes(name)
        default = self._client.nodes_manager.default_node
        if default is not None and default.name in down:
            live = [n for n in self._client.get_primaries() if n.name not in down]
            if live:
                self._client.set_default_node(live[0])


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class RedisStore:
    name = "redis"

    def __init__(self, client: aioredis.Redis | RedisCluster, settings: StoreSettings) -> None:
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._settings = settings
        self.keys = KeySchema(settings.redis_prefix)
        self._activate = client.register_script(_ACTIVATE)
        self._read_profile = client.register_script(_READ_PROFILE)
        self._record = client.register_script(_RECORD)
        self._put_items = client.register_script(_PUT_ITEMS)
        self._catalog_changes = client.register_script(_CATALOG_CHANGES)
        self._get_items = client.register_script(_GET_ITEMS)
        self._lock = client.register_script(_LOCK)
        self._unlock = client.register_script(_UNLOCK)
        self._catalog_keys = [self.keys.catalog_generation, self.keys.catalog_items, self.keys.catalog_log]
        self._breaker = _NodeBreaker(client) if isinstance(client, RedisCluster) else None
        # Connections the profile read keeps between requests (see _read_profile_held); at most
        # half the pool, so writes and the rest always find a connection.
        self._pool = None if isinstance(client, RedisCluster) else client.connection_pool
        self._held: collections.deque[Any] = collections.deque()
        self._held_max = max(1, settings.redis_pool_size // 2)

    @classmethod
    def from_settings(cls, settings: StoreSettings, *, bulk: bool = False) -> RedisStore:
        """A store with its own connections. `bulk` (publish) trades latency for patience."""
        if settings.redis_url is None:
            raise ValueError("RECSYS_REDIS_URL is not set")
        url = settings.redis_url.get_secret_value()
        timeout = settings.publish_timeout_s if bulk else settings.redis_timeout_s
        if settings.redis_cluster:
            return cls(_cluster_client(url, settings, timeout, bulk), settings)
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=settings.redis_pool_size,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=settings.redis_connect_timeout_s,
            health_check_interval=30,
            # A pooled connection the server closed while it idled (a restart, its idle timeout)
            # fails the command sent on it; once more on a fresh connection instead. Measured
            # without: the first command after CLIENT KILL failed ("Connection closed by server").
            retry=Retry(NoBackoff(), 8 if bulk else 1),
            **_tls_options(settings),
        )
        return cls(aioredis.Redis(connection_pool=pool), settings)

    @asynccontextmanager
    async def _guard(self, what: str) -> AsyncIterator[None]:
        try:
            yield
        except VersionNotReadyError:
            raise
        except (TimeoutError, RedisError, RedisClusterException, OSError) as exc:
            raise StoreUnavailableError(f"redis {what}: {exc.__class__.__name__}: {exc}") from exc
        except Exception as exc:
            if not _raised_by_client(exc):
                raise
            raise StoreUnavailableError(
                f"redis {what}: unexpected reply or connection torn down ({exc.__class__.__name__}: {exc})"
            ) from exc

    async def ping(self) -> None:
        """On a cluster every master must answer: with one down, part of the users cannot be read."""
        async with self._guard("ping"):
            if self._cluster:
                await self._client.ping(target_nodes=RedisCluster.PRIMARIES)
            else:
                await self._client.ping()

    async def active_version(self) -> str | None:
        async with self._guard("read active version"):
            return _text(await self._client.get(self.keys.active))

    async def previous_version(self) -> str | None:
        async with self._guard("read previous version"):
            return _text(await self._client.get(self.keys.previous))

    async def activate(self, version: str) -> str | None:
        check_version_name(version)  # the pointer names a key namespace: never anything else
        async with self._guard("activate"):
            try:
                old = await self._activate(
                    keys=[self.keys.active, self.keys.previous, self.keys.versions], args=[version]
                )
            except ResponseError as exc:
                if "NOTREADY" in str(exc):
                    raise VersionNotReadyError(
                        f"{version} is not completely written; publish it first"
                    ) from exc
                raise
            return _text(old)

    async def version_status(self) -> dict[str, dict[str, Any]]:
        async with self._guard("read versions"):
            raw = await self._client.hgetall(self.keys.versions)
        return {_text(k) or "": _status(v) for k, v in raw.items()}

    async def mark_version(self, version: str, status: dict[str, Any]) -> None:
        async with self._guard("mark version"):
            await self._client.hset(self.keys.versions, version, json.dumps(status))

    async def write_version(
        self, version: str, table: ProfileTable, progress: ProgressFn | None = None
    ) -> int:
        chunk, per_trip = self._settings.publish_chunk, self._settings.publish_pipeline
        starts = list(range(0, len(table), chunk))
        queue: asyncio.Queue[list[int]] = asyncio.Queue()
        for i in range(0, len(starts), per_trip):
            queue.put_nowait(starts[i : i + per_trip])
        user_keys = [self.keys.profile(version, u) for u in table.user_ids]

        async with self._guard("bulk write"):
            if self._cluster:
                add = await self._slot_msets(table, user_keys)
            else:
                add = self._msets(table, user_keys)

            async def worker() -> None:
                while not queue.empty():
                    batch = queue.get_nowait()
                    pipe = self._client.pipeline(transaction=False)
                    written = 0
                    for start in batch:
                        stop = min(start + chunk, len(table))
                        add(pipe, start, stop)
                        written += stop - start
                    await pipe.execute()
                    if progress:
                        progress(written)

            await asyncio.gather(worker(), worker())
        return len(table)

    def _msets(self, table: ProfileTable, user_keys: list[str]) -> Callable[[Any, int, int], None]:
        """Queues users start..stop-1 as one MSET (one Redis)."""
        limit = self._settings.recent_limit

        def add(pipe: Any, start: int, stop: int) -> None:
            values = pack_rows(table, start, stop, limit)
            pipe.mset(dict(zip(user_keys[start:stop], values, strict=True)))

        return add

    async def _slot_msets(self, table: ProfileTable, user_keys: list[str]) -> Callable[[Any, int, int], None]:
        """Queues the users at positions start..stop-1 of slot order as one MSET per hash slot,
        each addressed to the slot's master (the client would hash every key again to check)."""
        cluster = self._client
        assert isinstance(cluster, RedisCluster)
        await cluster.initialize()  # the slot map, for addressing
        limit = self._settings.recent_limit
        slots = np.fromiter((key_slot(k.encode()) for k in user_keys), np.int64, len(user_keys))
        order = np.argsort(slots, kind="stable")

        def add(pipe: Any, start: int, stop: int) -> None:
            rows = order[start:stop]
            values = pack_rows(take_rows(table, rows), 0, len(rows), limit)
            keys = [user_keys[r] for r in rows.tolist()]
            pairs = [x for pair in zip(keys, values, strict=True) for x in pair]
            own = slots[rows]
            cuts = [0, *(np.flatnonzero(np.diff(own)) + 1).tolist(), len(rows)]
            for lo, hi in itertools.pairwise(cuts):
                node = cluster.nodes_manager.get_node_from_slot(int(own[lo]))
                pipe.execute_command("MSET", *pairs[2 * lo : 2 * hi], target_nodes=node)

        return add

    async def delete_version(self, version: str) -> int:
        in_use = {await self.active_version(), await self.previous_version(), *await self.pinned_versions()}
        if version in in_use:
            raise ValueError(f"{version} is active, previous or pinned by a running server; not deleted")
        async with self._guard("delete version"):
            removed = await self._unlink_matching(self.keys.version_pattern(version))
            await self._client.hdel(self.keys.versions, version)
        return removed

    async def pin(self, holder: str, versions: Sequence[str], ttl_s: float) -> None:
        value = json.dumps({"versions": list(versions), "until": time.time() + ttl_s})
        async with self._guard("pin versions"):
            await self._client.hset(self.keys.pins, holder, value)

    async def acquire_lock(self, name: str, holder: str, ttl_s: float) -> str | None:
        check_lock_name(name)
        async with self._guard("take lock"):
            reply = await self._lock(keys=[self.keys.lock(name)], args=[holder, int(ttl_s * 1000)])
        return None if reply is None else _text(reply)

    async def release_lock(self, name: str, holder: str) -> bool:
        check_lock_name(name)
        async with self._guard("release lock"):
            return bool(await self._unlock(keys=[self.keys.lock(name)], args=[holder]))

    async def pinned_versions(self) -> set[str]:
        """Pins of servers that renewed them lately; expired ones are removed on the way."""
        async with self._guard("read pins"):
            raw = await self._client.hgetall(self.keys.pins)
        now, pinned, stale = time.time(), set(), []
        for holder, value in raw.items():
            try:
                pin = json.loads(value)
                until, versions = float(pin["until"]), [str(v) for v in pin["versions"]]
            except (ValueError, KeyError, TypeError):
                stale.append(holder)
                continue
            if until > now:
                pinned.update(versions)
            else:
                stale.append(holder)
        if stale:
            async with self._guard("expire pins"):
                await self._client.hdel(self.keys.pins, *stale)
        return pinned

    async def _unlink_matching(self, pattern: str) -> int:
        """UNLINK every key matching `pattern`, 2,000 at a time. On a cluster SCAN walks every
        master and UNLINK is split per slot, both by the client."""
        removed = 0
        batch: list[bytes] = []
        async for key in self._client.scan_iter(match=pattern, count=2_000):
            batch.append(key)
            if len(batch) >= 2_000:
                removed += await self._client.unlink(*batch)
                batch.clear()
        if batch:
            removed += await self._client.unlink(*batch)
        return removed

    async def get_profile(
        self, version: str, user_id: str, recent_limit: int = 50, view: LiveView | None = None
    ) -> UserProfile:
        keys = [self.keys.profile(version, user_id), self.keys.live(user_id)]
        cap = self._settings.live_events_per_user
        generation: int | None = None
        async with self._guard("read profile"):
            # One script call instead of a pipeline: measured 56 vs 93 us of client CPU.
            if self._breaker is None:
                reply = await self._read_profile_held([*keys, self.keys.catalog_generation], cap)
            else:
                reply, generation = await asyncio.gather(
                    self._breaker.call(keys[0], lambda: self._read_profile(keys=keys, args=[cap])),
                    self._cluster_generation(),
                )
        if not isinstance(reply, list) or len(reply) not in (2, 3) or not isinstance(reply[1], list):
            raise StoreUnavailableError(f"redis profile of {user_id!r}: unexpected reply")
        packed, live = reply[0], reply[1]
        if len(reply) == 3:
            generation = _generation(reply[2])
        profile = UserProfile(user_id=user_id, version=version, known=packed is not None, count=0)
        profile.catalog_generation = generation
        if packed is not None:
            try:
                base = unpack_profile(packed)
            except ProfileDecodeError as exc:
                raise StoreUnavailableError(f"redis profile of {user_id!r} in {version}: {exc}") from exc
            profile.count = base.count
            profile.embeddings = base.embeddings
            profile.seen = base.seen
            profile.recent_items, profile.recent_weights = base.recent_items, base.recent_weights
        if view is not None and live:
            fold_live(profile, unpack_records(live), view, recent_limit)  # LRANGE read at most `cap`
        else:
            profile.recent_items = profile.recent_items[-recent_limit:]
            profile.recent_weights = profile.recent_weights[-recent_limit:]
        return profile

    async def _cluster_generation(self) -> int | None:
        """The catalog generation beside a cluster's profile read (another slot). A failure costs
        the request nothing but freshness: serving keeps the catalog it holds."""
        try:
            return _generation(await self._client.get(self.keys.catalog_generation))
        except (RedisError, RedisClusterException, OSError, StoreUnavailableError):
            return None

    async def _read_profile_held(self, keys: list[str], cap: int) -> list[Any]:
        """The profile script's EVALSHA on a connection this store holds on to, bypassing the
        client's per-command layers (pool checkout with its condition, argument encoding, retry
        wrapper): the read every request makes costs 20 us of client CPU this way instead of
        60 (32 concurrent readers, one process, hiredis). redis-py still owns the connection:
        it connects, authenticates, speaks TLS and reconnects. A held connection the server
        closed while it idled (a restart, its idle timeout) costs one retry on a fresh one, as
        the client's own retry would; a timeout is not retried (the request's budget is spent)."""
        try:
            return await self._evalsha_held(keys, cap)
        except RedisConnectionError:
            return await self._evalsha_held(keys, cap)

    async def _evalsha_held(self, keys: list[str], cap: int) -> list[Any]:
        pool = self._pool
        assert pool is not None, "a cluster reads through the breaker"
        conn = self._held.pop() if self._held else await pool.get_connection()
        try:
            command = ("EVALSHA", self._read_profile.sha, len(keys), *keys, cap)
            # hiredis packs in C; without it (an extra of redis-py) the connection's own packer.
            packed = _hiredis_pack(command) if _hiredis_pack else conn.pack_command(*command)
            await conn.send_packed_command(packed, check_health=False)
            reply: list[Any] = await conn.read_response()
        except NoScriptError:  # a restarted or flushed server: the script object loads it again
            await self._keep(conn)
            return await self._read_profile(keys=keys, args=[cap])
        except BaseException:
            # Failed or interrupted mid-read (a timeout): its state is unknown, so it is closed
            # and handed back to the pool, which reconnects it when it is next used.
            try:
                await conn.disconnect(nowait=True)
            finally:
                await pool.release(conn)
            raise
        await self._keep(conn)
        return reply

    async def _keep(self, conn: Any) -> None:
        if len(self._held) < self._held_max:
            self._held.append(conn)
        elif self._pool is not None:
            await self._pool.release(conn)

    async def record(
        self, events: Sequence[LiveEvent], request_id: str | None = None, stream: bool = True
    ) -> RecordResult:
        parts = self._parts(events, request_id, stream)
        if not parts:
            return RecordResult(stored=len(events))
        async with self._guard("record events"):
            if self._cluster:
                done = await self._record_per_slot(parts)
            else:
                # One script call, one marker: the batch is applied whole or not at all, so a
                # write whose answer is lost has happened whole or not at all, and the client's
                # retry with the same id stores the events exactly once either way.
                whole = _Part(self.keys.idempotency(request_id) if request_id else None, len(events), stream)
                for part in parts:
                    whole.writes += part.writes
                call = _Call()
                call.add(whole)
                args = self._record_args(call, uuid.uuid4().hex)
                flags = _checked_flags(await self._record(keys=call.keys, args=args), 1)
                done = {id(p): bool(flags[0]) for p in parts}
        applied = [p for p in parts if done[id(p)]]
        if not applied:
            return RecordResult(stored=0, duplicate=True)
        if any(p.streams for p in applied):
            return RecordResult(stored=len(events))
        return RecordResult(stored=sum(p.events for p in applied))

    def _record_args(self, call: _Call, nonce: str) -> list[bytes | str | int]:
        settings = self._settings
        return [
            settings.idempotency_ttl_s,
            settings.stream_maxlen,
            settings.live_events_per_user,
            nonce,
            *call.args,
        ]

    async def _record_per_slot(self, parts: list[_Part]) -> dict[int, bool]:
        """One script call per hash slot, pipelined (one round trip per master). EVAL, not
        EVALSHA: a master promoted by a failover has an empty script cache, and a NOSCRIPT
        reply in the middle of a pipeline would leave it unclear what to send again. One nonce
        for the whole pipeline, which the client may send again after a lost reply."""
        nonce = uuid.uuid4().hex
        calls: dict[int, _Call] = defaultdict(_Call)
        for part in parts:
            calls[key_slot(part.first_key.encode())].add(part)
        pipe = self._client.pipeline(transaction=False)
        for call in calls.values():
            pipe.eval(_RECORD, len(call.keys), *call.keys, *self._record_args(call, nonce))
        replies = await pipe.execute()
        return {
            id(part): bool(flag)
            for call, flags in zip(calls.values(), replies, strict=True)
            for part, flag in zip(call.parts, _checked_flags(flags, len(call.parts)), strict=True)
        }

    def _parts(self, events: Sequence[LiveEvent], request_id: str | None, stream: bool) -> list[_Part]:
        """The batch's writes, one part per user (their live record) and one for the stream."""
        parts = []
        by_user: dict[str, list[LiveEvent]] = defaultdict(list)
        for event in events:
            by_user[event.user_id].append(event)
        for user_id, own in by_user.items():
            marker = self.keys.user_idempotency(request_id, user_id) if request_id else None
            part = _Part(marker, len(own), False)
            records = [LiveRecord(e.timestamp, e.weight, e.item_id).pack() for e in own]
            part.add("L", self.keys.live(user_id), *records)
            parts.append(part)
        if stream:
            marker = self.keys.stream_idempotency(request_id) if request_id else None
            part = _Part(marker, len(events), True)
            for event in events:
                fields = event.stream_fields()
                if request_id:
                    fields["request_id"] = request_id
                part.add("X", self.keys.events, *(x for pair in fields.items() for x in pair))
            parts.append(part)
        return parts

    async def read_events(self, after: str = "0", count: int = 10_000) -> list[StreamEntry]:
        low = "-" if after in ("0", "", "-") else f"({after}"
        async with self._guard("read events"):
            rows = await self._client.xrange(self.keys.events, min=low, max="+", count=count) or []
        return [
            StreamEntry(
                _text(entry_id) or "", {_text(k) or "": _text(v) or "" for k, v in (fields or {}).items()}
            )
            for entry_id, fields in rows
        ]

    # -- the run-time catalog (catalog.py) -------------------------------------------------------

    async def put_items(
        self, records: Sequence[ItemRecord], expected: Mapping[str, int] | None = None
    ) -> int:
        if not records:
            return await self.catalog_generation()
        args: list[str | int] = [len(records)]
        for record in records:
            want = -1 if expected is None else expected.get(record.item_id, -1)
            args += [record.item_id, want, record.encode()]
        async with self._guard("write items"):
            try:
                generation = await self._put_items(keys=self._catalog_keys, args=args)
            except ResponseError as exc:
                if str(exc).startswith("CONFLICT "):
                    raise CatalogConflictError(str(exc)[len("CONFLICT ") :]) from exc
                raise
        return int(generation)

    async def get_items(self, item_ids: Sequence[str]) -> dict[str, ItemRecord]:
        if not item_ids:
            return {}
        async with self._guard("read items"):
            reply = await self._get_items(keys=self._catalog_keys, args=list(item_ids))
        return latest(_records(reply))

    async def catalog_changes(self, after: int) -> CatalogChanges:
        async with self._guard("read catalog changes"):
            reply = await self._catalog_changes(keys=self._catalog_keys, args=[int(after)])
        if not isinstance(reply, list) or len(reply) != 2:
            raise StoreUnavailableError(f"redis catalog changes: unexpected reply {str(reply)[:60]!r}")
        return CatalogChanges(int(reply[0]), list(latest(_records(reply[1])).values()))

    async def catalog_generation(self) -> int:
        async with self._guard("read catalog generation"):
            return _generation(await self._client.get(self.keys.catalog_generation)) or 0

    async def flush_namespace(self) -> int:
        """Delete every key under the prefix (tests and `recsys publish --reset`)."""
        async with self._guard("flush namespace"):
            return await self._unlink_matching(self.keys.namespace_pattern)

    async def close(self) -> None:
        held, self._held = list(self._held), collections.deque()
        if isinstance(self._client, RedisCluster) or self._pool is None:
            await self._client.aclose()
            return
        for conn in held:
            await self._pool.release(conn)
        await self._client.aclose(close_connection_pool=True)  # the pool is this store's own


def _status(value: bytes | str) -> dict[str, Any]:
    """A version's status entry; one that is not a JSON object (someone else's write) is
    'invalid', never activatable and never a crash of the reader."""
    try:
        status = json.loads(value)
    except ValueError:
        return {"status": "invalid"}
    return status if isinstance(status, dict) else {"status": "invalid"}


def _generation(value: Any) -> int | None:
    """The catalog generation as stored (an integer string), or None for anything else."""
    try:
        generation = int(value if value is not None else 0)
    except (TypeError, ValueError):
        return None
    return generation if generation >= 0 else None


def _records(flat: Any) -> list[ItemRecord]:
    """(id, seq, json) triples from a catalog script; entries that do not parse are skipped (the
    keys are ours, but the bytes in them are not to be trusted)."""
    if not isinstance(flat, list):
        raise StoreUnavailableError(f"redis catalog: unexpected reply {str(flat)[:60]!r}")
    out = []
    for i in range(0, len(flat) - 2, 3):
        seq = _generation(flat[i + 1])
        record = ItemRecord.decode(flat[i + 2], seq) if seq is not None and flat[i + 2] else None
        if record is not None and record.item_id == _text(flat[i]):
            out.append(record)
    return out


def _checked_flags(reply: Any, parts: int) -> list[int]:
    """The record script's reply, one 0/1 flag per part, or StoreUnavailableError: an answer of
    any other shape (a proxy or an impostor answering +OK) proves nothing was stored."""
    if not isinstance(reply, list) or len(reply) != parts or any(f not in (0, 1) for f in reply):
        raise StoreUnavailableError(f"redis record events: unexpected reply {str(reply)[:60]!r}")
    return reply


def _raised_by_client(exc: BaseException) -> bool:
    """Whether an exception that is no RedisError came up through redis-py from below it (the
    asyncio or uvloop transport) rather than from our own code. That is how redis-py reports a
    connection closed under a command: AttributeError (its writer gone), TypeError or uvloop's
    RuntimeError (the transport torn down; redis/redis-py#4287). Seen here while the cluster
    client dropped a dead master's connections under concurrent requests. It means the store
    failed, so it must degrade like any other store failure."""
    modules = []
    tb = exc.__traceback__
    while tb is not None:
        modules.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    through_redis = any(m == "redis" or m.startswith("redis.") for m in modules)
    return through_redis and not modules[-1].startswith(("feature_store", "app"))


def _cluster_client(url: str, settings: StoreSettings, timeout: float, bulk: bool) -> RedisCluster:
    """The cluster client: the URL names any one node, the rest are discovered.

    A command that fails to connect or times out marks the slot map stale; the retry first
    re-reads it (CLUSTER SLOTS) and then goes to whoever serves the slot now. One retry is
    enough to follow a finished failover, and no more are made for serving, so a master that is
    still down costs a request two fast refusals and then its fallback. Publish gets a few more
    retries (the client waits 0.25 s between those of a pipeline), so it rides out a short
    failover; a longer one fails publish, which is then simply run again.
    """
    return RedisCluster.from_url(
        url,
        max_connections=settings.redis_pool_size,
        socket_timeout=timeout,
        socket_connect_timeout=settings.redis_connect_timeout_s,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 8 if bulk else 1),
        **_tls_options(settings),
    )


def _tls_options(settings: StoreSettings) -> dict[str, str]:
    """Certificate files for a rediss:// URL (redis-py refuses them on a plain connection)."""
    url = settings.redis_url.get_secret_value() if settings.redis_url else ""
    files = {
        "ssl_ca_certs": settings.redis_tls_ca_file,
        "ssl_certfile": settings.redis_tls_cert_file,
        "ssl_keyfile": settings.redis_tls_key_file,
    }
    given = {name: str(path) for name, path in files.items() if path is not None}
    if given and not url.startswith("rediss://"):
        raise ValueError("RECSYS_REDIS_TLS_* files need a rediss:// RECSYS_REDIS_URL")
    return given
