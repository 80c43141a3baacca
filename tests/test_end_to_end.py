"""The whole path through the real DAGs: sandbox -> Airflow -> raw -> dbt -> GX,
with the push path first (issue 17).

The window's first hour is pushed live first, with every push fault on and
three crashes (kill -9 of the consumer mid-batch, kill -9 of the intake,
a restart of NATS): sandbox webhooks (Douyin) and long connections (TMC,
PDD) -> ``orderhub intake`` -> NATS JetStream -> ``orderhub stream`` -> raw. Then ``orderhub run`` drives the
hourly and repair DAGs over the window as the net. Compares fct_orders and
marts.live_orders with the sandbox's truth (computed from the world model,
not from the pipeline's mapping) on every standard column, then runs the same
window again and demands identical raw counts and byte-identical marts.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, date
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from orderhub.config import dbt_project_dir, load_shops, parse_time, pii_salt
from orderhub.mapping import read_seed
from orderhub.platforms import clients
from orderhub.push import broker
from orderhub_tools.live import PushStack, live_orders, run_live
from orderhub_tools.runner import INTERVAL, SandboxTarget, airflow_home, run
from tests.conftest import TEST_SCALE, TEST_SEED
from tests.truth import STANDARD, cli_truth, differences, fct_orders, mart_digest, raw_counts, reset

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

# The platforms that push (the registry says how), and those of them that POST webhooks.
PUSHING = {name for name, cls in clients().items() if cls.push_transport}
WEBHOOKS = {name for name, cls in clients().items() if cls.push_transport == "webhook"}

START, END = parse_time("2026-11-11T00:00"), parse_time("2026-11-11T02:00")


@pytest.fixture(scope="module")
def served_sandbox():
    """`orderhub sandbox serve` in its own process, as a user starts it."""
    state = SandboxTarget.state_file()
    saved = state.read_text() if state.exists() else None
    state.unlink(missing_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "orderhub_tools.cli", "sandbox", "serve", "--seed", str(TEST_SEED),
         "--scale", str(TEST_SCALE)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = server.stdout.readline()
        assert "listening on" in line, line
        target = SandboxTarget.discover()
        assert target is not None and target.seed == TEST_SEED
        yield target
    finally:
        server.terminate()
        server.wait(timeout=30)
        if saved is None:
            state.unlink(missing_ok=True)
        else:
            state.write_text(saved)


LIVE_END = START + INTERVAL  # the live span: the window's first hour, pushed at 180x
LIVE_SPEED = 180.0


@pytest.fixture(scope="module")
def live_span(warehouse_url, served_sandbox, tmp_path_factory):
    """The first hour pushed as it happens, crashing each service once.
    Returns the pusher's counts, the crashes done, and the orders landed by
    push (before any poll)."""
    reset(warehouse_url)
    broker.start()
    broker.reset()
    marker = tmp_path_factory.mktemp("push") / "paused"
    stack = PushStack({**served_sandbox.connections(load_shops()),
                       "ORDERHUB_STREAM_ACK_WAIT": "3"})
    # The first consumer holds its first landing transaction open, rows
    # inserted, until it is killed there: mid-batch.
    broker.start()
    stack.start_intake()
    stack.start_stream(0, env={"ORDERHUB_FAULT_PAUSE_BEFORE_COMMIT": "120",
                               "ORDERHUB_FAULT_PAUSE_MARKER": str(marker)})
    crashes = []

    def crash(elapsed: float) -> None:
        if "consumer" not in crashes and marker.exists():
            stack.kill("stream-0")
            stack.start_stream(0)
            crashes.append("consumer")
        elif "intake" not in crashes and elapsed > 7:
            stack.kill("intake")
            stack.start_intake()
            crashes.append("intake")
        elif "nats" not in crashes and elapsed > 12:
            broker.stop()
            broker.start()
            crashes.append("nats")

    began = time.monotonic()
    try:
        span = run_live(served_sandbox.url, stack, START, (LIVE_END - START).total_seconds()
                        / LIVE_SPEED, speed=LIVE_SPEED, faults="push", during=crash)
    finally:
        print(f"live span: {time.monotonic() - began:.1f}s")
        stack.stop()
        print(f"services stopped: {time.monotonic() - began:.1f}s")
    with psycopg.connect(warehouse_url) as conn:
        pushed = set(conn.execute("select distinct platform, shop_id, order_id from raw.orders"
                                  " where intake = 'push'").fetchall())
    return span, crashes, pushed


@pytest.fixture(scope="module")
def first_run(warehouse_url, served_sandbox, live_span, tmp_path_factory):
    # The acceptance path: `orderhub run` finds the running sandbox and drives
    # the DAGs through Airflow, every run complete (dbt each hour).
    result = subprocess.run(
        [sys.executable, "-m", "orderhub_tools.cli", "run", "--start", START.isoformat(),
         "--end", END.isoformat()], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "3 DAG runs (0 failed)" in result.stdout, result.stdout
    truth = cli_truth(TEST_SEED, TEST_SCALE, START, END,
                      tmp_path_factory.mktemp("truth") / "truth.jsonl")
    return served_sandbox, truth


def test_fct_orders_equals_the_truth_on_every_standard_column(first_run, warehouse_url):
    _, truth = first_run
    assert truth and set(truth[0]) >= set(STANDARD)
    assert {r["platform"] for r in truth} == {s.platform for s in load_shops()}
    diff = differences(fct_orders(warehouse_url), truth)
    assert diff == {"missing": [], "unexpected": [], "duplicated": 0, "columns": []}, diff


def test_discounts_by_funder_equal_the_truth(first_run, warehouse_url):
    _, truth = first_run
    expected = {(r["platform"], r["order_id"], funder): r[f"{funder}_discount_amount"]
                for r in truth for funder in ("merchant", "platform", "influencer")
                if r[f"{funder}_discount_amount"]}
    with psycopg.connect(warehouse_url) as conn:
        actual = {(p, o, f): a for p, o, f, a in conn.execute(
            "select platform, order_id, funder, discount_amount from marts.fct_order_discounts")}
    assert {funder for _, _, funder in expected} == {"merchant", "platform", "influencer"}
    assert actual == expected  # nothing unattributed: every sandbox platform gives the split


def test_running_the_window_again_changes_nothing(first_run, warehouse_url):
    target, _ = first_run

    def state():
        return (raw_counts(warehouse_url), mart_digest(warehouse_url, "fct_orders"),
                mart_digest(warehouse_url, "fct_order_items"))

    before = state()
    # The first hour again, through its DAG run and the marts' rebuild at its
    # end (test_crash.py, test_model.py and test_reconciliation.py cover the
    # other re-runs: a crashed task's, dbt's, the settlement days').
    report = run(START, START + INTERVAL, sandbox=target, repair=False)
    assert [dag for dag, _, ok in report.runs if ok] == ["orders_incremental"]
    assert state() == before


def test_ledger_has_every_window_ok(first_run, warehouse_url):
    with psycopg.connect(warehouse_url) as conn:
        outcomes = dict(conn.execute("select outcome, count(*) from ops.extraction_windows"
                                     " group by 1").fetchall())
        short = conn.execute("select count(*) from ops.extraction_windows"
                             " where orders_landed < api_reported_count").fetchone()[0]
    assert outcomes.keys() == {"ok"} and short == 0


def test_orderhub_status_shows_every_shop_synced_with_what_landed(first_run, warehouse_url):
    """`orderhub status` (marts.rpt_shop_status): every shop ok, synced to the
    window's end, with the orders it landed in the last 24 hours equal to the
    sandbox's truth, and the pushed ones where the platform pushes."""
    from collections import Counter

    _, truth = first_run
    result = subprocess.run([sys.executable, "-m", "orderhub_tools.cli", "status"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = Counter((r["platform"], r["shop_id"]) for r in truth)
    with psycopg.connect(warehouse_url) as conn:
        rows = conn.execute("select platform, shop_id, status, synced_until, orders_24h,"
                            " pushed_versions_24h, open_windows from marts.rpt_shop_status"
                            " where entity = 'orders'").fetchall()
    assert {(p, s) for p, s, *_ in rows} == {(s.platform, s.shop_id) for s in load_shops()}
    pushed_by_platform = Counter()
    for platform, shop_id, status, synced_until, orders, pushed, open_windows in rows:
        assert (status, synced_until, open_windows) == ("ok", END, 0), (platform, shop_id)
        assert orders == expected[(platform, shop_id)], (platform, shop_id)
        pushed_by_platform[platform] += pushed
        assert any(line.split()[:4] == [platform, shop_id, "orders", "ok"]
                   for line in result.stdout.splitlines()), result.stdout
    # Tmall, PDD, Douyin, Meituan and Ele.me push; JD and the brand's own mall do not
    assert {p for p, n in pushed_by_platform.items() if n} == PUSHING


def test_the_bi_role_reads_every_mart_and_nothing_else(first_run, warehouse_url):
    """`orderhub db url --bi`: the read-only role sees every relation dbt built
    in marts (masked buyer data only) and no raw payload, staging, seed or ops
    table; the DAG's builds replaced the marts after the grants were made."""
    bi_url = subprocess.run([sys.executable, "-m", "orderhub_tools.cli", "db", "url", "--bi"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert bi_url.startswith("postgresql://orderhub_bi@"), bi_url
    with psycopg.connect(warehouse_url) as conn:
        grants = conn.execute(
            "select n.nspname, c.relname, has_table_privilege('orderhub_bi', c.oid, 'select')"
            " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind in ('r', 'v', 'm', 'p')"
            " and n.nspname in ('raw', 'staging', 'intermediate', 'marts', 'seeds', 'ops')"
        ).fetchall()
        orders = conn.execute("select count(*) from marts.fct_orders").fetchone()[0]
    readable = {(schema, name) for schema, name, ok in grants if ok}
    marts = {(schema, name) for schema, name, _ in grants if schema == "marts"}
    assert ("marts", "fct_orders") in marts and ("raw", "orders") in {(s, n) for s, n, _ in grants}
    assert readable == marts, readable ^ marts
    with psycopg.connect(bi_url) as bi:
        assert bi.execute("select count(*) from marts.fct_orders").fetchone()[0] == orders
        # its sessions are in Beijing time: a day is the business day
        assert bi.execute("show timezone").fetchone()[0] == "Asia/Shanghai"
        assert bi.execute("select '2026-11-10 16:30+00'::timestamptz::date").fetchone()[0] == date(2026, 11, 11)
        dated = bi.execute("select created_at, order_date from marts.fct_orders").fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bi.execute("select payload from raw.orders limit 1")
    # fct_orders' business date is Beijing's, which is not the UTC date for these hours
    beijing = ZoneInfo("Asia/Shanghai")
    assert dated and all(day == created.astimezone(beijing).date() for created, day in dated)
    assert any(created.astimezone(UTC).date() != day for created, day in dated)


def test_a_bi_tool_sees_every_mart_column_described(first_run, warehouse_url):
    """persist_docs: every relation dbt built in marts and every one of its
    columns carries its yml description as a comment (issue 20)."""
    with psycopg.connect(warehouse_url) as conn:
        columns = conn.execute(
            "select c.relname, a.attname, coalesce(obj_description(c.oid, 'pg_class'), ''),"
            " coalesce(col_description(c.oid, a.attnum), '') from pg_class c"
            " join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'marts'"
            " join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped"
            " where c.relkind in ('r', 'v', 'm', 'p') and position('__dbt_' in c.relname) = 0").fetchall()
    relations = {relation for relation, *_ in columns}
    assert {"fct_orders", "live_orders", "fct_order_reconciliation", "rpt_reconciliation_daily",
            "stock_positions", "fct_deliveries", "rpt_ingestion_health"} <= relations, relations
    assert sorted({r for r, _, described, _ in columns if not described}) == []
    assert [(r, c) for r, c, _, described in columns if not described] == []


def test_source_freshness_says_when_each_raw_table_last_landed(first_run):
    """`orderhub dbt freshness`: dbt source freshness on the raw tables, one line each."""
    result = subprocess.run([sys.executable, "-m", "orderhub_tools.cli", "dbt", "freshness"],
                            capture_output=True, text=True)
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    assert lines["raw.orders"].startswith("pass (newest row landed "), result.stdout + result.stderr
    assert "warn after 2 hours, error after 6 hours" in lines["raw.orders"]
    assert "raw.settlements" in lines  # this world settles nothing: an error, said so
    assert result.returncode == (1 if lines["raw.settlements"].startswith("error") else 0)


def test_order_lines_sum_to_the_goods_amount(first_run, warehouse_url):
    with psycopg.connect(warehouse_url) as conn:
        mismatches = conn.execute("""
            select o.order_key from marts.fct_orders o
            join marts.fct_order_items i using (order_key)
            group by o.order_key, o.goods_amount
            having sum(i.line_amount) <> o.goods_amount""").fetchall()
    assert mismatches == []


def test_no_secret_or_token_reaches_logs_or_tables(first_run, warehouse_url, shops):
    from orderhub_tools.sandbox.server import SandboxSpec

    spec = SandboxSpec(TEST_SEED, [(s.platform, s.shop_id) for s in shops], TEST_SCALE)
    secrets = set()
    for creds in spec.credentials().values():
        secrets.add(creds.app_secret)
        secrets.update(creds.tokens)
    logs = list(Path(airflow_home()).rglob("*.log"))
    assert logs
    for path in logs:
        text = path.read_text(errors="replace")
        assert not [s for s in secrets if s in text], path
    with psycopg.connect(warehouse_url) as conn:
        dump = "".join(str(r) for r in conn.execute(
            "select last_error, run_id from ops.extraction_windows"
            " union all select reason || raw_text, run_id from ops.quarantine").fetchall())
        payloads = conn.execute("select string_agg(payload::text, '') from raw.orders"
                                " where platform = 'tmall'").fetchone()[0]
    assert not [s for s in secrets if s in dump or s in (payloads or "")]


def test_the_buyer_hash_salt_is_in_no_view_compiled_file_or_log(first_run, warehouse_url):
    """The salt reaches dbt's sessions as a setting (PGOPTIONS), never as SQL
    text: no view definition, no compiled or run file, no task log holds it."""
    salt = pii_salt()
    with psycopg.connect(warehouse_url) as conn:
        views = conn.execute("select schemaname || '.' || viewname, definition from pg_views"
                             " where schemaname in ('staging', 'intermediate', 'marts')").fetchall()
        hashed = conn.execute("select count(buyer_key) from marts.fct_orders").fetchone()[0]
    assert hashed > 0 and views
    assert [name for name, definition in views if salt in definition] == []
    assert any("current_setting('orderhub.pii_salt'" in d for _, d in views)
    target = dbt_project_dir() / "target"
    files = [p for p in target.rglob("*") if p.is_file() and p.suffix in (".sql", ".json")]
    assert files and [p for p in files if salt in p.read_text(errors="replace")] == []
    logs = [p for p in Path(airflow_home()).rglob("*.log")]
    assert [p for p in logs if salt in p.read_text(errors="replace")] == []


def test_gx_checkpoint_fails_on_a_broken_mart(first_run, warehouse_url):
    from expectations.checkpoints import run_check

    assert run_check("marts_validity", warehouse_url).success
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("create table marts.fct_orders_backup as table marts.fct_orders")
        conn.execute("update marts.fct_orders set order_status_code = 99, paid_amount = paid_amount + 1"
                     " where order_key = (select min(order_key) from marts.fct_orders)")
        try:
            outcome = run_check("marts_validity", warehouse_url)
        finally:
            conn.execute("truncate marts.fct_orders")
            conn.execute("insert into marts.fct_orders select * from marts.fct_orders_backup")
            conn.execute("drop table marts.fct_orders_backup")
    assert not outcome.success
    failed = {f["expectation"] for f in outcome.critical_failures}
    assert failed == {"expect_column_values_to_be_in_set", "unexpected_rows_expectation"}


def test_buyer_data_reaches_the_marts_only_masked_or_hashed(first_run, warehouse_url):
    import hashlib
    import re

    with psycopg.connect(warehouse_url) as conn:
        rows = conn.execute(
            "select buyer_name_masked, buyer_phone_masked, buyer_address_masked, buyer_key,"
            " platform from marts.fct_orders").fetchall()
        name, phone = conn.execute(
            "select payload->>'receiver_name', payload->>'receiver_mobile' from raw.orders"
            " where platform = 'tmall'"
            " limit 1").fetchone()
        key = conn.execute("select buyer_key from marts.fct_orders o join raw.orders__tmall r"
                           " using (order_id) where r.payload->>'receiver_mobile' = %s limit 1",
                           (phone,)).fetchone()[0]
        clear = conn.execute("select count(*) from marts.fct_orders f join raw.orders__tmall r"
                             " using (order_id) where f::text like '%%' || (r.payload->>'receiver_mobile')"
                             " || '%%' or f::text like '%%' || (r.payload->>'receiver_name') || '%%'"
                             " or f::text like '%%' || (r.payload->>'receiver_address') || '%%'"
                             ).fetchone()[0]
        # Meituan's and Ele.me's buyers: one address line each, a phone list (Ele.me)
        food = conn.execute(
            "select count(*), count(*) filter (where f::text like '%%' || r.name || '%%'"
            " or f::text like '%%' || r.phone || '%%' or f::text like '%%' || r.address || '%%')"
            " from marts.fct_orders f join (select platform, shop_id, order_id,"
            " coalesce(payload->>'recipient_name', payload->>'consignee') as name,"
            " coalesce(payload->>'recipient_phone', payload->'phoneList'->>0) as phone,"
            " coalesce(payload->>'recipient_address', payload->>'deliveryPoiAddress') as address"
            " from raw.orders where platform in ('meituan', 'eleme')) r"
            " using (platform, shop_id, order_id)").fetchone()
    assert rows and clear == 0
    assert food[0] > 0 and food[1] == 0, food
    assert all(re.fullmatch(r".\*+", n) for n, *_ in rows)
    assert all(re.fullmatch(r"1\d\d\*{4}\d{4}", p) for _, p, *_ in rows)
    # the region where the platform gives it apart (Meituan has one address
    # line: nothing of it reaches the marts)
    regions = {r["platform"] for r in read_seed("platform_field_map")
               if r["standard_field"] == "buyer_province"}
    assert all(a.endswith(" ****") if platform in regions else a is None
               for _, _, a, _, platform in rows)
    assert {platform for *_, platform in rows} - regions  # both kinds are here
    assert key == hashlib.sha256(f"{pii_salt()}|{phone}".encode()).hexdigest()
    assert name and len(name) > 1


# -- the push path (issue 17) -----------------------------------------------------

def test_push_lands_every_order_a_message_named_through_three_crashes(live_span):
    span, crashes, pushed = live_span
    counts = span.pushes
    assert sorted(crashes) == ["consumer", "intake", "nats"]  # each service crashed once
    assert span.drained, counts  # every message acknowledged by the intake, then by the stream
    # every push fault happened in this span
    for fault in ("lost", "duplicated", "disordered", "in_bursts", "storm_redeliveries",
                  "forged", "malformed", "redelivered"):
        assert counts.get(fault, 0) > 0, (fault, counts)
    named = {tuple(o) for o in counts["orders_pushed"]}
    assert named and pushed == named  # nothing lost on the way, nothing extra
    assert {platform for platform, _, _ in named} == PUSHING  # JD, the mall: poll only


def test_forged_pushes_are_refused_and_never_land(live_span, warehouse_url):
    span, _, _ = live_span
    assert span.pushes.get("forged_accepted", 0) == 0
    with psycopg.connect(warehouse_url) as conn:
        webhook = conn.execute("select count(*), array_agg(distinct reason)"
                               " from ops.push_rejections where platform = any(%s)",
                               (sorted(WEBHOOKS),)).fetchone()
        # a long connection's forgery is confirmed after it is refused; the
        # crash of the intake can refuse one twice: count distinct messages
        channels = conn.execute("select count(distinct body_sha256), min(reason)"
                                " from ops.push_rejections where platform <> all(%s)",
                                (sorted(WEBHOOKS),)).fetchone()
    assert webhook[0] == span.pushes["forged_refused"] > 0
    # (a forged webhook sent while the intake was down for its crash reached no one)
    on_channels = span.pushes["forged_on_channels"]
    assert webhook[0] + span.pushes.get("forged_unanswered", 0) + on_channels \
        == span.pushes["forged"]
    # each webhook's own signature was what failed (Douyin's header, Meituan's sig)
    assert all(reason.split(":")[0] in WEBHOOKS and "sig" in reason for reason in webhook[1])
    assert channels[0] == on_channels > 0 and "does not serve" in channels[1]
    # a forged message names an order that does not exist or a shop not ours:
    # fct_orders has no order the truth lacks (test_fct_orders_equals_the_truth...)


def test_malformed_pushes_are_quarantined_with_a_reason(live_span, warehouse_url):
    span, _, _ = live_span
    with psycopg.connect(warehouse_url) as conn:
        rows = conn.execute("select platform, reason from ops.quarantine"
                            " where entity = 'push'").fetchall()
    assert len(rows) == span.pushes["malformed"] > 0
    assert all(reason.startswith(f"{platform} push: ") for platform, reason in rows), rows
    assert {platform for platform, _ in rows} <= PUSHING
    assert len({platform for platform, _ in rows}) >= 3  # webhooks and long connections alike


def test_live_orders_equal_the_truth_after_the_poll(first_run):
    """Pushed or polled, every order of the window at its latest version."""
    _, truth = first_run
    keys = [(r["platform"], r["shop_id"], r["order_id"]) for r in truth]
    assert {k[0] for k in keys} >= {"douyin", "tmall", "pdd", "jd"}  # pushed and polled alike
    diff = differences(live_orders(keys, STANDARD), truth)
    assert diff == {"missing": [], "unexpected": [], "duplicated": 0, "columns": []}, diff


def test_the_hourly_dag_counts_the_warehouse_and_positions_follow_the_open_orders(
        first_run, warehouse_url, shops):
    """Issue 18: every hourly run landed the warehouse's on-hand
    (snapshot_stock, connection orderhub_wms); every order line maps to a
    merchant SKU; and per SKU, the held (unpaid, on platforms that take stock
    at creation) and reserved (paid, not shipped) units of
    marts.stock_positions are the world's open orders'."""
    from collections import Counter

    from orderhub_tools.sandbox import gateway_class
    from orderhub_tools.sandbox.stock import warehouse_answer
    from orderhub_tools.sandbox.world import World

    _, truth = first_run
    world = World(TEST_SEED, [(s.platform, s.shop_id) for s in shops], TEST_SCALE)
    world.truth(int(START.timestamp()), int(END.timestamp()))  # generates the hours: find() knows them
    held, reserved = Counter(), Counter()
    for row in truth:
        order = world.find(row["platform"], row["order_id"])
        for line in order.lines:
            if row["order_status_code"] == 20:
                reserved[line.sku.outer_sku_id] += line.quantity
            elif (row["order_status_code"] == 10
                  and gateway_class(row["platform"]).stock_reduced_on == "created"):
                held[line.sku.outer_sku_id] += line.quantity
    counted = {item["sku"]: item["on_hand"] for item in warehouse_answer(world, 0)["items"]}
    with psycopg.connect(warehouse_url) as conn:
        snapshots = conn.execute("select count(distinct as_of), count(*) from raw.stock_on_hand"
                                 ).fetchone()
        unmapped = conn.execute("select count(*) from marts.fct_order_items"
                                " where merchant_sku is null").fetchone()[0]
        positions = {sku: (on_hand, h, r, available) for sku, on_hand, h, r, available in
                     conn.execute("select merchant_sku, on_hand, held, reserved,"
                                  " available_to_sell from marts.stock_positions")}
    assert snapshots[0] >= 2 and snapshots[1] == snapshots[0] * len(counted)  # one per hourly run
    assert unmapped == 0
    assert sum(reserved.values()) > 0 and sum(held.values()) > 0
    for sku, on_hand in counted.items():
        expected = (on_hand, held[sku], reserved[sku], on_hand - held[sku] - reserved[sku])
        assert positions[sku] == expected, sku


def test_the_hourly_dag_reads_what_every_shop_lists_and_flags_the_skus_at_risk(
        first_run, warehouse_url, shops):
    """Issue 18: every listing shop's SKUs land each hour (raw.stock_listings);
    marts.stock_offers is each one's latest read. The sandbox lists
    CATALOG_QUANTITY of every catalog product in every shop."""
    from orderhub.platforms import client_class
    from orderhub_tools.sandbox.stock import CATALOG_QUANTITY

    listing_shops = [s for s in shops if client_class(s.platform).listing_endpoint]
    with psycopg.connect(warehouse_url) as conn:
        per_shop = dict(conn.execute(
            "select platform || '/' || shop_id, count(distinct sku_id)"
            " from raw.stock_listings group by 1").fetchall())
        offers = conn.execute("select merchant_sku, count(*), min(offered), max(offered)"
                              " from marts.stock_offers group by 1 order by 1").fetchall()
        positions = dict(conn.execute("select merchant_sku, available_to_sell"
                                      " from marts.stock_positions").fetchall())
        risk = {sku: (offered, beyond) for sku, offered, beyond in conn.execute(
            "select merchant_sku, offered, offered_beyond_available from marts.rpt_oversell_risk")}
    assert per_shop == {f"{s.platform}/{s.shop_id}": 12 for s in listing_shops}
    assert offers == [(f"TEA-{i:03d}", len(listing_shops), CATALOG_QUANTITY, CATALOG_QUANTITY)
                      for i in range(1, 13)]
    offered = len(listing_shops) * CATALOG_QUANTITY
    # the shops offer 4,800 of each catalog product against 5,000 or so on hand: no risk
    # (tests/test_stock_sync.py has a flash sale that is)
    assert all(positions[f"TEA-{i:03d}"] > offered for i in range(1, 13))
    assert {sku: v for sku, v in risk.items() if v[1]} == {}
