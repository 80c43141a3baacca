"""The whole path through the real DAGs: sandbox -> Airflow -> raw -> dbt -> GX.

Compares fct_orders with the sandbox's truth (computed from the world model,
not from the pipeline's mapping) on every standard column, then re-runs the
same window and demands identical raw counts and a byte-identical mart.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from decimal import Decimal

import psycopg
import pytest

from orderhub.config import parse_time
from orderhub.runner import SandboxTarget, run

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

START, END = parse_time("2026-11-11T00:00"), parse_time("2026-11-11T02:00")
STANDARD = ["platform", "shop_id", "order_id", "order_status_code", "refund_status_code",
            "created_at", "paid_at", "shipped_at", "completed_at", "updated_at", "goods_amount",
            "discount_amount", "shipping_fee", "paid_amount", "currency"]


def fct_orders(url) -> list[dict]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(f"select {', '.join(STANDARD)} from marts.fct_orders"
                           " order by platform, shop_id, order_id")
        return [dict(zip(STANDARD, row, strict=True)) for row in cur.fetchall()]


def mart_digest(url, table) -> str:
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"select t::text from marts.{table} t order by 1").fetchall()
    return hashlib.sha256("\n".join(r[0] for r in rows).encode()).hexdigest()


def raw_counts(url) -> dict:
    with psycopg.connect(url) as conn:
        return {p: conn.execute(f"select count(*) from raw.{p}_orders").fetchone()[0]
                for p in ("tmall", "jd", "pdd", "douyin")}


@pytest.fixture(scope="module")
def first_run(warehouse_url, sandbox, tmp_path_factory):
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        for schema in ("raw", "ops", "seeds", "staging", "intermediate", "marts"):
            conn.execute(f"drop schema if exists {schema} cascade")
    target = SandboxTarget(sandbox.url, sandbox.sandbox.spec.seed)
    run(START, END, sandbox=target)
    # The truth, through the CLI exactly as a user would ask for it.
    out = tmp_path_factory.mktemp("truth") / "truth.jsonl"
    from tests.conftest import TEST_SCALE, TEST_SEED

    subprocess.run([sys.executable, "-m", "orderhub.cli", "sandbox", "truth", "--seed",
                    str(TEST_SEED), "--scale", str(TEST_SCALE), "--start", START.isoformat(),
                    "--end", END.isoformat(), "--out", str(out)], check=True)
    truth = [json.loads(line) for line in out.read_text().splitlines()]
    return target, truth


def normalise_truth(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if key.endswith("_at") and value is not None:
            value = parse_time(value)
        elif key.endswith(("_amount", "_fee")):
            value = Decimal(value)
        out[key] = value
    return out


def test_fct_orders_equals_the_truth_on_every_standard_column(first_run, warehouse_url):
    _, truth = first_run
    assert truth and set(truth[0]) == set(STANDARD)
    expected = {(r["platform"], r["shop_id"], r["order_id"]): normalise_truth(r) for r in truth}
    actual = {(r["platform"], r["shop_id"], r["order_id"]): r for r in fct_orders(warehouse_url)}
    assert set(actual) == set(expected), (
        f"missing {len(set(expected) - set(actual))}, unexpected {len(set(actual) - set(expected))}")
    differences = [(key, col, actual[key][col], expected[key][col])
                   for key in expected for col in STANDARD if actual[key][col] != expected[key][col]]
    assert differences == [], differences[:10]
    assert {r["platform"] for r in truth} == {"tmall", "jd", "pdd", "douyin"}


def test_running_the_window_again_changes_nothing(first_run, warehouse_url):
    target, _ = first_run
    before = (raw_counts(warehouse_url), mart_digest(warehouse_url, "fct_orders"),
              mart_digest(warehouse_url, "fct_order_items"))
    run(START, END, sandbox=target)
    after = (raw_counts(warehouse_url), mart_digest(warehouse_url, "fct_orders"),
             mart_digest(warehouse_url, "fct_order_items"))
    assert after == before


def test_ledger_has_every_window_ok(first_run, warehouse_url):
    with psycopg.connect(warehouse_url) as conn:
        outcomes = conn.execute("select outcome, count(*) from ops.extraction_windows group by 1").fetchall()
        short = conn.execute("select count(*) from ops.extraction_windows"
                             " where orders_landed <> api_reported_count").fetchone()[0]
    assert dict(outcomes).keys() == {"ok"} and short == 0


def test_order_lines_sum_to_the_goods_amount(first_run, warehouse_url):
    with psycopg.connect(warehouse_url) as conn:
        mismatches = conn.execute("""
            select o.order_key from marts.fct_orders o
            join marts.fct_order_items i using (order_key)
            group by o.order_key, o.goods_amount
            having sum(i.line_amount) <> o.goods_amount""").fetchall()
    assert mismatches == []


def test_gx_checkpoint_fails_on_a_broken_mart(first_run, warehouse_url):
    from expectations.checkpoints import run_check

    assert run_check("fct_orders", warehouse_url).success
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("create table marts.fct_orders_backup as table marts.fct_orders")
        conn.execute("update marts.fct_orders set order_status_code = 99, paid_amount = paid_amount + 1"
                     " where order_key = (select min(order_key) from marts.fct_orders)")
        try:
            outcome = run_check("fct_orders", warehouse_url)
        finally:
            conn.execute("truncate marts.fct_orders")
            conn.execute("insert into marts.fct_orders select * from marts.fct_orders_backup")
            conn.execute("drop table marts.fct_orders_backup")
    assert not outcome.success
    failed = {f["expectation"] for f in outcome.critical_failures}
    assert failed == {"expect_column_values_to_be_in_set", "unexpected_rows_expectation"}
