"""``orderhub demo``: the whole path on one machine, then a summary.

Starts the warehouse and the sandbox, points every configured shop's
connection at the sandbox, and runs through Airflow:

1. ``orders_repair`` once with a span: the order history a reconciliation
   needs (the settlement days plus recon_order_history_days before them);
2. ``settlements_daily`` once for the ``settlement_days`` days before the
   window: settlement lines, the reconciliation marts, the audit record;
3. ``orders_incremental`` for each hour of the window, then ``orders_repair``.

With ``live_seconds`` (``--live``), a live segment comes first: the sandbox
pushes [start, start + live) as it happens (Douyin webhooks, TMC and PDD
long connections), ``orderhub
intake`` and ``orderhub stream`` land it through NATS JetStream, and then the
runs above catch up on it as the net (orderhub_tools.live).

Then it prints per platform: orders landed in raw, orders in ``fct_orders``,
orders in the sandbox's truth, and status counts; the health figures; the
reconciliation summary of the settlement days (consistency rate, differences
by category with amounts, review queue) next to the sandbox's reconciliation
truth; and writes the run report (``orderhub report``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta

from expectations.checkpoints import data_docs_index
from orderhub.config import database_url, home, load_shops, sandbox_world
from orderhub.landing import connect, drop_warehouse, ensure_schema, relation_exists
from orderhub.platforms import client_class, names
from orderhub.push import broker
from orderhub.report import write_report
from orderhub_tools.live import (
    LiveSpan,
    PushStack,
    compare_with_truth,
    ensure_live_view,
    iso,
    print_live,
    run_live,
)
from orderhub_tools.local_airflow import remember_demo_world
from orderhub_tools.runner import SandboxTarget, run, settlement_range
from orderhub_tools.sandbox.faults import OUTAGE
from orderhub_tools.sandbox.server import SandboxSpec, serve
from orderhub_tools.sandbox.stock import forget_sale, save_sale
from orderhub_tools.sandbox.world import DEMO_SCALE


def summary(start: datetime, end: datetime, truth: list[dict]) -> tuple[list[dict], bool]:
    with connect() as conn:
        ensure_schema(conn)
        landed = dict(conn.execute("select platform, count(distinct (shop_id, order_id))"
                                   " from raw.orders group by 1").fetchall())
        fct, statuses = {}, []
        if relation_exists(conn, "marts.fct_orders"):  # no dbt build has succeeded yet
            fct = dict(conn.execute("select platform, count(*) from marts.fct_orders"
                                    " group by 1").fetchall())
            statuses = conn.execute("select platform, order_status_code, count(*)"
                                    " from marts.fct_orders group by 1, 2 order by 1, 2").fetchall()
    truth_counts = Counter(row["platform"] for row in truth)
    rows, all_equal = [], True
    for platform in sorted({s.platform for s in load_shops()}, key=names().index):
        status = {code: n for p, code, n in statuses if p == platform}
        equal = fct.get(platform, 0) == truth_counts.get(platform, 0)
        all_equal &= equal
        rows.append({"platform": platform, "landed": landed.get(platform, 0),
                     "fct_orders": fct.get(platform, 0), "truth": truth_counts.get(platform, 0),
                     "equal": equal, "status_counts": status})
    return rows, all_equal


def print_health(start: datetime, end: datetime) -> None:
    """The health mart's figures for the window, per platform."""
    with connect() as conn:
        if not relation_exists(conn, "marts.rpt_ingestion_health"):
            print("\nhealth: marts.rpt_ingestion_health is not built (no dbt build succeeded)")
            return
        rows = conn.execute(
            "select platform, percentile_disc(0.5) within group (order by latency_p50_seconds),"
            " max(latency_p95_seconds), max(latency_max_seconds),"
            " sum(ledger_orders_landed), sum(api_reported_count), min(field_completeness_rate),"
            " sum(open_windows) from marts.rpt_ingestion_health"
            " where hour_start >= %s and hour_start < %s group by 1 order by 1", (start, end)).fetchall()
    print("\nhealth (marts.rpt_ingestion_health; latency = platform fetch time - modified time)")
    # complete: orders landed / orders the platform reported, over the ledger's windows
    print(f"{'platform':<8} {'p50 (s)':>8} {'p95 (s)':>8} {'max (s)':>8} {'complete':>9}"
          f" {'fields':>8} {'open':>5}")
    for platform, p50, p95, top, landed, reported, fields, open_windows in rows:
        rate = f"{landed / reported:.2%}" if reported else "-"
        print(f"{platform:<8} {p50 or 0:>8.0f} {p95 or 0:>8.0f} {top or 0:>8.0f} {rate:>9}"
              f" {fields or 0:>8.2%} {open_windows:>5}")


def print_stock(limit: int = 5) -> None:
    """The scarcest merchant SKUs (marts.stock_positions) and how many are at
    risk of selling a unit twice (marts.rpt_oversell_risk). Issue 18."""
    with connect() as conn:
        if not relation_exists(conn, "marts.rpt_oversell_risk"):
            print("\nstock: marts.rpt_oversell_risk is not built (no dbt build succeeded)")
            return
        counted = conn.execute("select max(counted_at) from marts.stock_positions").fetchone()[0]
        rows = conn.execute(
            "select p.merchant_sku, p.on_hand, p.held, p.reserved, p.available_to_sell,"
            " coalesce(r.offered, 0), coalesce(r.offered_beyond_available, false)"
            " from marts.stock_positions p left join marts.rpt_oversell_risk r using (merchant_sku)"
            " where p.on_hand > 0 order by p.available_to_sell, p.merchant_sku limit %s",
            (limit,)).fetchall()
        at_risk, skus = conn.execute(
            "select (select count(*) from marts.rpt_oversell_risk),"
            " (select count(*) from marts.stock_positions where on_hand > 0)").fetchone()
    print(f"\nstock (marts.stock_positions; warehouse counted at {counted}): the {len(rows)}"
          f" scarcest SKUs")
    print(f"{'sku':<9} {'on hand':>8} {'held':>6} {'reserved':>9} {'available':>10}"
          f" {'offered':>8}")
    for sku, on_hand, held, reserved, available, offered, beyond in rows:
        print(f"{sku:<9} {on_hand:>8} {held:>6} {reserved:>9} {available:>10} {offered:>8}"
              + ("  offered beyond available" if beyond else ""))
    print(f"SKUs at risk of selling a unit twice (marts.rpt_oversell_risk): {at_risk} of {skus}")


def print_reconciliation(world, first: datetime, start: datetime, books_until: datetime) -> bool:
    """The reconciliation summary of [first, start) beside the truth's counts
    (the books - the orders - synced until ``books_until``)."""
    from collections import Counter

    from orderhub.reconciliation import print_summary, summary
    from orderhub_tools.sandbox.settlement import reconciliation_truth

    s = summary(first.date(), start.date())
    print_summary(s)
    truth = Counter(r["category"] for r in reconciliation_truth(
        world, int(first.timestamp()), int(start.timestamp()), int(books_until.timestamp())))
    found = {c: d["orders"] for c, d in s["differences"].items()}
    equal = found == dict(truth)
    print(f"sandbox truth by category: {dict(sorted(truth.items()))}"
          f" ({'equal' if equal else 'DIFFERENT'})")
    return equal


def print_deliveries(world, delivered: dict[str, str], start: datetime, end: datetime,
                     now: int) -> bool:
    """marts.fct_deliveries beside the sandbox's truth: the deliveries of the
    orders modified in [start, end) of the shops with a delivery service, in
    their state when the last run asked (``now``, the sandbox clock)."""
    from orderhub_tools.sandbox.delivery import deliveries_truth

    truth = deliveries_truth(world, delivered, int(start.timestamp()), int(end.timestamp()), now)
    diff = compare_deliveries(truth)
    equal = not (diff["missing"] or diff["extra"] or diff["columns"])
    statuses = Counter(r["delivery_status_code"] for r in truth)
    print(f"\ndeliveries (marts.fct_deliveries; {', '.join(sorted(set(delivered.values())))}):"
          f" {diff['found']} found, {len(truth)} in the truth, {len(diff['missing'])} missing,"
          f" {len(diff['extra'])} extra, {len(diff['columns'])} column differences"
          f" ({'equal' if equal else 'DIFFERENT'}); SF statuses"
          f" {' '.join(f'{code}:{n}' for code, n in sorted(statuses.items()))},"
          f" fees {sum(r['delivery_fee'] for r in truth) / 100:.2f} yuan")
    for key, column, actual, expected in diff["columns"][:5]:
        print(f"  {key} {column}: {actual!r} != {expected!r}")
    with connect() as conn:
        intake = dict(conn.execute("select intake, count(*) from raw.deliveries"
                                   " group by 1").fetchall())
    if intake.get("push"):  # a live segment ran: SF called back
        print(f"delivery versions landed: {intake['push']} from status callbacks"
              f" (`orderhub intake` -> `orderhub stream`), {intake.get('poll', 0)} by the poll")
    print_delivery_costs()
    return equal


def print_delivery_costs() -> None:
    """The delivery fee as a cost of the orders delivered, per shop
    (marts.fct_order_delivery_costs)."""
    with connect() as conn:
        if not relation_exists(conn, "marts.fct_order_delivery_costs"):
            return
        rows = conn.execute(
            "select platform, shop_id, count(*), count(received_amount), sum(received_amount),"
            " sum(delivery_fee), sum(net_after_delivery)"
            " from marts.fct_order_delivery_costs group by 1, 2 order by 1, 2").fetchall()
    print("delivery costs (marts.fct_order_delivery_costs; received = settled, or paid on the"
          " shop's own channel; net = received - their fees)")
    print(f"{'shop':<18} {'orders':>7} {'fees':>10} {'received':>9} {'received (yuan)':>16}"
          f" {'net after delivery':>19}")
    for platform, shop_id, orders, received, amount, fees, net in rows:
        # nothing received yet (a platform that settles later): no sum to show
        amount, net = ((f"{amount:.2f}", f"{net:.2f}") if received else ("-", "-"))
        print(f"{platform + '/' + shop_id:<18} {orders:>7} {fees:>10.2f} {received:>9}"
              f" {amount:>16} {net:>19}")


def compare_deliveries(truth: list[dict]) -> dict:
    """fct_deliveries against the truth's rows, column by column (times as
    Unix seconds, the fee in fen as SF writes it)."""
    from decimal import Decimal

    columns = ("delivery_id", "raw_delivery_status", "dispatched_at", "accepted_at",
               "arrived_at", "picked_up_at", "delivered_at", "cancelled_at", "rider_changes",
               "distance_m", "delivery_fee")
    with connect() as conn:
        found = {} if not relation_exists(conn, "marts.fct_deliveries") else {
            row[:3]: dict(zip(columns, row[3:], strict=True)) for row in conn.execute(
                f"select platform, shop_id, order_id, {', '.join(columns)}"  # noqa: S608 - fixed names
                " from marts.fct_deliveries").fetchall()}
    diff = {"found": len(found), "missing": [], "extra": [], "columns": []}
    expected_keys = set()
    for row in truth:
        key = (row["platform"], row["shop_id"], row["order_id"])
        expected_keys.add(key)
        actual = found.get(key)
        if actual is None:
            diff["missing"].append(key)
            continue
        expected = {**{c: row.get(c) for c in columns},
                    "raw_delivery_status": str(row["delivery_status_code"]),
                    "delivery_fee": Decimal(row["delivery_fee"]) / 100}
        for column in columns:
            value = actual[column]
            if isinstance(value, datetime):
                value = int(value.timestamp())
            if value != expected[column]:
                diff["columns"].append((key, column, value, expected[column]))
    diff["extra"] = sorted(set(found) - expected_keys)
    return diff


def live_segment(target: SandboxTarget, shops, start: datetime, seconds: float, speed: float,
                 faults: str, follow_stock: bool = False) -> LiveSpan:
    """Push [start, start + seconds x speed) through intake, NATS and stream;
    ``follow_stock``: with `orderhub stock follow` running beside them."""
    ensure_live_view()
    stack = PushStack(target.connections(shops)).start()
    print(f"live: NATS {stack.nats_url}, intake on :{stack.port}, 1 stream consumer"
          + (", `orderhub stock follow`" if follow_stock else "")
          + f"; pushing {seconds:.0f}s at {speed:g}x from {start.isoformat()} ...", flush=True)
    follower = start_follower(target, shops) if follow_stock else None
    try:
        span = run_live(target.url, stack, start, seconds, speed=speed, faults=faults)
    finally:
        stack.stop()
        if follower is not None:
            stop_follower(follower)
    if not span.drained:
        print("live: some pushes were never acknowledged or landed (the poll is the net)")
    return span


def start_follower(target: SandboxTarget, shops) -> subprocess.Popen:
    """`orderhub stock follow` as its own process, as an operator runs it
    beside `orderhub stream` during a sale; started once it is ready."""
    follower = subprocess.Popen(
        [sys.executable, "-m", "orderhub_tools.cli", "stock", "follow", "--every", "5"],
        env={**os.environ, **target.connections(shops)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    follower.stdout.readline()  # its first line: it is following
    return follower


def stop_follower(follower: subprocess.Popen) -> None:
    """SIGTERM: it ends its pass and says what its passes did."""
    follower.terminate()
    out, _ = follower.communicate(timeout=120)
    lines = [line for line in out.splitlines() if line.startswith("stock follow:")]
    print(f"flash sale: {lines[-1] if lines else 'stock follow ended without a summary'}")


# The demo's flash sale (issue 18; on with --live, `--no-flash-sale` for none):
# during the live segment, 3 scarce SKUs of 30 units each, every channel listing
# all 30, buyers at 12 a minute per channel and SKU (36 on Douyin: a live
# stream). One `orderhub stock sync` pass before it opens, then `orderhub
# stock follow` beside the push path through it. The stock calls the sandbox applied are recorded
# (.orderhub/sandbox-sale.json), so `orderhub sandbox truth` run afterwards,
# with no sandbox running, plays the same sale and has the same orders.
FLASH_SALE = {"skus": 3, "on_hand": 30, "rate": 12.0, "demand": {"douyin": 3.0}}


def keep_channels_in_step(target: SandboxTarget, shops) -> None:
    """Before the flash sale: the stock views and marts.live_orders built in
    one go (a fresh warehouse has none; building one later would replace
    fct_orders and drop the others with it), then one `orderhub stock sync`
    pass (the same function)."""
    from orderhub.stock import STOCK_VIEWS, sync
    from orderhub.transform import ensure_views

    ensure_views("live_orders", *STOCK_VIEWS)
    with target.connected(shops):
        result = sync("demo-flash-sale")
    print(f"flash sale: {result.line()}")


def print_flash_sale(world, sale: dict) -> bool:
    """The flash sale's figures: what sold, and what sold twice, with the
    channels kept in step, beside the same sale nobody kept in step; and
    OrderHub's incident mart against the sandbox's truth."""
    from orderhub_tools.sandbox.stock import FlashSale, Stock
    from orderhub_tools.sandbox.world import World

    kept = world.stock.truth()
    alone = {r["merchant_sku"]: r for r in
             Stock(World(world.seed, world.shops, world.scale), FlashSale(**sale)).truth()}
    with connect() as conn:
        incidents = dict(conn.execute("select merchant_sku, oversold_units"
                                      " from marts.fct_oversold_incidents").fetchall()) \
            if relation_exists(conn, "marts.fct_oversold_incidents") else {}
    print(f"\nflash sale ({len(kept)} SKUs, {sale['on_hand']} on hand each,"
          f" {len(world.stock.channels)} channels;"
          f" `orderhub sandbox truth --kind stock`): kept in step (`orderhub stock sync`"
          f" before it opened, `orderhub stock follow` through it) | nobody keeping the"
          f" channels in step")
    print(f"{'sku':<8} {'supply':>6} {'sold':>5} {'oversold':>9} | {'sold':>5} {'oversold':>9}")
    for row in kept:
        other = alone[row["merchant_sku"]]
        print(f"{row['merchant_sku']:<8} {row['supply']:>6} {row['sold']:>5} {row['oversold']:>9}"
              f" | {other['sold']:>5} {other['oversold']:>9}")
    expected = {r["merchant_sku"]: r["oversold"] for r in kept if r["oversold"]}
    equal = incidents == expected
    print(f"units oversold: {sum(r['oversold'] for r in kept)} kept in step,"
          f" {sum(r['oversold'] for r in alone.values())} alone;"
          f" marts.fct_oversold_incidents: {sum(incidents.values())} units"
          f" ({'equal to the truth' if equal else 'DIFFERENT from the truth'})")
    return equal


def report_live(span: LiveSpan, world, upto: datetime) -> bool:
    """The push figures after the poll caught up, and live_orders against the
    truth: the span's orders in their state at ``upto`` (the end of what the
    poll read: the span's end when the live segment runs on its own)."""
    print_live(span)
    in_span = {(r["platform"], r["shop_id"], r["order_id"])
               for r in world.truth(int(span.start.timestamp()), int(span.end.timestamp()))}
    truth = [r for r in world.truth(int(span.start.timestamp()), int(upto.timestamp()))
             if (r["platform"], r["shop_id"], r["order_id"]) in in_span]
    diff = compare_with_truth(truth)
    equal = not (diff["missing"] or diff["duplicated"] or diff["columns"])
    print(f"marts.live_orders vs the sandbox truth (the span's orders as of {iso(upto)}):"
          f" {diff['orders']} orders,"
          f" {len(diff['missing'])} missing, {diff['duplicated']} duplicated,"
          f" {len(diff['columns'])} column differences ({'equal' if equal else 'DIFFERENT'})")
    for key, column, actual, expected in diff["columns"][:5]:
        print(f"  {key} {column}: {actual!r} != {expected!r}")
    print(f"live span: {iso(span.start)} {iso(span.end)}")
    return equal


def demo(seed: int, start: datetime, end: datetime, fresh: bool, scale: float = DEMO_SCALE,
         faults: str = "none", settle: timedelta | None = None, settlement_days: int = 2,
         live_seconds: float = 0, live_speed: float = 1.0, flash_sale: bool = False,
         repair: bool = True) -> int:
    began = time.monotonic()
    print(f"warehouse: {database_url()}")
    if fresh:
        drop_warehouse()
        if live_seconds:
            broker.start()
            broker.reset()
        print("warehouse reset (--fresh)" + (", push stream emptied" if live_seconds else ""))
    shops = load_shops()
    forget_sale()  # the last demo's sale is not this one's
    # --flash-sale: a flash sale opens when the live segment starts (issue 18), on
    # the channels with a stock API (the tea chain's world has none: no sale)
    channels = any(client_class(s.platform).stock_endpoint for s in shops)
    sale = ({**FLASH_SALE, "start": int(start.timestamp()),
             "minutes": live_seconds * live_speed / 60}
            if live_seconds and flash_sale and channels else None)
    spec = SandboxSpec(seed=seed, shops=[(s.platform, s.shop_id) for s in shops], scale=scale,
                       faults=faults, flash_sale=sale, world=sandbox_world(),
                       deliveries={s.shop_id: s.delivery for s in shops if s.delivery})
    if settle is None and faults in ("late", "all"):
        settle = timedelta(hours=4)  # late updates appear up to 3 hours after they happen
    server = serve(spec)
    target = SandboxTarget(f"http://127.0.0.1:{server.server_address[1]}", seed)
    SandboxTarget.state_file().write_text(json.dumps({"url": target.url, "seed": seed,
                                                      "scale": scale}))
    remember_demo_world(seed, scale)  # `orderhub airflow --sandbox` serves it again
    print(f"sandbox: {target.url} (seed {seed}, scale {scale}, {len(shops)} shops, faults {faults})")
    from orderhub.reconciliation import order_history_days

    history = timedelta(0)
    if settlement_days:
        # whole Beijing days of bills before the window's day, and the order
        # history a reconciliation of them needs, synced up to the window
        first, last = settlement_range(start, settlement_days)
        history = start - first + timedelta(days=order_history_days())
    try:
        span = None
        if live_seconds:  # pushes first, as they happen; then the poll, as the net
            if sale:
                server.sandbox.clock.set(start.timestamp() - 60)  # a minute before the sale
                keep_channels_in_step(target, shops)
            span = live_segment(target, shops, start, live_seconds, live_speed, faults,
                                follow_stock=bool(sale))
        report = run(start, end, sandbox=target, settle=settle, history=history,
                     settlement_days=settlement_days, repair=repair)
    finally:
        server.shutdown()
        SandboxTarget.state_file().unlink(missing_ok=True)
        if sale:  # so that `orderhub sandbox truth` can play it again offline
            save_sale(server.sandbox.world)
    # everything synced: the history before the window, then the window
    synced_from = start - history
    truth = server.sandbox.world.truth(int(synced_from.timestamp()), int(end.timestamp()))
    rows, all_equal = summary(synced_from, end, truth)
    print(f"\norders modified in [{synced_from.isoformat()}, {end.isoformat()})"
          f" (history + window), {time.monotonic() - began:.0f}s")
    print(f"{'platform':<8} {'landed':>8} {'fct_orders':>11} {'truth':>8}  status counts")
    for r in rows:
        codes = " ".join(f"{c}:{n}" for c, n in sorted(r["status_counts"].items()))
        mark = "=" if r["equal"] else "!="
        print(f"{r['platform']:<8} {r['landed']:>8} {r['fct_orders']:>11} {mark}{r['truth']:>7}  {codes}")
    print(f"DAG runs: {len(report.runs)} ({report.failed_runs} failed); ledger windows that failed"
          f" first: {report.windows_failed_first}, repaired: {report.windows_repaired},"
          f" still open: {report.windows_open}")
    for line in report.describe_open():
        print(line)
    total = sum(r["fct_orders"] for r in rows)
    print(f"{'total':<8} {sum(r['landed'] for r in rows):>8} {total:>11}  {len(truth):>7}")
    print_health(start, end)
    if channels:  # the brand's warehouse against the channels that sell its stock
        print_stock()
    recon_equal = True
    if settlement_days:
        # the reconciliation is as of the settlements_daily run, whose books (orders)
        # were synced until the window's start; the hourly runs after it leave it alone
        recon_equal = print_reconciliation(server.sandbox.world, first, last, start)
    live_equal = report_live(span, server.sandbox.world, end) if span else True
    delivered = {s.shop_id: s.delivery for s in shops if s.delivery}
    if delivered:  # the shops' own orders, delivered by a delivery service (issue 19)
        live_equal = print_deliveries(server.sandbox.world, delivered, synced_from, end,
                                      server.sandbox.clock()) and live_equal
    if sale:
        live_equal = print_flash_sale(server.sandbox.world, sale) and live_equal
    out = write_report(home() / "report.html", start, end)
    print(f"\nreport: {out}")
    print(f"GX Data Docs: {data_docs_index()}")
    if not report.complete:
        print("the run could not complete: the windows above are still open"
              + (" (the fault profile outlasts every repair)" if faults == OUTAGE else ""))
        return 1
    if not (all_equal and recon_equal and live_equal):
        print("the warehouse differs from the sandbox truth" + ("" if fresh else
              " (the warehouse held earlier data: try --fresh)"))
        return 1 if fresh else 0
    return 0
