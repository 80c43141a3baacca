"""Extraction, written once for every platform: windows, paging, retries,
circuit breaker, adaptive splitting, landing.

For a shop and an interval [start, end):

1. split the interval into windows the platform accepts (``client.max_window``);
2. for each window read the first page (it carries the total), then page **from
   the last page backwards** - what Taobao and PDD document for modified-time
   searches - and finally read the first page again: an order that changes while
   we page moves to the front, and items only ever shift towards pages already
   read, so a pass misses nothing that was in the window when it ended. Passes
   repeat (bounded) until the total holds still. A window that fits on one page
   is read twice too: the second read is what notices orders an index still
   catching up had not shown (the total moves, and the pass repeats);
3. retry transient failures (5xx, 504, timeouts, dropped connections, throttling,
   cut-off bodies) with capped exponential backoff, honouring "retry after" /
   "ban will last N seconds". A gateway that refuses our request time is not
   failing: the client re-syncs to the gateway's clock (its ``Date`` header)
   and asks again at once, and what it learnt is shared with every task that
   talks to that platform (``ops.platform_clocks``);
4. a circuit breaker per platform, shared by every task through the warehouse
   (``ops.circuit_breakers``): after repeated failures *of the gateway* (5xx,
   timeouts, dropped connections, cut-off bodies; not throttling, not a clock
   refusal, not a bad argument) calls fail fast for a cool-down; then the next
   call is the probe (half-open): its success closes the breaker, its failure
   opens it again;
5. a window that still fails on timeouts/5xx or cut-off bodies is split in
   halves down to ``min_window``; every leaf gets its own ledger row;
6. a time budget per window and per task: retries and back-offs never outlast
   it, so a task ends by itself, with a ``failed`` ledger row for every window
   it could not read, before Airflow's ``execution_timeout`` would kill it
   mid-window and leave no row at all;
7. land each window's rows with its ledger row in one transaction
   (:func:`orderhub.landing.land`). Nothing is skipped: a window that could not
   be read is recorded ``failed`` and the repair DAG re-pulls it.

Wall time (budgets, back-offs, the breaker's cool-down) comes from a
:class:`WallClock`; the extraction-level chaos tests give it a virtual one, so
minutes of incidents and cool-downs cost no real time there.

The scheduled DAG tasks and ``orderhub extract`` all call :func:`extract_windows`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from orderhub import jsonutil
from orderhub.config import ExtractionSettings, Shop, database_url
from orderhub.landing import (
    RawRow,
    Rejected,
    WindowLoad,
    connect,
    ensure_schema,
    land,
    register_shop,
    resolve_split,
    sha256,
)
from orderhub.platforms import Credentials, PlatformClient, PlatformError, client_for

log = logging.getLogger(__name__)

# Errors that say the gateway itself is unwell: they count toward the breaker
# and, when retries do not cure them, split the window.
GATEWAY_FAILURES = frozenset({"transport", "server", "malformed"})
SPLITTABLE = GATEWAY_FAILURES
# Consecutive clock refusals one call may re-sync through before it gives up
# (a gateway whose Date header does not match what it accepts).
MAX_RESYNCS = 3
# Gateway failures in a row that open a half-open breaker again (Breaker).
HALF_OPEN_FAILURES = 3


class WallClock:
    """Wall time for budgets, back-offs and the breaker's cool-down."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = WallClock()


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    window_deadline: float = 10 * 60  # seconds one window may spend in retries
    task_deadline: float = 25 * 60  # seconds one shop's extraction may take in all
    min_window: timedelta = timedelta(minutes=5)
    max_passes: int = 4
    breaker_threshold: int = 10  # consecutive gateway failures (more than one window's retries)
    breaker_cooldown: float = 30.0
    # How long callers wait for an open breaker to let a probe through: while
    # the breaker has been open (without a success) for less than this; after
    # that every caller fails fast (the repair re-pulls), and a probe still
    # goes through after each cool-down.
    breaker_patience: float = 5 * 60
    page_size: int = 100  # capped by each platform's maximum

    @classmethod
    def from_env(cls) -> RetryPolicy:
        return cls(
            page_size=int(os.environ.get("ORDERHUB_PAGE_SIZE", 100)),
            base_delay=float(os.environ.get("ORDERHUB_RETRY_BASE_SECONDS", 0.5)),
            breaker_cooldown=float(os.environ.get("ORDERHUB_BREAKER_COOLDOWN_SECONDS", 30)),
            breaker_patience=float(os.environ.get("ORDERHUB_BREAKER_PATIENCE_SECONDS", 5 * 60)),
            task_deadline=float(os.environ.get("ORDERHUB_TASK_DEADLINE_SECONDS", 25 * 60)),
        )

    def delay(self, attempt: int, error: PlatformError) -> float:
        if error.retry_after is not None:
            return min(error.retry_after, self.max_delay)
        return min(self.base_delay * 2 ** (attempt - 1), self.max_delay)


def windows(start: datetime, end: datetime, size: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """Consecutive half-open windows of at most ``size`` covering [start, end)."""
    if end <= start:
        raise ValueError(f"empty interval [{start}, {end})")
    cursor = start
    while cursor < end:
        upper = min(cursor + size, end)
        yield cursor, upper
        cursor = upper


class Breaker:
    """A circuit breaker per platform, its state in ``ops.circuit_breakers`` so
    that every task (and every worker) sees the same one.

    Only gateway failures count (:data:`GATEWAY_FAILURES`); throttling and
    clock refusals say the gateway is up, and neither open nor close it. Open,
    it lets no call through until ``opened_until``. After that it is half-open:
    calls go through as probes; a success closes it (and ends the outage),
    and :data:`HALF_OPEN_FAILURES` gateway failures in a row open it for
    another cool-down. One failed probe is not enough: a gateway that is back
    but flaky (a 5xx in every few answers) would otherwise be judged by a
    single answer after every cool-down, and a long run could meet a failing
    probe at each one, while a gateway still down fails three probes at
    once. ``open_since`` is when the outage began: callers wait for the
    probe moment while it is younger than the policy's patience, and fail fast
    after that (:class:`WindowFetch`)."""

    def __init__(self, conn: psycopg.Connection, platform: str, policy: RetryPolicy,
                 clock: WallClock = SYSTEM_CLOCK):
        self.conn = conn  # autocommit
        self.platform = platform
        self.policy = policy
        self.clock = clock

    def state(self) -> tuple[float, float, str | None]:
        """(seconds until a probe may go through, 0 when closed; seconds the
        outage has lasted; the last failure)."""
        row = self.conn.execute(
            "select extract(epoch from opened_until), extract(epoch from open_since), last_error"
            " from ops.circuit_breakers where platform = %s", (self.platform,)).fetchone()
        if not row or row[0] is None:
            return 0.0, 0.0, None
        now = self.clock.time()
        return max(float(row[0]) - now, 0.0), now - float(row[1] or now), row[2]

    def error(self, last_error: str | None) -> PlatformError:
        return PlatformError(self.platform, "breaker-open",
                             f"circuit open after repeated failures ({last_error})", kind="breaker")

    def record(self, error: PlatformError | None) -> None:
        if error is None:
            self.conn.execute(
                "update ops.circuit_breakers set consecutive_failures = 0, opened_until = null,"
                " open_since = null where platform = %s"
                " and (consecutive_failures > 0 or opened_until is not null)",
                (self.platform,))
            return
        if error.kind not in GATEWAY_FAILURES:
            return
        # Half-open (the cool-down over, not yet closed): the first failed
        # probe leaves it half-open with HALF_OPEN_FAILURES - 1 failures to go.
        self.conn.execute(
            """
            update ops.circuit_breakers set consecutive_failures = %(n)s - %(h)s,
                last_error = %(e)s
            where platform = %(p)s and opened_until <= to_timestamp(%(now)s)
              and consecutive_failures >= %(n)s
            """,
            {"p": self.platform, "e": str(error)[:500], "n": self.policy.breaker_threshold,
             "h": HALF_OPEN_FAILURES, "now": self.clock.time()})
        self.conn.execute(
            """
            insert into ops.circuit_breakers as b (platform, consecutive_failures, last_error)
            values (%(p)s, 1, %(e)s)
            on conflict (platform) do update set
                consecutive_failures = b.consecutive_failures + 1,
                last_error = excluded.last_error,
                opened_until = case when b.consecutive_failures + 1 >= %(n)s
                                    then to_timestamp(%(now)s + %(c)s)
                                    else b.opened_until end,
                open_since = case when b.consecutive_failures + 1 >= %(n)s
                                  then coalesce(b.open_since, to_timestamp(%(now)s))
                                  else b.open_since end,
                times_opened = b.times_opened
                    + case when b.consecutive_failures + 1 = %(n)s then 1 else 0 end
            """,
            {"p": self.platform, "e": str(error)[:500], "n": self.policy.breaker_threshold,
             "c": self.policy.breaker_cooldown, "now": self.clock.time()})



class PlatformClock:
    """What OrderHub has learnt of a platform's clock, in ``ops.platform_clocks``:
    the offset (gateway time minus ours) a client stamps its requests with.
    Every client of the platform starts from it - also while the breaker is
    open - and a clock refusal updates it for all."""

    def __init__(self, conn: psycopg.Connection, platform: str):
        self.conn = conn  # autocommit
        self.platform = platform

    def offset(self) -> float | None:
        row = self.conn.execute("select offset_seconds from ops.platform_clocks"
                                " where platform = %s", (self.platform,)).fetchone()
        return float(row[0]) if row else None

    def learn(self, offset: float) -> None:
        self.conn.execute(
            "insert into ops.platform_clocks as c (platform, offset_seconds) values (%s, %s)"
            " on conflict (platform) do update set offset_seconds = excluded.offset_seconds,"
            " learnt_at = now(), times_learnt = c.times_learnt + 1",
            (self.platform, offset))


class WindowFetch:
    """Fetches every page of one window, counting pages and attempts, within
    the window's time budget and the task's (``task_deadline``, on the clock's
    monotonic time). An open breaker is waited out while the outage is younger
    than the policy's patience and the budgets allow; then the call fails fast."""

    def __init__(self, client: PlatformClient, policy: RetryPolicy, breaker: Breaker | None = None,
                 platform_clock: PlatformClock | None = None, clock: WallClock = SYSTEM_CLOCK,
                 task_deadline: float | None = None):
        self.client = client
        self.policy = policy
        self.breaker = breaker
        self.platform_clock = platform_clock
        self.clock = clock
        self.task_deadline = task_deadline if task_deadline is not None else float("inf")
        self.deadline = min(clock.monotonic() + policy.window_deadline, self.task_deadline)
        self.pages = 0
        self.attempts = 0

    def _resync(self, error: PlatformError, resyncs: int) -> bool:
        """A clock refusal: the client has taken the gateway's time from the
        answer's Date header; share it and ask again at once (bounded)."""
        if error.kind != "clock" or resyncs >= MAX_RESYNCS:
            return False
        if self.platform_clock is not None:
            self.platform_clock.learn(self.client.clock_offset)
        log.info("%s: re-synced to the gateway's clock (offset %+.0fs)", self.client.platform,
                 self.client.clock_offset)
        return True

    def _worth_waiting(self, wait: float, outage: float) -> bool:
        return (0 < wait and outage + wait <= self.policy.breaker_patience
                and self.clock.monotonic() + wait < self.deadline)

    def _wait_for_breaker(self) -> None:
        """Open: sleep until it lets a probe through, if the outage is young
        enough and the budget allows; else fail fast."""
        while True:
            wait, outage, last_error = self.breaker.state()
            if wait <= 0:
                return
            if not self._worth_waiting(wait, outage):
                raise self.breaker.error(last_error)
            log.warning("%s: circuit open (%s); waiting %.0fs for it to let a probe through",
                        self.client.platform, last_error, wait)
            self.clock.sleep(wait)

    def _breaker_decides(self, error: PlatformError) -> bool:
        """Retries spent on a gateway failure while the breaker is open (it
        opened on this run of failures): waiting for it, within patience,
        takes over from the attempt count."""
        if self.breaker is None or error.kind not in GATEWAY_FAILURES:
            return False
        wait, outage, _ = self.breaker.state()
        if wait == 0 and outage > 0:  # half-open: its probes decide, as long as it is open
            return (outage <= self.policy.breaker_patience
                    and self.clock.monotonic() < self.deadline)
        return self._worth_waiting(wait, outage)

    def call(self, request: Callable, what: str):
        """One API call (``request()``) with retries, backoff and the breaker."""
        attempt, resyncs = 0, 0
        while True:
            if self.clock.monotonic() >= self.task_deadline:
                raise PlatformError(self.client.platform, "deadline",
                                    f"the task's time budget is spent before {what}",
                                    kind="deadline")
            if self.breaker:
                self._wait_for_breaker()
            self.attempts += 1
            try:
                result = request()
            except PlatformError as error:
                if self._resync(error, resyncs):
                    resyncs += 1
                    continue
                attempt += 1
                if self.breaker:
                    self.breaker.record(error)
                delay = self.policy.delay(attempt, error)
                if not error.retryable:
                    raise
                if self.clock.monotonic() + delay >= self.task_deadline:
                    raise PlatformError(self.client.platform, "deadline",
                                        f"the task's time budget is spent (last: {error})",
                                        kind="deadline") from error
                if self.clock.monotonic() + delay >= self.deadline:
                    raise  # the window's budget: a split half gets its own
                if attempt >= self.policy.max_attempts:
                    if not self._breaker_decides(error):
                        raise
                    continue  # the open breaker says when to probe (the loop's top)
                if self.client.api_calls:
                    self.client.api_calls[-1].backoff_seconds = delay
                log.warning("%s %s: %s; retry %s in %.1fs", self.client.platform, what, error,
                            attempt, delay)
                self.clock.sleep(delay)
                continue
            if self.breaker:
                self.breaker.record(None)
            self.pages += 1
            return result

    def _page(self, start: datetime, end: datetime, page: int, size: int):
        return self.call(lambda: self.client.search_orders(start, end, page, size),
                          f"page {page} of [{start}, {end})")

    def orders(self, start: datetime, end: datetime) -> tuple[list[dict], int]:
        """Every order in the window: passes from the last page backwards, each
        ending with the first page again, until the total holds still."""
        size = min(self.client.max_page_size, self.policy.page_size)
        first = self.client.first_page
        head = self._page(start, end, first, size)
        collected: list[dict] = []
        for _ in range(self.policy.max_passes):
            total = head.total if head.total is not None else len(head.orders)
            last = first + max(math.ceil(total / size), 1) - 1
            for page in range(last, first, -1):
                collected.extend(self._page(start, end, page, size).orders)
            collected.extend(head.orders)
            head = self._page(start, end, first, size)  # the first page again, last
            collected.extend(head.orders)
            if head.total == total:
                return collected, total
        raise PlatformError(self.client.platform, "unstable",
                            f"total kept changing over {self.policy.max_passes} passes",
                            retryable=True, kind="server")

    def deliveries(self, order_ids: list[str]) -> tuple[list[dict], int]:
        """What a delivery service says of each of ``order_ids`` (the shop's
        orders of the window): each of its APIs asked in turn, every call
        retried on its own. The count is the deliveries found: a service
        reports no total of its own."""
        found = []
        for order_id in order_ids:
            payload: dict | None = {}
            for api in self.client.apis:
                answer = self.call(lambda a=api, o=order_id: self.client.ask(a, o),
                                   f"{api} of order {order_id}")
                if answer is None:  # not an order the service carries
                    payload = None
                    break
                payload[api] = answer
            if payload is not None:
                found.append(payload)
        return found, len(found)

    def settlements(self, start: datetime, end: datetime) -> tuple[list[dict], int]:
        """Every settlement line booked in the window. A booked line never
        changes, so one forward pass (pages, a cursor or a file) is enough;
        the count is the platform's total where it gives one."""
        lines: list[dict] = []
        cursor, total = None, None
        while True:
            page = self.call(lambda c=cursor: self.client.search_settlements(start, end, c),
                              f"settlements [{start}, {end}) at {cursor or 'start'}")
            lines.extend(page.lines)
            total = page.total if page.total is not None else total
            if page.next_cursor is None:
                return lines, total if total is not None else len(lines)
            cursor = page.next_cursor


def unreadable_json_text(payload: dict, fields: list[str]) -> str | None:
    """The first of ``fields`` (the mapping seed's decode rows: fields holding
    JSON as a string) whose text is not JSON; staging could not read it."""
    for name in fields:
        value = payload.get(name)
        if isinstance(value, str) and value:
            try:
                json.loads(value)
            except ValueError:
                return name
    return None


def to_rows(client: PlatformClient, payloads: list[dict],
            entity: str = "orders") -> tuple[list[RawRow], list[Rejected]]:
    from orderhub.mapping import decode_fields

    decoded = decode_fields(client.platform) if entity == "orders" else []
    rows, rejected = [], []
    for payload in payloads:
        text = jsonutil.canonical(payload)
        bad = unreadable_json_text(payload, decoded) if decoded else None
        if bad:
            rejected.append(Rejected(text, f"{client.platform}: {bad} should hold JSON as a"
                                           f" string, and its text is not JSON"))
            continue
        try:
            order_id, modified_at = client.identity(entity, payload)
            if not order_id:
                raise ValueError("empty order id")
        except (KeyError, ValueError, TypeError) as exc:
            what = " settlement line" if entity == "settlements" else ""
            when = "settle time" if entity == "settlements" else "modified time"
            rejected.append(Rejected(text, f"{client.platform}{what}: payload lacks a usable"
                                           f" order id or {when} ({type(exc).__name__}: {exc})"))
            continue
        rows.append(RawRow(order_id, modified_at, text, sha256(text)))
    return rows, rejected


@dataclass
class ShopResult:
    platform: str
    shop_id: str
    windows: int = 0
    windows_failed: int = 0
    windows_split: int = 0
    orders_landed: int = 0
    rows_inserted: int = 0
    rows_quarantined: int = 0
    errors: list[str] = field(default_factory=list)

    deliveries: dict | None = None  # the shop's deliveries of the same windows (issue 19)

    def as_dict(self) -> dict:
        return self.__dict__.copy()

    def add_deliveries(self, deliveries: ShopResult | None) -> ShopResult:
        """Fold in the deliveries extracted after these orders: their failed
        windows fail the task as the orders' do."""
        if deliveries is not None:
            self.deliveries = deliveries.as_dict()
            self.windows_failed += deliveries.windows_failed
            self.errors += [f"deliveries {error}" for error in deliveries.errors]
        return self


class ShopExtraction:
    """One shop's extraction run of one entity (orders, settlements, or the
    deliveries of its orders by its delivery service): a client, the
    breaker and clock of the API's owner, a warehouse connection."""

    def __init__(self, shop: Shop, run_id: str, credentials: Credentials | None,
                 url: str | None, policy: RetryPolicy | None, progress: Callable | None,
                 entity: str = "orders", clock: WallClock = SYSTEM_CLOCK,
                 sync_mode: str = "live"):
        self.shop = shop
        self.entity = entity
        self.sync_mode = sync_mode
        self.run_id = run_id
        if entity == "deliveries":  # the shop's delivery service, asked about its orders
            from orderhub.delivery import service_class

            self.client = service_class(shop.delivery)(
                credentials or Credentials.from_airflow(shop.delivery_conn_id),
                shop_id=shop.shop_id)
        else:
            self.client = client_for(shop.platform,
                                     credentials or Credentials.from_airflow(shop.conn_id))
        self.policy = policy or RetryPolicy.from_env()
        self.url = url or database_url()
        self.progress = progress
        self.clock = clock
        self.result = ShopResult(shop.platform, shop.shop_id)
        self.deadline = clock.monotonic() + self.policy.task_deadline
        self.done: set[tuple[datetime, datetime]] = set()

    def run(self, spans: Iterable[tuple[datetime, datetime]]) -> ShopResult:
        with connect(self.url) as conn, psycopg.connect(self.url, autocommit=True) as shared:
            ensure_schema(conn)
            register_shop(conn, self.shop.platform, self.shop.shop_id, name=self.shop.name,
                          conn_id=self.shop.conn_id)
            # Keyed by the API's owner: the platform, or the delivery service.
            breaker = Breaker(shared, self.client.platform, self.policy, self.clock)
            platform_clock = PlatformClock(shared, self.client.platform)
            learnt = platform_clock.offset()
            if learnt is not None:  # what another task learnt of the gateway's clock
                self.client.clock_offset = learnt
            size = {"settlements": self.client.settlement_max_window,
                    "deliveries": DELIVERY_WINDOW}.get(self.entity) or self.client.max_window
            # Oldest first, each window once (a repair's open window may also
            # be one of its rolling span's): the newest windows, where an index
            # may still be catching up, are read as late as the run allows.
            chosen = sorted({w for a, b in spans for w in windows(a, b, size)} - self.done)
            for w_start, w_end in chosen:
                self.done.add((w_start, w_end))
                self._window(conn, breaker, platform_clock, w_start, w_end)
                if self.progress:
                    self.progress(w_end, self.result)
        return self.result

    def _window(self, conn, breaker: Breaker, platform_clock: PlatformClock, w_start: datetime,
                w_end: datetime) -> tuple[int, int, str | None]:
        """Read and land one window (splitting it when that may help);
        returns (orders the platform reported, distinct orders landed, the
        error if any part of it failed)."""
        load = WindowLoad(self.shop.platform, self.shop.shop_id, self.entity, w_start,
                          w_end, self.run_id, sync_mode=self.sync_mode,
                          api_owner=self.client.platform)
        fetch = WindowFetch(self.client, self.policy, breaker, platform_clock, self.clock,
                            task_deadline=self.deadline)
        try:
            if self.clock.monotonic() >= self.deadline:
                raise PlatformError(self.shop.platform, "deadline",
                                    "task deadline reached before this window", kind="deadline")
            if self.entity == "deliveries":
                payloads, load.api_reported_count = fetch.deliveries(
                    shop_orders(conn, self.shop, w_start, w_end))
            else:
                fetched = fetch.settlements if self.entity == "settlements" else fetch.orders
                payloads, load.api_reported_count = fetched(w_start, w_end)
            load.rows, load.rejected = to_rows(self.client, payloads, self.entity)
            if load.items_landed() + len(load.rejected) < load.api_reported_count:
                load.outcome = "partial"
        except PlatformError as error:
            # Settlement windows are the platform's own bill periods: never split.
            splittable = self.entity == "orders" and error.kind in SPLITTABLE
            if splittable and w_end - w_start >= 2 * self.policy.min_window:
                middle = w_start + (w_end - w_start) / 2
                middle = middle.replace(second=0, microsecond=0)
                log.warning("%s/%s [%s, %s): %s; splitting at %s", self.shop.platform,
                            self.shop.shop_id, w_start, w_end, error, middle)
                self.result.windows_split += 1
                halves = [self._window(conn, breaker, platform_clock, a, b)
                          for a, b in ((w_start, middle), (middle, w_end))]
                reported, landed = sum(h[0] for h in halves), sum(h[1] for h in halves)
                failure = next((h[2] for h in halves if h[2]), None)
                # An open window being repaired has a ledger row of its own:
                # it is as complete as its halves now are.
                resolve_split(conn, load, reported, landed, failure)
                return reported, landed, failure
            load.outcome, load.last_error = "failed", str(error)[:1000]
            self.result.errors.append(f"[{w_start.isoformat()}, {w_end.isoformat()}): {error}")
            log.error("%s/%s window [%s, %s) failed: %s", self.shop.platform, self.shop.shop_id,
                      w_start, w_end, error)
        load.pages, load.attempts = fetch.pages, fetch.attempts
        load.fetched_at = datetime.fromtimestamp(self.client.platform_now(), UTC)
        load.calls, self.client.api_calls = self.client.api_calls, []
        inserted = land(conn, load)
        self.result.windows += 1
        self.result.windows_failed += load.outcome == "failed"
        self.result.orders_landed += load.items_landed()
        self.result.rows_inserted += inserted
        self.result.rows_quarantined += len(load.rejected)
        return load.api_reported_count or 0, load.items_landed(), load.last_error


# Deliveries are asked about per window of the shop's orders: an hour's.
DELIVERY_WINDOW = timedelta(hours=1)


def shop_orders(conn: psycopg.Connection, shop: Shop, start: datetime, end: datetime) -> list[str]:
    """The shop's orders with a version landed that was modified in [start,
    end): whose deliveries a window of entity ``deliveries`` asks about. A
    delivery changes with its order (dispatched on payment, picked up,
    delivered, cancelled with a refund), so asking after each window in
    which the order changed sees the delivery's every state but the
    rider's steps in between."""
    rows = conn.execute(
        "select distinct order_id from raw.orders where platform = %s and shop_id = %s"
        " and modified_at >= %s and modified_at < %s order by order_id",
        (shop.platform, shop.shop_id, start, end)).fetchall()
    conn.commit()
    return [row[0] for row in rows]


def extract_deliveries(shop: Shop, spans: Iterable[tuple[datetime, datetime]], *, run_id: str,
                       credentials: Credentials | None = None,
                       delivery_credentials: Credentials | None = None,
                       **kwargs) -> ShopResult | None:
    """After a shop's orders: land what its delivery service says of the
    deliveries of the orders in ``spans`` (None for a shop without one).
    ``credentials`` are the orders' (the callers pass their own arguments on):
    the service has an account of its own, ``delivery_credentials`` or the
    shop's ``delivery_conn_id`` connection."""
    if not shop.delivery:
        return None
    return extract_windows(shop, spans, run_id=run_id, entity="deliveries",
                           credentials=delivery_credentials, **kwargs)


def extract_windows(shop: Shop, spans: Iterable[tuple[datetime, datetime]], *, run_id: str,
                    credentials: Credentials | None = None, database_url: str | None = None,
                    policy: RetryPolicy | None = None, progress: Callable | None = None,
                    entity: str = "orders", clock: WallClock = SYSTEM_CLOCK,
                    sync_mode: str = "live") -> ShopResult:
    """Pull and land every order of one shop modified in each span (or, with
    ``entity="settlements"``, every settlement line booked in it).
    ``progress(window_end, result)`` is called after each window.
    ``sync_mode``: "live" (the hourly runs and their repairs) or "backfill"
    (a sync of a span of history), kept on the ledger and the raw rows."""
    return ShopExtraction(shop, run_id, credentials, database_url, policy, progress,
                          entity, clock, sync_mode).run(spans)


def extract_shop(shop: Shop, start: datetime, end: datetime, *, run_id: str, **kwargs) -> ShopResult:
    """Pull and land every order of one shop modified in [start, end)."""
    return extract_windows(shop, [(start, end)], run_id=run_id, **kwargs)


def extract_interval(shop: Shop, start: datetime, end: datetime, *, run_id: str,
                     settings: ExtractionSettings | None = None, **kwargs) -> ShopResult:
    """One scheduled interval: re-read ``lookback`` before it, and never read
    closer than ``safety_lag`` to the present (waits if a run starts early)."""
    settings = settings or ExtractionSettings.from_env()
    clock = kwargs.get("clock", SYSTEM_CLOCK)
    wait = (end + settings.safety_lag).timestamp() - clock.time()
    if wait > 0:
        log.info("waiting %.0fs so the window ends %s behind the platform clock", wait,
                 settings.safety_lag)
        clock.sleep(wait)
    result = extract_shop(shop, start - settings.lookback, end, run_id=run_id, **kwargs)
    return result.add_deliveries(extract_deliveries(shop, [(start - settings.lookback, end)],
                                                    run_id=run_id, **kwargs))
