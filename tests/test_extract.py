"""The shared extraction machinery, against a scripted platform client:
adaptive splitting, the circuit breaker, backward paging, the
shared clock, time budgets (on a virtual wall clock)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import psycopg
import pytest

from orderhub.config import Shop, parse_time
from orderhub.extract import RetryPolicy, extract_shop
from orderhub.platforms import Credentials, Page, PlatformError
from orderhub.platforms import base as platform_base
from orderhub.platforms.pdd import PddClient
from tests.chaos_net import VirtualClock

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

    def __init__(self, fail_if=lambda start, end: False):
        super().__init__(Credentials("http://unused", "k", "s", "t"))
        self.fail_if = fail_if
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


def test_the_breaker_opens_and_later_windows_fail_fast(clean_warehouse, use):
    """Out of patience (none here), an open breaker fails the rest fast."""
    client = use(ScriptedClient(fail_if=lambda s, e: True))
    policy = RetryPolicy(max_attempts=2, base_delay=0.01, breaker_threshold=3,
                         breaker_cooldown=60, breaker_patience=0,
                         min_window=timedelta(minutes=30))
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


# -- what a gateway's clock, throttling and incidents do to the breaker ------------

class SkewedGateway(PddClient):
    """PDD's increment API behind a gateway whose clock is ``skew`` seconds
    off ours: a request stamped more than 10 minutes off is refused with
    PDD's timestamp error; every answer's Date header shows the gateway's time."""

    def __init__(self, skew: float):
        super().__init__(Credentials("http://unused", "k", "s", "t"))
        self.skew = skew
        self.refusals = 0

    def send(self, request):
        gateway_now = self.clock() + self.skew
        self.server_clock_offset = gateway_now - self.clock()  # what the Date header tells
        if abs(int(request.data["timestamp"]) - gateway_now) > 600:
            self.refusals += 1
            return json.dumps({"error_response": {"error_code": 10012,
                                                  "error_msg": "timestamp已过期"}})
        return json.dumps({"order_sn_increment_get_response": {
            "order_sn_list": [{"order_sn": "261111-1", "updated_at": "2026-11-11 00:10:05"}],
            "total_count": 1, "has_next": False}})


def breaker_row(url):
    with psycopg.connect(url) as conn:
        return conn.execute("select consecutive_failures, times_opened,"
                            " opened_until > now() from ops.circuit_breakers").fetchone()


def test_a_clock_refusal_resyncs_at_once_counts_for_no_breaker_and_is_shared(clean_warehouse,
                                                                              use):
    """Issue 15's class: refusals for our clock opened the breaker before any
    client learnt the gateway's clock, and every new client started from ours."""
    strict = RetryPolicy(max_attempts=1, breaker_threshold=1, breaker_cooldown=600)
    first = use(SkewedGateway(skew=900))
    result = extract_shop(SHOP, T0, T0 + timedelta(minutes=30), run_id="t",
                          credentials=Credentials("u", "k", "s", "t"), policy=strict)
    assert result.windows_failed == 0 and result.orders_landed == 1
    assert first.refusals == 1  # once, then stamped with the gateway's clock
    assert breaker_row(clean_warehouse) is None  # a refusal is no gateway failure
    with psycopg.connect(clean_warehouse) as conn:
        offset, = conn.execute("select offset_seconds from ops.platform_clocks"
                               " where platform = 'pdd'").fetchone()
    assert abs(offset - 900) < 5

    second = use(SkewedGateway(skew=900))  # a new task, a new client
    extract_shop(SHOP, T0 + timedelta(hours=1), T0 + timedelta(hours=2), run_id="t2",
                 credentials=Credentials("u", "k", "s", "t"), policy=strict)
    assert second.refusals == 0  # it started from what the first learnt

    # ... also while the breaker is open: it fails fast, but knows the clock
    with psycopg.connect(clean_warehouse) as conn:
        conn.execute("insert into ops.circuit_breakers (platform, consecutive_failures,"
                     " opened_until) values ('pdd', 10, now() + interval '1 hour')")
    third = use(SkewedGateway(skew=900))
    blocked = extract_shop(SHOP, T0, T0 + timedelta(minutes=30), run_id="t3",
                           credentials=Credentials("u", "k", "s", "t"),
                           policy=RetryPolicy(breaker_patience=0))
    assert blocked.windows_failed == 1 and "breaker-open" in blocked.errors[0]
    assert abs(third.clock_offset - 900) < 5


def test_throttling_never_opens_the_breaker(clean_warehouse, use):
    throttled = iter(range(6))

    def fail_if(start, end):
        if next(throttled, None) is not None:
            raise PlatformError("pdd", "52101", "当前接口已被限流", retryable=True,
                                kind="throttled", retry_after=0.01)
        return False

    use(ScriptedClient(fail_if=fail_if))
    result = extract_shop(SHOP, T0, T0 + timedelta(minutes=30), run_id="t",
                          credentials=Credentials("u", "k", "s", "t"),
                          policy=RetryPolicy(max_attempts=10, breaker_threshold=2))
    assert result.windows_failed == 0 and result.orders_landed == 20
    assert breaker_row(clean_warehouse) is None


def test_an_incident_shorter_than_the_patience_is_waited_out(clean_warehouse, use):
    """Two minutes of 504s: the retries run out, the breaker opens, the task
    waits for it (virtual time) and probes until the gateway is back."""
    clock = VirtualClock()
    back_at = clock.time() + 120

    def fail_if(start, end):
        if clock.time() < back_at:
            raise PlatformError("pdd", "http-504", "Gateway Time-out", retryable=True,
                                kind="server")
        return False

    use(ScriptedClient(fail_if=fail_if))
    policy = RetryPolicy(max_attempts=3, breaker_threshold=3, breaker_cooldown=30,
                         breaker_patience=300, min_window=timedelta(minutes=30))
    result = extract_shop(SHOP, T0, T0 + timedelta(hours=1), run_id="t",
                          credentials=Credentials("u", "k", "s", "t"), policy=policy, clock=clock)
    assert result.windows_failed == 0 and result.orders_landed == 40
    consecutive, opened, still_open = breaker_row(clean_warehouse)
    assert opened >= 1 and consecutive == 0 and not still_open
    assert back_at <= clock.time() < back_at + 60


def test_retries_never_outlast_the_task_budget_and_every_window_gets_a_row(clean_warehouse, use):
    """A gateway that never recovers: the task ends by itself at its budget
    (before Airflow's execution_timeout would kill it mid-window), and every
    window of its span has a failed ledger row for the repair to find."""
    clock = VirtualClock()
    began = clock.time()
    use(ScriptedClient(fail_if=lambda s, e: True))
    policy = RetryPolicy(max_attempts=100, breaker_threshold=1000, task_deadline=100,
                         window_deadline=60, min_window=timedelta(minutes=30))
    result = extract_shop(SHOP, T0, T0 + timedelta(hours=2), run_id="t",
                          credentials=Credentials("u", "k", "s", "t"), policy=policy, clock=clock)
    rows = ledger(clean_warehouse)
    assert [(a, b) for a, b, *_ in rows] == [(T0 + timedelta(minutes=30 * i),
                                              T0 + timedelta(minutes=30 * (i + 1)))
                                             for i in range(4)]
    assert {outcome for _, _, outcome, _ in rows} == {"failed"}
    assert clock.time() - began <= 100
    assert any("deadline" in error for error in result.errors)


def test_an_open_window_read_in_halves_is_no_longer_open(clean_warehouse, use):
    """A repair re-reads an open window, the whole window fails again but its
    halves do not: the window's own ledger row turns ok with its halves'
    counts (it used to stay failed, so the ledger claimed orders missing
    that were all in raw)."""
    window = (T0, T0 + timedelta(minutes=30))
    creds = Credentials("u", "k", "s", "t")
    use(ScriptedClient(fail_if=lambda s, e: True))
    extract_shop(SHOP, *window, run_id="first", credentials=creds,
                 policy=RetryPolicy(max_attempts=1, min_window=timedelta(minutes=30)))
    assert [(a, b, outcome) for a, b, outcome, _ in ledger(clean_warehouse)] == [
        (*window, "failed")]
    use(ScriptedClient(fail_if=lambda s, e: e - s > timedelta(minutes=15)))
    result = extract_shop(SHOP, *window, run_id="repair", credentials=creds, policy=FAST)
    assert result.windows_failed == 0 and result.windows_split == 1
    rows = {(a, b): (outcome, landed) for a, b, outcome, landed in ledger(clean_warehouse)}
    assert rows[window] == ("ok", 20)
    assert {v[0] for v in rows.values()} == {"ok"} and len(rows) == 3


def test_in_a_long_outage_only_the_first_caller_waits(clean_warehouse, use):
    """The patience belongs to the outage: once the breaker has been open
    longer than it, every task fails fast instead of each waiting in turn."""
    clock = VirtualClock()
    use(ScriptedClient(fail_if=lambda s, e: True))
    policy = RetryPolicy(max_attempts=3, base_delay=0.5, breaker_threshold=3,
                         breaker_cooldown=30, breaker_patience=120,
                         min_window=timedelta(minutes=30))
    creds = Credentials("u", "k", "s", "t")
    began = clock.time()
    first = extract_shop(SHOP, T0, T0 + timedelta(hours=1), run_id="t1", credentials=creds,
                         policy=policy, clock=clock)
    waited = clock.time() - began
    assert first.windows_failed == 2 and 90 <= waited <= 150
    began = clock.time()
    second = extract_shop(Shop("pdd", "other", "unused"), T0, T0 + timedelta(hours=1),
                          run_id="t2", credentials=creds, policy=policy, clock=clock)
    assert second.windows_failed == 2 and clock.time() - began < 30
    assert all("breaker-open" in error for error in second.errors)


def test_after_a_long_outage_one_failed_probe_does_not_fail_the_repair(clean_warehouse, use):
    """The outage outlasted the patience, so callers fail fast while the
    breaker is open. The gateway is back, but flaky: the first probe after the
    cool-down fails. Half-open, the breaker lets the next probes decide
    (HALF_OPEN_FAILURES in a row would open it again), so the repair reads
    every window; judged by that one probe, it would fail them all."""
    clock = VirtualClock()
    back_at = clock.time() + 200
    calls_after = []

    def fail_if(start, end):
        if clock.time() < back_at:
            return True
        calls_after.append((start, end))
        return len(calls_after) % 4 == 1  # the first answer after the outage fails, then 1 in 4

    use(ScriptedClient(fail_if=fail_if))
    policy = RetryPolicy(max_attempts=3, base_delay=0.5, breaker_threshold=3,
                         breaker_cooldown=30, breaker_patience=60,
                         min_window=timedelta(minutes=30))
    creds = Credentials("u", "k", "s", "t")
    first = extract_shop(SHOP, T0, T0 + timedelta(hours=1), run_id="t1", credentials=creds,
                         policy=policy, clock=clock)
    assert first.windows_failed == 2
    clock.sleep(max(back_at - clock.time(), 0) + 31)  # the gateway is back, the cool-down over
    repair = extract_shop(SHOP, T0, T0 + timedelta(hours=1), run_id="t2", credentials=creds,
                          policy=policy, clock=clock)
    assert repair.windows_failed == 0 and repair.orders_landed == 40
    consecutive, _, still_open = breaker_row(clean_warehouse)
    assert consecutive == 0 and not still_open
