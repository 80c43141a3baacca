"""The sandbox's settlement world on its own: injections land where they
should, untouched orders settle exactly what the books expect, and the
clients refuse what the platforms refuse."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest

from orderhub.config import parse_time
from orderhub.platforms import Credentials, PlatformError, client_for
from orderhub_tools.sandbox.settlement import (
    INJECTED,
    Settlements,
    categorize,
    local_date,
    reconciliation_truth,
)
from orderhub_tools.sandbox.world import World

SHOPS = [("tmall", "t"), ("jd", "10001"), ("pdd", "p"), ("douyin", "40001")]
START, END = parse_time("2026-11-05T00:00"), parse_time("2026-11-09T00:00")


@pytest.fixture(scope="module")
def world():
    return World(5, SHOPS, 0.05)


def judged(world):
    s = Settlements(world)
    start, end = int(START.timestamp()), int(END.timestamp())
    for platform, shop in SHOPS:
        for settlement in s.candidates(platform, shop, start, end):
            yield settlement, categorize(settlement, start, end)


def test_amount_injections_are_what_the_truth_finds(world):
    """An order due well inside the range shows exactly the difference injected."""
    seen = Counter()
    for s, category in judged(world):
        if s.injected in ("rounding", "unbooked_fee", "unbooked_subsidy", "unexplained", "unsettled") \
                and s.due is not None and local_date(int(START.timestamp())) <= s.due \
                < local_date(int(END.timestamp())) - timedelta(days=1):
            assert category == s.injected, (s, category)
            seen[category] += 1
    assert set(seen) == {"rounding", "unbooked_fee", "unbooked_subsidy", "unexplained", "unsettled"}


def test_untouched_orders_settle_what_the_books_expect(world):
    n = 0
    for s, category in judged(world):
        if s.injected is None and not s.ghost and s.refunded_at is None and len(s.lines) == 1 \
                and category in ("matched", "cross_day"):
            assert s.lines[0].settle_amount == s.books_expected
            n += 1
    assert n > 100


def test_the_truth_covers_every_kind(world):
    kinds = Counter(r["category"] for r in reconciliation_truth(
        world, int(START.timestamp()), int(END.timestamp())))
    assert set(kinds) == {*INJECTED, "lost_order", "prior_period"}, kinds


def test_pdd_bills_are_whole_days():
    client = client_for("pdd", Credentials("http://127.0.0.1:1/pdd/api/router", "k", "s", "t"))
    with pytest.raises(PlatformError, match="one whole day"):
        client.settlement_request(START, START + timedelta(hours=6), None)
    request = client.settlement_request(START, START + timedelta(days=1), None)
    assert request.data["bill_date"] == "2026-11-05"


def test_hourly_builds_leave_the_reconciliation_to_settlements_daily(warehouse_url):
    """Once the reconciliation marts all exist, the hourly DAGs' dbt build
    excludes them (their cost follows settlement history); settlements_daily
    always builds them. One gone missing (a view dropped with cascade when an
    upstream model became a table) is rebuilt by the next hourly run."""
    import psycopg

    from orderhub.orchestration import RECONCILIATION_RELATIONS, build_exclusions
    from tests.truth import reset

    reset(warehouse_url)
    assert build_exclusions(warehouse_url, reconciliation=False) == []
    with psycopg.connect(warehouse_url) as conn:
        conn.execute("create schema marts")
        for relation in RECONCILIATION_RELATIONS:
            conn.execute(f"create table {relation} (x int)")
    assert build_exclusions(warehouse_url, reconciliation=False) == ["tag:reconciliation"]
    assert build_exclusions(warehouse_url, reconciliation=True) == []
    with psycopg.connect(warehouse_url) as conn:
        conn.execute("drop table marts.fct_money_events")
    assert build_exclusions(warehouse_url, reconciliation=False) == []
    reset(warehouse_url)


def test_the_reconciliation_relations_are_what_dbt_tags_reconciliation():
    """build_exclusions checks these relations; dbt decides what the tag
    selects. A model tagged reconciliation and missing from the list (or the
    reverse) fails here."""
    from orderhub.orchestration import RECONCILIATION_RELATIONS
    from orderhub.transform import dbt

    listed = dbt("ls", "--select", "tag:reconciliation", "--resource-type", "model",
                 "--output", "json", "--output-keys", "name config", "--quiet").stdout
    tagged = set()
    for line in listed.splitlines():
        if line.startswith("{"):
            node = json.loads(line)
            tagged.add(f"{node['config']['schema']}.{node['name']}")
    assert tagged == set(RECONCILIATION_RELATIONS)


def test_the_gate_tests_are_what_dbt_tags_gate():
    """build_marts reads these tests' results to decide whether the gates
    run again on their own; a gate missing from the list would never fail a
    DAG run."""
    from orderhub.orchestration import GATE_TESTS
    from orderhub.transform import dbt

    listed = dbt("ls", "--select", "tag:gate", "--output", "name", "--quiet").stdout.split()
    assert sorted(listed) == sorted(GATE_TESTS)
