"""One provider budget for every process that uses the same API key, kept in Redis.

The provider's limits belong to the account, not to a process: code 93 ("more
simultaneous requests than allowed") counts every request made with the key. Processes
that each tune their own `AdaptiveLimit` fight over one budget they cannot see. With
[`SharedLimits`][organik_async.SharedLimits] the throttles of `_ratelimit` are kept in
Redis instead, one set per account, so every process (and host) waits its turn in the
same queue:

* **requests in flight**: a counting semaphore of leases, one member per request in a
  sorted set scored by its lease's deadline, taken and given back by Lua scripts that
  read Redis's own clock (``TIME``), so hosts' clocks do not matter. Expired leases are
  dropped before counting: a process killed mid-request frees its slots when its leases
  run out (``lease`` seconds). One refresher per client renews the leases of long
  requests while it holds any (the pattern of Redisson's expirable-permit semaphore and
  of "Redis in Action" §6.3).
* **the adaptive limit**: `AdaptiveLimit`'s AIMD state lives beside the semaphore and is
  updated by the same release script, atomically, so the account halves once per round
  of refusals, not once per process.
* **the rate** (``rate_limit``) is a shared timeline (GCRA: `RateLimiter`'s spacing with
  one "next free slot" for the account), and a ``Retry-After`` from the provider pauses
  every process.

One task of a process at a time talks to Redis for leases (the lead): it asks for a
lease for every request queued in the process in one step, hands them out, and when
there is no room blocks on a short ``BLPOP`` of a wake-up list that a release pushes to
(only while a process waits), rather than polling: a freed slot is taken within a round
trip, an idle wait costs nothing, and a process holds at most one blocked connection. The
``BLPOP`` timeout is short (at most 0.2 s) and jittered, so a missed wake-up, or a lease
that expires rather than being given back, costs at most a fraction of a second. A
given-back lease rides on the process's next acquire (give back and take again: one
round trip per request), or goes by itself 2 ms later when no acquire comes. While no
other process waits and the account is within its limit, a process keeps a given-back
lease (up to 20 ms) for its next request and sends the outcomes together every 20 ms;
once a reply shows a process waiting, leases go back, and the slots a step frees go to
the waiting processes before its own process takes again.

Keys are named after a digest of the API key, never the key (``{prefix}:{<16 hex of
sha256>}:leases``; the braces are a cluster hash tag, so every key of an account lives on
one cluster node), and no value holds it. When Redis is down or does not answer within
``timeout``, the client goes on with local limits (the last shared limit divided among
the processes that were sharing it), logs one WARNING per outage and one INFO when Redis
answers again, and asks again at most every ``probe_interval`` seconds. A request that
would have worked without Redis never fails because of it.

Only coredis 6 (which runs on anyio) is used: it serves asyncio and trio alike.
redis-py's asyncio client does not run on trio.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import math
import os
import random
import secrets
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import KW_ONLY, dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
from anyio.abc import TaskGroup

from ._options import check_positive_int, check_positive_number
from ._ratelimit import GROWTH_ROUNDS, PROBE_ROUNDS, AdaptiveLimit, Outcome, Permit, RateLimiter

__all__ = [
    "SHARED_LIMITS_ENV",
    "SharedBudget",
    "SharedConcurrency",
    "SharedLimits",
    "SharedRate",
    "account_digest",
    "mask_url",
    "resolve",
]

logger = logging.getLogger("organik_async")

SHARED_LIMITS_ENV: Final = "ORGANIK_SHARED_LIMITS"
_SCHEMES: Final = ("redis", "rediss", "unix")
_START: Final = 8
"""The shared limit an account starts at (as `AdaptiveLimit`'s ``start``)."""
_MAX_PAUSE: Final = 120.0
"""The longest account-wide pause one ``Retry-After`` sets (the default ``max_retry_after``)."""
_MAX_BLOCK: Final = 0.2
"""The longest a waiter blocks in Redis before asking again (a missed wake-up's cost)."""
_MIN_BLOCK: Final = 0.01
_MAX_BATCH: Final = 64
"""The most leases one acquire step asks for."""
_FLUSH_DELAY: Final = 0.002
_KEEP: Final = 0.02
"""How long a lease no request took stays with its process (while no process waits)."""
_REUSE_FRESH: Final = 0.05
"""A kept lease serves another request only if Redis answered this recently."""
"""How long a given-back lease waits for this process's next acquire to carry it."""
_STATE_TTL_MS: Final = 24 * 3600 * 1000
"""An account's AIMD state is forgotten after a day without requests."""
_SECRET_QUERY: Final = frozenset({"password", "ssl_keyfile"})


# --- settings -----------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class SharedLimits:
    """Where the account's shared budget lives: a Redis server, and how it is used.

    Give a URL (``redis://``, ``rediss://`` for TLS, or ``unix://`` for a socket), or
    your own coredis client (``coredis.Redis`` or ``coredis.RedisCluster``, which this
    library never closes):

    ```python
    OrganikClient(shared_limits="redis://:password@redis.internal:6379/0")
    OrganikClient(shared_limits=SharedLimits("redis://redis.internal/0", lease=30))
    ```

    Every process that uses the same API key and the same Redis (and ``prefix``) shares
    one budget: requests in flight, the adaptive limit, the rate and ``Retry-After``
    pauses. The budget is used while the client is open (``async with OrganikClient(...)``;
    a [`SyncOrganikClient`][organik_async.SyncOrganikClient] from its first call until it
    is closed).

    Raises:
        ValueError: A setting is invalid (the message names it).
    """

    url: str | None = None
    """The Redis server's URL. Its password is masked wherever it is shown."""
    _: KW_ONLY
    client: Any = None
    """A coredis client to use instead of a URL."""
    lease: float = 15.0
    """Seconds a request's permit lasts unless renewed: a process killed mid-request gives
    its permits back after at most this long. Long requests renew theirs every
    ``lease / 3`` seconds."""
    prefix: str = "organik"
    """The first part of every key this library writes (for ACLs and for keeping apart
    several deployments that share one Redis)."""
    max_in_flight: int | None = None
    """The most requests in flight for the whole account, when the provider's limit is
    known; the adaptive limit never grows above it. ``None``: each process's
    ``max_connections``."""
    timeout: float = 1.0
    """Seconds to wait for Redis's answer to one step before going on with local limits."""
    probe_interval: float = 5.0
    """While Redis is unavailable, ask it again at most this often (seconds)."""

    def __post_init__(self) -> None:
        if (self.url is None) == (self.client is None):
            raise ValueError("SharedLimits needs a url or a client (one of them, not both)")
        if self.url is not None:
            _check_url(self.url)
        else:
            _check_client(self.client)
        for name in ("lease", "timeout", "probe_interval"):
            object.__setattr__(self, name, check_positive_number(name, getattr(self, name)))
        if self.max_in_flight is not None:
            check_positive_int("max_in_flight", self.max_in_flight)
        prefix = self.prefix
        if (
            not isinstance(prefix, str)
            or not prefix
            or any(c.isspace() or c in "{}" for c in prefix)
        ):
            raise ValueError(f"prefix must be a non-empty str without spaces or braces: {prefix!r}")

    @property
    def shown(self) -> str:
        """Where the budget lives, safe to show (the password masked)."""
        if self.url is not None:
            return mask_url(self.url)
        return f"the Redis client given ({type(self.client).__name__})"

    def __repr__(self) -> str:
        where = f"{mask_url(self.url)!r}" if self.url is not None else f"client={self.client!r}"
        return (
            f"SharedLimits({where}, lease={self.lease!r}, prefix={self.prefix!r}, "
            f"max_in_flight={self.max_in_flight!r}, timeout={self.timeout!r}, "
            f"probe_interval={self.probe_interval!r})"
        )

    def _password(self) -> str | None:
        if self.url is None:
            return None
        parts = urlsplit(self.url)
        query = dict(parse_qsl(parts.query))
        return parts.password or query.get("password") or None


def resolve(value: object, environ: Mapping[str, str] = os.environ) -> SharedLimits | None:
    """The shared limits a client was given, or read from ``ORGANIK_SHARED_LIMITS``.

    ``None`` reads the environment variable; an empty string means none.

    Raises:
        ValueError: ``value`` (or the variable) is not a URL this accepts.
    """
    if value is None:
        value = environ.get(SHARED_LIMITS_ENV, "").strip()
    if isinstance(value, SharedLimits):
        return value
    if isinstance(value, str):
        return SharedLimits(value) if value else None
    raise ValueError(
        "shared_limits must be a redis://, rediss:// or unix:// URL or a SharedLimits: "
        f"{type(value).__name__}"
    )


def mask_url(url: str) -> str:
    """``url`` with its password (in the user part or the query) shown as ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostinfo = netloc.rpartition("@")
            user, colon, _password = userinfo.partition(":")
            netloc = f"{user}:***@{hostinfo}" if colon else f"{userinfo}@{hostinfo}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, "***" if k.lower() in _SECRET_QUERY else v) for k, v in pairs], safe="*/"
            )
        if parts.scheme == "unix" and not netloc:  # urlunsplit would drop the "//"
            return f"unix://{parts.path}" + (f"?{query}" if query else "")
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "<a URL that does not parse>"


def _check_url(url: object) -> None:
    if not isinstance(url, str):
        raise ValueError(f"url must be a str: {type(url).__name__}")
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
        _ = parts.port  # a bad port number raises here
    except ValueError:
        raise ValueError(f"url is not a valid URL: {shown!r}") from None
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"url must start with redis://, rediss:// or unix://: {shown!r}")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"url has no socket path (unix:///path/to/redis.sock): {shown!r}")
    elif not parts.hostname:
        raise ValueError(f"url has no host: {shown!r}")
    if parts.fragment:
        raise ValueError(f"url must have no fragment: {shown!r}")


def _coredis() -> Any:
    """The coredis module, if a version that runs on both asyncio and trio is installed."""
    try:
        import coredis
    except ImportError:
        raise ValueError(
            "shared_limits needs coredis: the redis extra, organik_async[redis]"
        ) from None
    major = str(getattr(coredis, "__version__", "0")).split(".")[0]
    if not major.isdigit() or int(major) < 6:
        raise ValueError(
            f"shared_limits needs coredis 6 or later, which runs on asyncio and trio "
            f"(found {coredis.__version__}): the redis extra, organik_async[redis]"
        )
    return coredis


def _check_client(client: object) -> None:
    coredis = _coredis()
    if not isinstance(client, coredis.Redis | coredis.RedisCluster):
        raise ValueError(
            "client must be a coredis client (coredis.Redis or coredis.RedisCluster), "
            f"which runs on asyncio and trio: {type(client).__name__}"
        )


def account_digest(api_key: str) -> str:
    """The name an account's keys are filed under: 16 hex characters of a SHA-256, not the key."""
    return hashlib.sha256(b"organik_async:" + api_key.encode()).hexdigest()[:16]


# --- the scripts ---------------------------------------------------------------------------
# Each runs atomically in Redis; every time is Redis's TIME (milliseconds, or
# microseconds for the rate), so the hosts' clocks never matter.

_NOW_MS: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_PRELUDE: Final = (
    _NOW_MS
    + """
-- KEYS: leases, state, pause, members, waiters, wake
-- ARGV: ceiling, start, adaptive (1 or 0), m, then m releases of 4 values: holder,
--       outcome (a: answered, p: pushback, f: failed, c: cancelled), round sent in,
--       retry_after_ms; then the script's own arguments from ARGV[5 + 4 m]
local ceiling = tonumber(ARGV[1])
local adaptive = ARGV[3] == '1'
local s = redis.call('HMGET', KEYS[2], 'limit', 'round', 'slow', 'credit', 'calm', 'peak')
local limit = tonumber(s[1])
local changed = not limit
if not limit then limit = math.max(1, math.min(tonumber(ARGV[2]), ceiling)) end
local round = tonumber(s[2]) or 0
local slow = tonumber(s[3]) or 1
local credit = tonumber(s[4]) or 0
local calm = tonumber(s[5]) or 0
local peak = tonumber(s[6]) or 0
local before = limit
local freed = 0

-- AdaptiveLimit.succeeded and pushed_back, line for line, with the round made global
local function release(holder, outcome, sent, pause_ms)
  freed = freed + redis.call('ZREM', KEYS[1], holder)
  if adaptive and outcome == 'a' then
    changed = true
    calm = math.max(0, calm - 1)
    if limit < ceiling then
      local needed = """
    + str(GROWTH_ROUNDS)
    + """ * limit
      if slow == 1 then needed = 1 elseif limit + 1 == peak then needed = """
    + str(PROBE_ROUNDS)
    + """ * limit end
      credit = credit + 1
      if credit >= needed then
        credit = 0
        limit = limit + 1
      end
    end
  elseif adaptive and outcome == 'p' and sent == round and calm == 0 then
    changed = true
    round = round + 1
    slow = 0
    credit = 0
    peak = limit
    limit = math.max(1, math.floor(limit / 2))
    calm = limit
  end
  if outcome == 'p' and pause_ms > 0 and redis.call('PTTL', KEYS[3]) < pause_ms then
    redis.call('SET', KEYS[3], '1', 'PX', pause_ms)
  end
end

-- a freed slot wakes one process that waits for one (BLPOP on the wake list)
local function wake(n)
  if n <= 0 then return end
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  local waiting = redis.call('ZCARD', KEYS[5])
  if waiting == 0 then return end
  for _ = 1, math.min(n, waiting) do redis.call('LPUSH', KEYS[6], '1') end
  redis.call('LTRIM', KEYS[6], 0, waiting - 1)
  redis.call('PEXPIRE', KEYS[6], 60000)
end

-- the account's leases in flight and processes waiting, once expired entries are gone
local function load()
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  return redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[5])
end

local m = tonumber(ARGV[4])
for i = 0, m - 1 do
  local b = 5 + 4 * i
  release(ARGV[b], ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]))
end
local rest = 5 + 4 * m
if changed then
  redis.call('HSET', KEYS[2], 'limit', limit, 'round', round, 'slow', slow,
             'credit', tostring(credit), 'calm', calm, 'peak', peak)
  redis.call('PEXPIRE', KEYS[2], """
    + str(_STATE_TTL_MS)
    + """)
end
"""
)

_RELEASE: Final = (
    _PRELUDE
    + """
wake(freed)
local held, waiting = load()
return {limit, before, round, held, waiting}
"""
)

_ACQUIRE: Final = (
    _PRELUDE
    + """
-- ARGV[rest ...]: lease_ms, member, member_ttl_ms, wanted, then a holder name for each
-- Returns: leases granted (to the first holders), ms to the first lease's end, pause
--          ms, allowed, round, members, limit, limit before the releases, leases held
--          in the account, processes waiting
local lease = tonumber(ARGV[rest])
local member = ARGV[rest + 1]
local member_ttl = tonumber(ARGV[rest + 2])
local wanted = tonumber(ARGV[rest + 3])
redis.call('ZADD', KEYS[4], now + member_ttl, member)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
redis.call('PEXPIRE', KEYS[4], member_ttl)
local members = redis.call('ZCARD', KEYS[4])
local allowed = limit
if not adaptive or allowed > ceiling then allowed = ceiling end
local pause = redis.call('PTTL', KEYS[3])
if pause > 0 then
  wake(freed)
  local held, waiting = load()
  return {0, 0, pause, allowed, round, members, limit, before, held, waiting}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
local others = redis.call('ZCARD', KEYS[5])
if redis.call('ZSCORE', KEYS[5], member) then others = others - 1 end
local room = allowed - redis.call('ZCARD', KEYS[1])
-- slots this step's own releases freed go to the processes that wait, if any: a
-- process that gives back and takes again must not keep the account's slots
if others > 0 then room = room - freed end
local granted = math.max(0, math.min(wanted, room))
for i = 1, granted do
  redis.call('ZADD', KEYS[1], now + lease, ARGV[rest + 3 + i])
end
if granted > 0 then redis.call('PEXPIRE', KEYS[1], lease * 2) end
if others > 0 then wake(freed) else wake(freed - granted) end
if granted == wanted then
  redis.call('ZREM', KEYS[5], member)
  local held, waiting = load()
  return {granted, 0, 0, allowed, round, members, limit, before, held, waiting}
end
redis.call('ZADD', KEYS[5], now + member_ttl, member)
redis.call('PEXPIRE', KEYS[5], member_ttl)
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local until_first = 0  -- none: the room went to processes that wait
if first[2] then until_first = tonumber(first[2]) - now end
local held, waiting = load()
return {granted, until_first, 0, allowed, round, members, limit, before, held, waiting}
"""
)

_REFRESH: Final = (
    _NOW_MS
    + """
-- KEYS: leases, members; ARGV: lease_ms, member, member_ttl_ms, holders...
local lease = tonumber(ARGV[1])
local renewed = 0
for i = 4, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], lease * 2)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
return renewed
"""
)

_FREE: Final = """
-- KEYS: leases, members, waiters; ARGV: member, holders...
for i = 2, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""

_RATE: Final = """
-- KEYS: tat; ARGV: interval_us. Returns the microseconds to wait for this request's slot.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local after = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX',
           math.ceil((after - now) / 1000) + 1000)
return tat - now
"""

_SCRIPTS: Final = {
    "acquire": _ACQUIRE,
    "release": _RELEASE,
    "refresh": _REFRESH,
    "free": _FREE,
    "rate": _RATE,
}


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


_OUTCOME_CODES: Final = {
    Outcome.ANSWERED: "a",
    Outcome.PUSHBACK: "p",
    Outcome.FAILED: "f",
    Outcome.CANCELLED: "c",
}


class _Unavailable(Exception):
    """Redis did not serve one step (internal: always caught here)."""

    def __init__(self, why: str, *, tried: bool = True) -> None:
        super().__init__(why)
        self.why = why
        self.tried = tried
        """False: Redis was not asked (an outage goes on, no probe is due)."""


class _Keys:
    __slots__ = ("leases", "members", "pause", "state", "tat", "waiters", "wake")

    def __init__(self, prefix: str, account: str) -> None:
        base = f"{prefix}:{{{account}}}:"
        self.leases = base + "leases"
        self.state = base + "aimd"
        self.pause = base + "pause"
        self.members = base + "members"
        self.waiters = base + "waiters"
        self.wake = base + "wake"
        self.tat = base + "tat"


# --- the connection and its health ---------------------------------------------------------


class SharedBudget:
    """One client's link to its account's budget in Redis: the connection, its health,
    and the throttles (`SharedConcurrency`, `SharedRate`) that use it.

    Opened by the client's ``async with``, given back by its ``aclose()``, disconnected
    at the end of the ``async with``. Requests of a client that is not open use local
    limits (one WARNING says so).
    """

    def __init__(
        self,
        settings: SharedLimits,
        *,
        api_key: str,
        ceiling: int,
        adaptive: bool,
        rate: float | None,
    ) -> None:
        _coredis()  # a clear ValueError now, not at the first request
        self.settings = settings
        self.keys = _Keys(settings.prefix, account_digest(api_key))
        self.member = secrets.token_hex(6)
        self._password = settings._password()
        self._redis: Any = None
        self._no_script: type[Exception] = Exception
        self._scripts = {name: (_sha1(text), text) for name, text in _SCRIPTS.items()}
        self._stack: AsyncExitStack | None = None
        self.task_group: TaskGroup | None = None
        self._closed = False
        self._up = True
        self._down_since = 0.0
        self._next_probe = 0.0
        self._warned_unopened = False
        self.outages = 0
        self.last_limit: int | None = None
        self.members = 1
        self.concurrency = SharedConcurrency(self, ceiling=ceiling, adaptive=adaptive)
        self.rate = None if rate is None else SharedRate(self, rate)

    def __repr__(self) -> str:
        return f"<SharedBudget {self.settings.shown} {'up' if self._up else 'down'}>"

    # --- lifecycle

    async def open(self) -> None:
        """Connect (lazily: the first request does) and start the task group the lease
        refresher runs in. Idempotent."""
        if self._stack is not None or self._closed:
            return
        coredis = _coredis()
        from coredis.exceptions import ConnectionError, NoScriptError
        from coredis.retry import ConstantRetryPolicy

        self._no_script = NoScriptError

        settings = self.settings
        if settings.client is not None:
            redis = settings.client
        else:
            # One retry on a new connection: a pooled one may have died with a restart.
            redis = coredis.Redis.from_url(
                settings.url,
                retry_policy=ConstantRetryPolicy((ConnectionError,), retries=1, delay=0.01),
                connect_timeout=settings.timeout,
            )
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(redis)
            self.task_group = await stack.enter_async_context(anyio.create_task_group())
        except BaseException:
            await stack.aclose()
            raise
        self._redis = redis
        self._stack = stack

    async def aclose(self) -> None:
        """Give back every permit this process holds and stop the lease refresher.
        Idempotent; `exit()` then disconnects."""
        if self._closed:
            return
        self._closed = True
        holders = self.concurrency.holders()
        if self._redis is not None and self._up:
            with anyio.CancelScope(shield=True), contextlib.suppress(_Unavailable):
                await self.run("free", self._free_keys(), [self.member, *holders])
            # else: the leases expire by themselves
        self.concurrency.stop_refreshing()

    async def exit(self) -> None:
        """Disconnect: the end of the client's ``async with`` (the task and scope that
        opened it, as anyio requires)."""
        await self.aclose()
        stack, self._stack = self._stack, None
        self._redis = None
        self.task_group = None
        if stack is not None:
            await stack.aclose()

    def _free_keys(self) -> list[str]:
        return [self.keys.leases, self.keys.members, self.keys.waiters]

    # --- one step in Redis

    async def run(self, name: str, keys: list[str], args: list[Any], *, wait: float = 0.0) -> Any:
        """One script in Redis, within ``timeout`` (plus ``wait``); `_Unavailable` otherwise."""
        redis = self._redis
        if redis is None:
            raise _Unavailable("the client is closed")
        sha, text = self._scripts[name]
        no_script = self._no_script

        async def send() -> Any:
            try:
                return await redis.evalsha(sha, keys=keys, args=args)
            except no_script:  # a new or restarted Redis: load it, then run it
                await redis.script_load(text)
                return await redis.evalsha(sha, keys=keys, args=args)

        why = await self._step(send, wait)
        if isinstance(why, _Failure):
            raise _Unavailable(why.text)
        return why

    async def block(self, seconds: float) -> None:
        """Wait up to ``seconds`` for a released permit's wake-up (``BLPOP``)."""
        redis = self._redis
        if redis is None:
            raise _Unavailable("the client is closed")
        why = await self._step(lambda: redis.blpop([self.keys.wake], timeout=seconds), seconds)
        if isinstance(why, _Failure):
            raise _Unavailable(why.text)

    async def _step(self, send: Any, wait: float) -> Any:
        failure: _Failure | None = None
        with anyio.move_on_after(self.settings.timeout + wait):
            try:
                return await send()
            except Exception as exc:  # any failure of the store: go on without it
                failure = _Failure(self._describe(exc))
        return failure or _Failure(f"no answer within timeout={self.settings.timeout:g} s")

    def _describe(self, exc: BaseException) -> str:
        """A Redis error as text: its type and message, never a password."""
        text = f"{type(exc).__name__}: {exc}"[:300]
        if self._password:
            text = text.replace(self._password, "***")
        return text

    # --- health

    def connected(self) -> bool:
        """Whether the client is open with Redis (else: one WARNING, local limits)."""
        if self._closed:
            return False
        if self._redis is None:
            if not self._warned_unopened:
                self._warned_unopened = True
                logger.warning(
                    "shared limits (%s) are used by a client opened with "
                    "`async with OrganikClient(...)`; this one was not opened and uses "
                    "local limits",
                    self.settings.shown,
                )
            return False
        return True

    def usable(self) -> bool:
        """Whether to ask Redis now: it is up, or down and due for a probe."""
        if not self.connected():
            return False
        if self._up:
            return True
        now = anyio.current_time()
        if now >= self._next_probe:
            self._next_probe = now + self.settings.probe_interval
            return True
        return False

    def failed(self, why: str) -> None:
        """A step failed: start (or prolong) an outage; one WARNING per outage."""
        now = anyio.current_time()
        self._next_probe = now + self.settings.probe_interval
        if not self._up or self._redis is None:
            return
        self._up = False
        self._down_since = now
        self.outages += 1
        self.concurrency.outage_started()
        if self.rate is not None:
            self.rate.outage_started()
        logger.warning(
            "shared limits: Redis (%s) is unavailable (%s); going on with local limits "
            "(at most %d requests in flight: %s) and asking Redis again every %g s",
            self.settings.shown,
            why,
            self.concurrency.fallback_limit,
            self._share_text(),
            self.settings.probe_interval,
        )

    def answered(self) -> None:
        """A step worked: end an outage, if there was one (one INFO)."""
        if self._up:
            return
        self._up = True
        logger.info(
            "shared limits: Redis (%s) answers again after %.1f s; the account's budget "
            "is shared again",
            self.settings.shown,
            anyio.current_time() - self._down_since,
        )

    @property
    def up(self) -> bool:
        return self._up and self._redis is not None

    def _share_text(self) -> str:
        if self.last_limit is None:
            return "no shared limit was known yet"
        if self.members == 1:
            return f"the account's last limit {self.last_limit}"
        return (
            f"a share of the account's last limit {self.last_limit} among {self.members} processes"
        )

    def heard(self, limit: int, members: int) -> None:
        self.last_limit = limit
        self.members = max(1, members)


class _Failure:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


# --- requests in flight --------------------------------------------------------------------


class _SharedPermit(Permit):
    """A permit from Redis (``holder``) or, during an outage, from a local limit."""

    __slots__ = ("holder", "local", "local_limit")

    def __init__(self) -> None:
        super().__init__()
        self.holder: str | None = None
        self.local: Permit | None = None
        self.local_limit: AdaptiveLimit | None = None

    def __repr__(self) -> str:
        kind = "shared" if self.holder is not None else "local"
        return f"<Permit {kind} round={self.round}>"


class _Turn:
    """A request's place in this process's queue for the account's leases."""

    __slots__ = ("event", "failed", "granted", "holder", "round")

    def __init__(self, holder: str) -> None:
        self.holder = holder
        self.event = anyio.Event()
        self.granted = False
        self.round = 0
        self.failed: str | None = None

    def wake(self) -> None:
        self.event.set()


class SharedConcurrency:
    """The account's requests in flight: a `ConcurrencyBudget` kept in Redis.

    A process first takes one of its own ``ceiling`` slots (``max_connections``: it
    never holds more account permits than it can send at once), then a lease in Redis.
    Only the first task of the process's queue waits in Redis; the others wait here.
    """

    def __init__(self, budget: SharedBudget, *, ceiling: int, adaptive: bool) -> None:
        self._budget = budget
        self.budget = budget
        self.ceiling = budget.settings.max_in_flight or ceiling
        self.adaptive = adaptive
        self._process_slots = ceiling
        self._slots = anyio.CapacityLimiter(ceiling)
        self._queue: list[_Turn] = []
        self._lead: _Turn | None = None
        self._holders: set[str] = set()
        self._ids = itertools.count(1)
        self._refreshing = False
        self._refresher: anyio.CancelScope | None = None
        self._pending: list[tuple[str, str, int, int]] = []
        """Releases not yet sent to Redis: holder ("" for an outcome alone), outcome
        code, round, pause (ms)."""
        self._flushing = False
        self._parked: list[tuple[str, float]] = []
        """Leases kept for this process's next request: holder, since when."""
        self._round = 0
        self._share_ok = False
        self._others_wait = False
        self._heard_at = -math.inf
        self._limit = max(1, min(_START, self.ceiling)) if adaptive else self.ceiling
        self._fallback: AdaptiveLimit | None = None
        self.changes = 0

    def __repr__(self) -> str:
        return f"SharedConcurrency(limit={self.limit}, ceiling={self.ceiling})"

    @property
    def limit(self) -> int:
        """The account's limit as last heard from Redis (during an outage: the local one)."""
        if not self._budget.up and self._fallback is not None:
            return self._fallback.limit
        return self._limit

    @property
    def in_flight(self) -> int:
        """This process's requests holding a permit."""
        return self._slots.borrowed_tokens

    @property
    def fallback_limit(self) -> int:
        return self._fallback.limit if self._fallback is not None else self._limit

    def holders(self) -> list[str]:
        """The leases this process holds, or gave back without telling Redis yet."""
        pending, self._pending = self._pending, []
        return sorted(self._holders | {release[0] for release in pending})

    def outage_started(self) -> None:
        """Local limits for the outage: this process's share of the last shared limit."""
        budget = self._budget
        share = self.ceiling
        if budget.last_limit is not None:
            share = max(1, budget.last_limit // budget.members)
        share = min(share, self._process_slots)
        self._fallback = AdaptiveLimit(share, start=share)

    def _local_limit(self) -> AdaptiveLimit:
        if self._fallback is None:
            start = self._limit if self.adaptive else self.ceiling
            self._fallback = AdaptiveLimit(self._process_slots, start=start)
        return self._fallback

    async def acquire(self) -> Permit:
        """Wait for room in this process, then in the account (or, without Redis, locally)."""
        permit = _SharedPermit()
        try:
            self._slots.acquire_on_behalf_of_nowait(permit)
        except anyio.WouldBlock:
            await self._slots.acquire_on_behalf_of(permit)
        try:
            budget = self._budget
            if self._parked and budget.up and self._reusable():
                permit.holder = self._parked.pop()[0]  # still in Redis, still counted
                permit.round = self._round
                return permit
            if budget.connected():
                try:
                    await self._acquire_shared(permit)
                    return permit
                except _Unavailable as exc:
                    if exc.tried:
                        budget.failed(exc.why)
            limit = self._local_limit()
            permit.local = await limit.acquire()
            permit.local_limit = limit
            permit.round = permit.local.round
            return permit
        except BaseException:
            self._slots.release_on_behalf_of(permit)
            raise

    async def _acquire_shared(self, permit: _SharedPermit) -> None:
        """A lease from Redis: one task of the process (the lead) asks for every queued
        request at once, and waits in Redis when there is no room; the others wait here."""
        turn = _Turn(f"{self._budget.member}:{next(self._ids)}")
        self._queue.append(turn)
        try:
            while not turn.granted:
                if turn.failed is not None:
                    raise _Unavailable(turn.failed)
                if self._lead is None:
                    self._lead = turn
                    try:
                        await self._serve(turn)
                    finally:
                        self._lead = None
                        self._pass_lead()
                else:
                    turn.event = anyio.Event()
                    await turn.event.wait()
        except BaseException:
            if turn in self._queue:
                self._queue.remove(turn)
            if turn.granted:  # granted, then cancelled before it was used: give it back
                self._pending.append((turn.holder, "c", turn.round, 0))
                self._flush_soon()
            raise
        permit.holder = turn.holder
        permit.round = turn.round
        self._holders.add(turn.holder)
        budget = self._budget
        if not self._refreshing and budget.task_group is not None:
            self._refreshing = True
            budget.task_group.start_soon(self._refresh)

    async def _serve(self, lead: _Turn) -> None:
        """As the lead: ask for leases for the queue (the lead first) until the lead has one."""
        while not lead.granted:
            batch = [lead, *(t for t in self._queue if t is not lead)][:_MAX_BATCH]
            try:
                with anyio.CancelScope(shield=True):  # bounded by timeout; grants are kept
                    reply = await self._try([t.holder for t in batch])
                    for turn in batch[: reply[0]]:
                        turn.granted = True
                        turn.round = reply[4]
                        self._queue.remove(turn)
                        if turn is not lead:
                            turn.wake()
            except _Unavailable as exc:
                for turn in self._queue:
                    if turn is not lead:
                        turn.failed = exc.why
                        turn.wake()
                raise
            if not lead.granted:
                await self._wait(reply)

    def _pass_lead(self) -> None:
        for turn in self._queue:
            if not turn.granted and turn.failed is None:
                turn.wake()
                return

    async def _try(self, holders: list[str]) -> list[int]:
        """The acquire script for ``holders``, carrying the releases not yet sent:
        [leases granted, ms to the first lease's end, pause ms, allowed, round, members,
        limit, limit before]."""
        budget = self._budget
        if not budget.usable():
            raise _Unavailable("Redis is unavailable", tried=False)
        lease_ms = round(budget.settings.lease * 1000)
        raw = await budget.run(
            "acquire",
            self._keys(),
            [*self._releases(), lease_ms, budget.member, 2 * lease_ms, len(holders), *holders],
        )
        reply = [int(v) for v in raw]
        budget.answered()
        budget.heard(reply[3], reply[5])
        self._heard(reply[6], reply[7])
        self._note(reply[4], reply[8], reply[9])
        return reply

    def _keys(self) -> list[str]:
        keys = self._budget.keys
        return [keys.leases, keys.state, keys.pause, keys.members, keys.waiters, keys.wake]

    def _releases(self) -> list[Any]:
        """The scripts' first arguments: the settings, and the releases not yet sent
        (taken: a failed step loses them, and their leases expire by themselves)."""
        pending, self._pending = self._pending, []
        args: list[Any] = [self.ceiling, _START, 1 if self.adaptive else 0, len(pending)]
        for release in pending:
            args += release
        return args

    def _note(self, round_: int, held: int, waiting: int) -> None:
        self._round = round_
        self._share_ok = waiting == 0 and held <= self._limit
        self._others_wait = waiting > 0
        self._heard_at = anyio.current_time()

    def _heard(self, limit: int, before: int) -> None:
        """The account's limit after this process's releases (and before them)."""
        allowed = min(limit, self.ceiling) if self.adaptive else self.ceiling
        if allowed != self._limit:
            self.changes += 1
        if limit < before:
            logger.info(
                "shared concurrency limit %d -> %d: the provider asked to slow down",
                before,
                limit,
            )
        elif limit > before:
            logger.debug("shared concurrency limit %d -> %d", before, limit)
        self._limit = allowed

    async def _wait(self, reply: list[int]) -> None:
        """Sleep out a pause, or block until a permit is given back (or a lease ends)."""
        pause_ms = reply[2]
        if pause_ms > 0:
            await anyio.sleep(pause_ms / 1000 * (1 + 0.1 * random.random()))
            return
        seconds = min(max(reply[1] / 1000, _MIN_BLOCK), _MAX_BLOCK)
        await self._budget.block(round(seconds * (0.75 + 0.5 * random.random()), 3))

    async def release(
        self, permit: Permit, outcome: Outcome, *, retry_after: float | None = None
    ) -> None:
        """Give the permit back and report the outcome (no checkpoint).

        A lease goes back with this process's next step in Redis: the next acquire
        carries it (one round trip for "give back, take again"), or a task of the
        client sends the releases that no acquire took. Neither belongs to the request,
        so a cancelled request gives its lease back too; if Redis does not answer
        within ``timeout``, the lease expires by itself.
        """
        assert isinstance(permit, _SharedPermit)
        try:
            if permit.local is not None and permit.local_limit is not None:
                await permit.local_limit.release(permit.local, outcome, retry_after=retry_after)
            elif permit.holder is not None:
                self._give_back(permit.holder, outcome, permit.round, retry_after)
        finally:
            self._slots.release_on_behalf_of(permit)

    def _give_back(
        self, holder: str, outcome: Outcome, sent_in: int, retry_after: float | None
    ) -> None:
        code = _OUTCOME_CODES[outcome]
        if not self._budget.up:
            self._holders.discard(holder)  # its lease expires by itself
            return
        if outcome is not Outcome.PUSHBACK and self._reusable():
            # Kept for this process's next request; the outcome goes to Redis alone.
            self._parked.append((holder, anyio.current_time()))
            self._pending.append(("", code, sent_in, 0))
        else:
            self._holders.discard(holder)
            pause_ms = 0
            if retry_after is not None and outcome is Outcome.PUSHBACK:
                pause_ms = round(min(max(retry_after, 0.0), _MAX_PAUSE) * 1000)
            self._pending.append((holder, code, sent_in, pause_ms))
        self._flush_soon()

    def _reusable(self) -> bool:
        """Whether a lease this process holds may serve its next request without Redis:
        no process waits for one, the account is within its limit, and Redis said so
        a moment ago."""
        return (
            self._share_ok
            and not self._queue
            and anyio.current_time() - self._heard_at < _REUSE_FRESH
        )

    def _return_idle(self) -> None:
        """Kept leases go back to Redis when no request took them for `_KEEP` seconds,
        or when they may no longer be kept (someone waits)."""
        now = anyio.current_time()
        keep = self._reusable()
        parked, self._parked = self._parked, []
        for holder, since in parked:
            if keep and now - since < _KEEP:
                self._parked.append((holder, since))
            else:
                self._holders.discard(holder)
                self._pending.append((holder, "r", self._round, 0))

    async def drain(self) -> None:
        """Wait until every release has reached Redis (or Redis is down)."""
        while self._pending or self._flushing:  # noqa: ASYNC110 (for tests: rare, brief)
            await anyio.sleep(0.001)

    def _flush_soon(self) -> None:
        task_group = self._budget.task_group
        if self._flushing or task_group is None:
            return
        self._flushing = True
        task_group.start_soon(self._flush)

    async def _flush(self) -> None:
        """Send the releases and outcomes that no acquire has carried, in one step, and
        give back the kept leases no request took. Outcomes of requests whose lease was
        kept go at most every `_KEEP` seconds: a busy process takes one step in Redis
        per `_KEEP`, not one per request.

        A lease given back goes at once when a task of this process or another process
        waits for one; otherwise the next acquire gets a moment to carry it (a worker
        takes its next batch right away). Every other turn of the loop sleeps too, so it
        never holds the event loop while outcomes wait for their `_KEEP`.
        """
        budget = self._budget
        try:
            while budget.up:
                leases = any(release[0] for release in self._pending)
                if not (leases and (self._queue or self._others_wait)):
                    await anyio.sleep(_FLUSH_DELAY)
                self._return_idle()
                if not self._pending:
                    if self._parked:
                        continue
                    break
                if (
                    all(not release[0] for release in self._pending)
                    and anyio.current_time() - self._heard_at < _KEEP
                ):
                    continue  # outcomes alone go at most every _KEEP seconds
                try:
                    raw = await budget.run("release", self._keys(), self._releases())
                except _Unavailable as exc:
                    budget.failed(exc.why)
                    break
                limit, before, round_, held, waiting = (int(v) for v in raw)
                self._heard(limit, before)
                self._note(round_, held, waiting)
        finally:
            self._flushing = False
            if not budget.up:
                self._pending.clear()  # their leases expire by themselves
                self._holders.difference_update(holder for holder, _ in self._parked)
                self._parked.clear()

    def stop_refreshing(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()

    async def _refresh(self) -> None:
        """Renew this process's leases every ``lease / 3`` s while it holds any.

        Its own cancel scope: the task group it runs in was entered by the client's
        ``async with``, so that group's scope covers the caller's code too.
        """
        budget = self._budget
        lease_ms = round(budget.settings.lease * 1000)
        try:
            with anyio.CancelScope() as self._refresher:
                await self._renew(budget, lease_ms)
        finally:
            self._refreshing = False
            self._refresher = None

    async def _renew(self, budget: SharedBudget, lease_ms: int) -> None:
        while self._holders:
            await anyio.sleep(budget.settings.lease / 3)
            holders = sorted(self._holders)
            if not holders or not budget.up:
                continue
            try:
                await budget.run(
                    "refresh",
                    [budget.keys.leases, budget.keys.members],
                    [lease_ms, budget.member, 2 * lease_ms, *holders],
                )
            except _Unavailable as exc:
                budget.failed(exc.why)


# --- requests per second -------------------------------------------------------------------


class SharedRate:
    """The account's ``rate_limit``: one timeline of slots in Redis (GCRA), so every
    process together sends at most ``rate`` requests per second."""

    def __init__(self, budget: SharedBudget, rate: float) -> None:
        self._local = RateLimiter(rate)  # validates rate, and serves without Redis
        self.rate = rate
        self._budget = budget
        self._interval_us = max(1, round(1_000_000 / rate))

    def __repr__(self) -> str:
        return f"SharedRate(rate={self.rate!r})"

    def outage_started(self) -> None:
        """Local spacing for the outage: this process's share of the rate."""
        self._local = RateLimiter(self.rate / self._budget.members)

    async def acquire(self) -> Permit:
        """Wait for this request's slot on the account's timeline."""
        budget = self._budget
        if budget.usable():
            try:
                wait_us = int(await budget.run("rate", [budget.keys.tat], [self._interval_us]))
            except _Unavailable as exc:
                budget.failed(exc.why)
            else:
                budget.answered()
                if wait_us > 0:
                    await anyio.sleep(wait_us / 1_000_000)
                return _ANY
        return await self._local.acquire()

    async def release(
        self, permit: Permit, outcome: Outcome, *, retry_after: float | None = None
    ) -> None:
        """Nothing to give back: a slot is spent when it is taken."""


_ANY: Final = Permit()
