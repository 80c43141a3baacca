"""Extraction, written once for every platform: windows, paging, retries, landing.

For a shop and an interval [start, end):

1. split the interval into windows the platform accepts (``client.max_window``);
2. for each window ask for the first page (it carries the total), then page
   **from the last page backwards** - the order Taobao and PDD document for
   modified-time searches, so an order that changes while we page moves
   towards pages already read rather than skipping one;
3. retry transient failures (5xx, timeouts, dropped connections, throttling,
   cut-off bodies) with capped exponential backoff, honouring "retry after";
4. land each window's rows with its ledger row in one transaction
   (:func:`orderhub.landing.land`); a payload without id or modified time is
   quarantined with the reason and the rest of the page still lands.

The scheduled DAG task and ``orderhub extract`` both call :func:`extract_shop`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from orderhub import jsonutil
from orderhub.config import ExtractionSettings, Shop
from orderhub.landing import RawRow, Rejected, WindowLoad, connect, ensure_schema, land, sha256
from orderhub.platforms import Credentials, PlatformClient, PlatformError, client_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    deadline: float = 15 * 60  # seconds one window may spend in retries

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


class WindowFetch:
    """Fetches every page of one window, counting pages and attempts."""

    def __init__(self, client: PlatformClient, policy: RetryPolicy, sleep: Callable = time.sleep):
        self.client = client
        self.policy = policy
        self.sleep = sleep
        self.pages = 0
        self.attempts = 0

    def _call(self, start: datetime, end: datetime, page: int, size: int):
        began = time.monotonic()
        for attempt in range(1, self.policy.max_attempts + 1):
            self.attempts += 1
            try:
                result = self.client.search_orders(start, end, page, size)
                self.pages += 1
                return result
            except PlatformError as error:
                out_of_time = time.monotonic() - began > self.policy.deadline
                if not error.retryable or attempt == self.policy.max_attempts or out_of_time:
                    raise
                delay = self.policy.delay(attempt, error)
                log.warning("%s page %s of [%s, %s): %s; retry %s in %.1fs", self.client.platform,
                            page, start, end, error, attempt, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")

    def orders(self, start: datetime, end: datetime) -> tuple[list[dict], int]:
        size = self.client.max_page_size
        first = self.client.first_page
        head = self._call(start, end, first, size)
        total = head.total if head.total is not None else len(head.orders)
        last = first + max(math.ceil(total / size), 1) - 1
        collected = []
        for page in range(last, first, -1):  # last page first, backwards
            collected.extend(self._call(start, end, page, size).orders)
        collected.extend(head.orders)
        return collected, total


def to_rows(client: PlatformClient, orders: list[dict]) -> tuple[list[RawRow], list[Rejected]]:
    rows, rejected = [], []
    for order in orders:
        text = jsonutil.canonical(order)
        try:
            order_id, modified_at = client.order_identity(order)
            if not order_id:
                raise ValueError("empty order id")
        except (KeyError, ValueError, TypeError) as exc:
            rejected.append(Rejected(text, f"{client.platform}: payload lacks a usable order id "
                                           f"or modified time ({type(exc).__name__}: {exc})"))
            continue
        rows.append(RawRow(order_id, modified_at, text, sha256(text)))
    return rows, rejected


@dataclass
class ShopResult:
    platform: str
    shop_id: str
    windows: int
    windows_failed: int
    orders_landed: int
    rows_inserted: int
    rows_quarantined: int
    errors: list[str]

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def extract_shop(shop: Shop, start: datetime, end: datetime, *, run_id: str,
                 credentials: Credentials | None = None, database_url: str | None = None,
                 policy: RetryPolicy | None = None, progress: Callable | None = None) -> ShopResult:
    """Pull and land every order of one shop modified in [start, end)."""
    credentials = credentials or Credentials.from_airflow(shop.conn_id)
    client = client_for(shop.platform, credentials)
    policy = policy or RetryPolicy()
    result = ShopResult(shop.platform, shop.shop_id, 0, 0, 0, 0, 0, [])
    with connect(database_url) as conn:
        ensure_schema(conn)
        for w_start, w_end in windows(start, end, client.max_window):
            fetch = WindowFetch(client, policy)
            load = WindowLoad(shop.platform, shop.shop_id, client.entity, w_start, w_end, run_id)
            try:
                orders, load.api_reported_count = fetch.orders(w_start, w_end)
                load.rows, load.rejected = to_rows(client, orders)
                if len({r.order_id for r in load.rows}) + len(load.rejected) < load.api_reported_count:
                    load.outcome = "partial"
            except PlatformError as error:
                load.outcome, load.last_error = "failed", str(error)
                result.errors.append(f"[{w_start.isoformat()}, {w_end.isoformat()}): {error}")
                log.error("%s/%s window [%s, %s) failed: %s", shop.platform, shop.shop_id,
                          w_start, w_end, error)
            load.pages, load.attempts = fetch.pages, fetch.attempts
            inserted = land(conn, load)
            result.windows += 1
            result.windows_failed += load.outcome == "failed"
            result.orders_landed += len({r.order_id for r in load.rows})
            result.rows_inserted += inserted
            result.rows_quarantined += len(load.rejected)
            if progress:
                progress(w_end)
    return result


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
