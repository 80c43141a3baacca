"""``orderhub demo``: the whole path on one machine, then a summary.

Starts the warehouse and the sandbox, points every configured shop's
connection at the sandbox, runs ``orders_incremental`` through Airflow for
each hour of the window, and prints per platform: orders landed in raw, orders
in ``fct_orders``, orders in the sandbox's truth, and status counts; then
the health figures, and writes the run report (``orderhub report``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timedelta

from expectations.checkpoints import data_docs_index
from orderhub.config import PLATFORMS, database_url, home, load_shops
from orderhub.landing import connect
from orderhub.report import write_report
from orderhub.runner import SandboxTarget, run
from orderhub.sandbox.server import SandboxSpec, serve

SCHEMAS = ("raw", "ops", "seeds", "staging", "intermediate", "marts")


def reset_warehouse() -> None:
    with connect() as conn:
        for schema in SCHEMAS:
            conn.execute(f"drop schema if exists {schema} cascade")


def summary(start: datetime, end: datetime, truth: list[dict]) -> tuple[list[dict], bool]:
    with connect() as conn:
        landed = dict(conn.execute(
            " union all ".join(f"select '{p}', count(distinct (shop_id, order_id))"  # noqa: S608
                               f" from raw.{p}_orders" for p in PLATFORMS)).fetchall())
        fct = dict(conn.execute("select platform, count(*) from marts.fct_orders group by 1").fetchall())
        statuses = conn.execute("select platform, order_status_code, count(*) from marts.fct_orders"
                                " group by 1, 2 order by 1, 2").fetchall()
    truth_counts = Counter(row["platform"] for row in truth)
    rows, all_equal = [], True
    for platform in PLATFORMS:
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


def demo(seed: int, start: datetime, end: datetime, fresh: bool, scale: float = 1.0,
         faults: str = "none", settle: timedelta | None = None) -> int:
    began = time.monotonic()
    print(f"warehouse: {database_url()}")
    if fresh:
        reset_warehouse()
        print("warehouse reset (--fresh)")
    shops = load_shops()
    spec = SandboxSpec(seed=seed, shops=[(s.platform, s.shop_id) for s in shops], scale=scale,
                       faults=faults)
    if settle is None and faults in ("late", "all"):
        settle = timedelta(hours=4)  # late updates appear up to 3 hours after they happen
    server = serve(spec)
    target = SandboxTarget(f"http://127.0.0.1:{server.server_address[1]}", seed)
    SandboxTarget.state_file().write_text(json.dumps({"url": target.url, "seed": seed,
                                                      "scale": scale}))
    print(f"sandbox: {target.url} (seed {seed}, scale {scale}, {len(shops)} shops, faults {faults})")
    try:
        report = run(start, end, sandbox=target, settle=settle)
    finally:
        server.shutdown()
        SandboxTarget.state_file().unlink(missing_ok=True)
    truth = server.sandbox.world.truth(int(start.timestamp()), int(end.timestamp()))
    rows, all_equal = summary(start, end, truth)
    print(f"\nwindow [{start.isoformat()}, {end.isoformat()}), {time.monotonic() - began:.0f}s")
    print(f"{'platform':<8} {'landed':>8} {'fct_orders':>11} {'truth':>8}  status counts")
    for r in rows:
        codes = " ".join(f"{c}:{n}" for c, n in sorted(r["status_counts"].items()))
        mark = "=" if r["equal"] else "!="
        print(f"{r['platform']:<8} {r['landed']:>8} {r['fct_orders']:>11} {mark}{r['truth']:>7}  {codes}")
    print(f"DAG runs: {len(report.runs)} ({report.failed_runs} failed); ledger windows that failed"
          f" first: {report.windows_failed_first}, repaired: {report.windows_repaired},"
          f" still open: {report.windows_open}")
    total = sum(r["fct_orders"] for r in rows)
    print(f"{'total':<8} {sum(r['landed'] for r in rows):>8} {total:>11}  {len(truth):>7}")
    print_health(start, end)
    out = write_report(home() / "report.html", start, end)
    print(f"\nreport: {out}")
    print(f"GX Data Docs: {data_docs_index()}")
    if not all_equal:
        print("fct_orders differs from the sandbox truth" + ("" if fresh else
              " (the warehouse held earlier data: try --fresh)"))
        return 1 if fresh else 0
    return 0
