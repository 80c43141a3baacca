"""Extraction, written once for every platform: windows, paging, retries,
circuit breaker, adaptive splitting, landing.

For a shop and an interval [start, end):

1. split the interval into windows the platform accepts (``client.max_window``);
2. for each window read the first page (it carries the total), then page **from
   the last page backwards** - what Taobao and PDD document for modified-time
   searches - and finally read the first page again: an order that changes while
   we page moves to the front, and items only ever shift towards pages already
   read, so a pass misses nothing that was in the window when it ended. Passes
   repeat (bounded) until the total holds still;
3. retry transient failures (5xx, 504, timeouts, dropped connections, throttling,
   cut-off bodies, a gateway refusing our clock) with capped exponential
   backoff, honouring "retry after" / "ban will last N seconds";
4. a circuit breaker per platform, shared by every task through the warehouse
   (``ops.circuit_breakers``): after repeated failures calls fail fast for a
   cool-down, so one failing platform neither hangs a run nor starves others;
5. a window that still fails on timeouts/5xx, or reports more orders than the
   platform lets one search page through (``max_results``), is split in halves
   down to ``min_window``; every leaf gets its own ledger row;
6. land each window's rows with its ledger row in one transaction
   (:func:`orderhub.landing.land`). Nothing is skipped: a window that could not
   be read is recorded ``failed`` and the repair DAG re-pulls it.

The scheduled DAG tasks and ``orderhub extract`` all call :func:`extract_windows`.
"""

from __future__ import annotations

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
    sha256,
)
from orderhub.platforms import Credentials, PlatformClient, PlatformError, client_for

log = logging.getLogger(__name__)

SPLITTABLE = {"transport", "server", "malformed"}


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    window_deadline: float = 10 * 60  # seconds one window may spend in retries
    task_deadline: float = 25 * 60  # seconds one shop's extraction may take in all
    min_window: timedelta = timedelta(minutes=5)
    max_passes: int = 4
    breaker_threshold: int = 10  # consecutive failed calls (more than one window's retries)
    breaker_cooldown: float = 30.0
    page_size: int = 100  # capped by each platform's maximum

    @classmethod
    def from_env(cls) -> RetryPolicy:
        return cls(
            page_size=int(os.environ.get("ORDERHUB_PAGE_SIZE", 100)),
            breaker_cooldown=float(os.environ.get("ORDERHUB_BREAKER_COOLDOWN_SECONDS", 30)),
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
    that every task (and every worker) sees the same one."""

    def __init__(self, url: str, platform: str, policy: RetryPolicy):
        self.conn = psycopg.connect(url, autocommit=True)
        self.platform = platform
        self.policy = policy

    def close(self) -> None:
        self.conn.close()

    def check(self) -> None:
        row = self.conn.execute(
            "select opened_until > now(), last_error from ops.circuit_breakers where platform = %s",
            (self.platform,)).fetchone()
        if row and row[0]:
            raise PlatformError(self.platform, "breaker-open",
                                f"circuit open after repeated failures ({row[1]})", kind="breaker")

    def record(self, error: PlatformError | None) -> None:
        if error is None:
            self.conn.execute(
                "update ops.circuit_breakers set consecutive_failures = 0 where platform = %s"
                " and consecutive_failures > 0", (self.platform,))
            return
        self.conn.execute(
            """
            insert into ops.circuit_breakers as b (platform, consecutive_failures, last_error)
            values (%(p)s, 1, %(e)s)
            on conflict (platform) do update set
                consecutive_failures = b.consecutive_failures + 1,
                last_error = excluded.last_error,
                opened_until = case when b.consecutive_failures + 1 >= %(n)s
                                    then now() + make_interval(secs => %(c)s)
                                    else b.opened_until end,
                times_opened = b.times_opened
                    + case when b.consecutive_failures + 1 = %(n)s then 1 else 0 end
            """,
            {"p": self.platform, "e": str(error)[:500], "n": self.policy.breaker_threshold,
             "c": self.policy.breaker_cooldown})


class WindowFetch:
    """Fetches every page of one window, counting pages and attempts."""

    def __init__(self, client: PlatformClient, policy: RetryPolicy, breaker: Breaker | None = None,
                 sleep: Callable = time.sleep):
        self.client = client
        self.policy = policy
        self.breaker = breaker
        self.sleep = sleep
        self.pages = 0
        self.attempts = 0

    def _call(self, request: Callable, what: str):
        """One API call (``request()``) with retries, backoff and the breaker."""
        began = time.monotonic()
        for attempt in range(1, self.policy.max_attempts + 1):
            if self.breaker:
                self.breaker.check()
            self.attempts += 1
            try:
                result = request()
            except PlatformError as error:
                if self.breaker and error.kind != "api":
                    self.breaker.record(error)
                out_of_time = time.monotonic() - began > self.policy.window_deadline
                if not error.retryable or attempt == self.policy.max_attempts or out_of_time:
                    raise
                delay = self.policy.delay(attempt, error)
                if self.client.api_calls:
                    self.client.api_calls[-1].backoff_seconds = delay
                log.warning("%s %s: %s; retry %s in %.1fs", self.client.platform, what, error,
                            attempt, delay)
                self.sleep(delay)
                continue
            if self.breaker:
                self.breaker.record(None)
            self.pages += 1
            return result
        raise AssertionError("unreachable")

    def _page(self, start: datetime, end: datetime, page: int, size: int):
        return self._call(lambda: self.client.search_orders(start, end, page, size),
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
            if self.client.max_results is not None and total > self.client.max_results:
                raise TooManyResults(total)
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

    def settlements(self, start: datetime, end: datetime) -> tuple[list[dict], int]:
        """Every settlement line booked in the window. A booked line never
        changes, so one forward pass (pages, a cursor or a file) is enough;
        the count is the platform's total where it gives one."""
        lines: list[dict] = []
        cursor, total = None, None
        while True:
            page = self._call(lambda c=cursor: self.client.search_settlements(start, end, c),
                              f"settlements [{start}, {end}) at {cursor or 'start'}")
            lines.extend(page.lines)
            total = page.total if page.total is not None else total
            if page.next_cursor is None:
                return lines, total if total is not None else len(lines)
            cursor = page.next_cursor


class TooManyResults(Exception):
    def __init__(self, total: int):
        super().__init__(f"{total} results: more than one search can page through")
        self.total = total


def to_rows(client: PlatformClient, payloads: list[dict],
            entity: str = "orders") -> tuple[list[RawRow], list[Rejected]]:
    rows, rejected = [], []
    for payload in payloads:
        text = jsonutil.canonical(payload)
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

    def as_dict(self) -> dict:
        return self.__dict__.copy()


class ShopExtraction:
    """One shop's extraction run of one entity (orders or settlements): a
    client, a breaker, a warehouse connection."""

    def __init__(self, shop: Shop, run_id: str, credentials: Credentials | None,
                 url: str | None, policy: RetryPolicy | None, progress: Callable | None,
                 entity: str = "orders"):
        self.shop = shop
        self.entity = entity
        self.run_id = run_id
        self.client = client_for(shop.platform, credentials or Credentials.from_airflow(shop.conn_id))
        self.policy = policy or RetryPolicy.from_env()
        self.url = url or database_url()
        self.progress = progress
        self.result = ShopResult(shop.platform, shop.shop_id)
        self.began = time.monotonic()
        self.done: set[tuple[datetime, datetime]] = set()

    def run(self, spans: Iterable[tuple[datetime, datetime]]) -> ShopResult:
        with connect(self.url) as conn:
            ensure_schema(conn)
            register_shop(conn, self.shop.platform, self.shop.shop_id, name=self.shop.name,
                          conn_id=self.shop.conn_id)
            breaker = Breaker(self.url, self.shop.platform, self.policy)
            try:
                for span_start, span_end in spans:
                    size = (self.client.settlement_max_window if self.entity == "settlements"
                            else self.client.max_window)
                    for w_start, w_end in windows(span_start, span_end, size):
                        if (w_start, w_end) in self.done:
                            continue  # a repair's open window inside its rolling span
                        self.done.add((w_start, w_end))
                        self._window(conn, breaker, w_start, w_end)
                        if self.progress:
                            self.progress(w_end)
            finally:
                breaker.close()
        return self.result

    def _window(self, conn, breaker: Breaker, w_start: datetime, w_end: datetime) -> None:
        load = WindowLoad(self.shop.platform, self.shop.shop_id, self.entity, w_start,
                          w_end, self.run_id)
        fetch = WindowFetch(self.client, self.policy, breaker)
        try:
            if time.monotonic() - self.began > self.policy.task_deadline:
                raise PlatformError(self.shop.platform, "deadline",
                                    "task deadline reached before this window", kind="deadline")
            fetched = fetch.settlements if self.entity == "settlements" else fetch.orders
            payloads, load.api_reported_count = fetched(w_start, w_end)
            load.rows, load.rejected = to_rows(self.client, payloads, self.entity)
            if load.items_landed() + len(load.rejected) < load.api_reported_count:
                load.outcome = "partial"
        except (PlatformError, TooManyResults) as error:
            # Settlement windows are the platform's own bill periods: never split.
            splittable = self.entity == "orders" and (
                isinstance(error, TooManyResults) or error.kind in SPLITTABLE)
            if splittable and w_end - w_start >= 2 * self.policy.min_window:
                middle = w_start + (w_end - w_start) / 2
                middle = middle.replace(second=0, microsecond=0)
                log.warning("%s/%s [%s, %s): %s; splitting at %s", self.shop.platform,
                            self.shop.shop_id, w_start, w_end, error, middle)
                self.result.windows_split += 1
                self._window(conn, breaker, w_start, middle)
                self._window(conn, breaker, middle, w_end)
                return
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


def extract_windows(shop: Shop, spans: Iterable[tuple[datetime, datetime]], *, run_id: str,
                    credentials: Credentials | None = None, database_url: str | None = None,
                    policy: RetryPolicy | None = None, progress: Callable | None = None,
                    entity: str = "orders") -> ShopResult:
    """Pull and land every order of one shop modified in each span (or, with
    ``entity="settlements"``, every settlement line booked in it)."""
    return ShopExtraction(shop, run_id, credentials, database_url, policy, progress,
                          entity).run(spans)


def extract_shop(shop: Shop, start: datetime, end: datetime, *, run_id: str, **kwargs) -> ShopResult:
    """Pull and land every order of one shop modified in [start, end)."""
    return extract_windows(shop, [(start, end)], run_id=run_id, **kwargs)


def extract_interval(shop: Shop, start: datetime, end: datetime, *, run_id: str,
                     settings: ExtractionSettings | None = None, **kwargs) -> ShopResult:
    """One scheduled interval: re-read ``lookback`` before it, and never read
    closer than ``safety_lag`` to the present (waits if a run starts early)."""
    settings = settings or ExtractionSettings.from_env()
    wait = (end + settings.safety_lag - datetime.now(UTC)).total_seconds()
    if wait > 0:
        log.info("waiting %.0fs so the window ends %s behind the platform clock", wait,
                 settings.safety_lag)
        time.sleep(wait)
    return extract_shop(shop, start - settings.lookback, end, run_id=run_id, **kwargs)
