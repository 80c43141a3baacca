"""The shared extraction machinery, against a scripted platform client:
adaptive splitting, the page cap, the circuit breaker, backward paging."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
import pytest

from orderhub.config import Shop, parse_time
from orderhub.extract import RetryPolicy, extract_shop
from orderhub.platforms import Credentials, Page, PlatformError
from orderhub.platforms import base as platform_base
from orderhub.platforms.pdd import PddClient

pytestmark = pytest.mark.integration
T0 = parse_time("2026-11-11T00:00")
SHOP = Shop("pdd", "scripted", "unused")
FAST = RetryPolicy(max_attempts=2, base_delay=0.01, breaker_threshold=10, breaker_cooldown=60,
                   min_window=timedelta(minutes=5))


class ScriptedClient(PddClient):
    """Orders every 90 s; ``fail_if`` decides which searches time out."""

    platform = "pdd"
    max_window = timedelta(minutes=30)
    first_page = 1

    def __init__(self, fail_if=lambda start, end: False, max_results=None):
        super().__init__(Credentials("http://unused", "k", "s", "t"))
        self.fail_if = fail_if
        self.max_results = max_results
        self.calls: list[tuple[datetime, datetime, int]] = []

    def search_orders(self, start, end, page, page_size):
        self.calls.append((start, end, page))
        if self.fail_if(start, end):
            raise PlatformError("pdd", "timeout", "read timed out", retryable=True, kind="transport")
        times = [T0 + timedelta(seconds=90 * i + 5) for i in range(80)]
        hits = sorted((t for t in times if start <= t < end), reverse=True)
        chunk = hits[(page - 1) * page_size: page * page_size]
        return Page(orders=[{"order_sn": f"o{int(t.timestamp())}",
                             "updated_at": platform_base.local_time(t)} for t in chunk],
                    total=len(hits))


@pytest.fixture()
def use(monkeypatch):
    def install(client):
        monkeypatch.setattr("orderhub.extract.client_for", lambda platform, creds: client)
        return client
    return install


def ledger(url):
    with psycopg.connect(url) as conn:
        return conn.execute("select window_start, window_end, outcome, orders_landed"
                            " from ops.extraction_windows order by 1").fetchall()


def test_pages_are_read_last_first_then_the_first_again(clean_warehouse, use):
    client = use(ScriptedClient())
    result = extract_shop(SHOP, T0, T0 + timedelta(minutes=30), run_id="t",
                          credentials=Credentials("u", "k", "s", "t"),
                          policy=RetryPolicy(page_size=7, breaker_cooldown=60))
    pages = [page for _, _, page in client.calls]
    assert pages == [1, 3, 2, 1]  # 20 orders in pages of 7
    assert result.orders_landed == 20 and result.windows_failed == 0


def test_a_window_that_times_out_is_split_until_it_does_not(clean_warehouse, use):
    use(ScriptedClient(fail_if=lambda s, e: e - s > timedelta(minutes=10)))
    result = extract_shop(SHOP, T0, T0 + timedelta(minutes=30), run_id="t",
                          credentials=Credentials("u", "k", "s", "t"), policy=FAST)
    rows = ledger(clean_warehouse)
    assert result.windows_failed == 0 and result.windows_split >= 2
    assert all(outcome == "ok" and end - start <= timedelta(minutes=10)
               for start, end, outcome, _ in rows)
    assert rows[0][0] == T0 and rows[-1][1] == T0 + timedelta(minutes=30)
    assert all(a[1] == b[0] for a, b in zip(rows, rows[1:], strict=False))  # no gap, no overlap
    assert sum(n for *_, n in rows) == 20


def test_too_many_results_split_the_window(clean_warehouse, use):
    use(ScriptedClient(max_results=8))
    result = extract_shop(SHOP, T0, T0 + timedelta(minutes=30), run_id="t",
                          credentials=Credentials("u", "k", "s", "t"), policy=FAST)
    assert result.windows_failed == 0 and result.orders_landed == 20
    assert all(n <= 8 for *_, n in ledger(clean_warehouse))


def test_the_breaker_opens_and_later_windows_fail_fast(clean_warehouse, use):
    client = use(ScriptedClient(fail_if=lambda s, e: True))
    policy = RetryPolicy(max_attempts=2, base_delay=0.01, breaker_threshold=3,
                         breaker_cooldown=60, min_window=timedelta(minutes=30))
    result = extract_shop(SHOP, T0, T0 + timedelta(hours=2), run_id="t",
                          credentials=Credentials("u", "k", "s", "t"), policy=policy)
    assert result.windows == 4 and result.windows_failed == 4
    assert len(client.calls) == 3  # the third failure opened it; nothing was called after
    assert "breaker-open" in result.errors[-1]
    assert {outcome for _, _, outcome, _ in ledger(clean_warehouse)} == {"failed"}
    with psycopg.connect(clean_warehouse) as conn:
        platform, opened = conn.execute("select platform, opened_until > now()"
                                        " from ops.circuit_breakers").fetchone()
    assert platform == "pdd" and opened
