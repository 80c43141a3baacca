"""``orderhub report --out report.html``: one self-contained HTML page for a
time range, which opens offline from disk:

* health per platform and the status of every shop (marts.rpt_shop_status),
* charts (orderhub.charts: Altair's Vega-Lite, drawn by Vega-Embed inline):
  orders per platform per hour, the sync-latency distribution with its p50
  and p95, completeness per shop and extraction window (the ledger), and
  reconciliation orders and differences by category for the 7 days before,
* the review queue, the scarcest SKUs, the latest failed GX results and the
  alerts sent, as tables.

Once the charts are drawn, the page writes how many have marks with a size
to ``body[data-charts-drawn]`` (the report tests read it from headless
Chromium).
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timedelta
from pathlib import Path

import psycopg

from orderhub import charts
from orderhub.config import PLATFORM_TZ
from orderhub.landing import relation_exists
from orderhub.platforms import clients


def _local(ts: datetime) -> datetime:
    return ts.astimezone(PLATFORM_TZ)


def _table(headers: list[str], rows: list[tuple]) -> str:
    if not rows:
        return '<p class="empty">none</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if c is None else str(c))}</td>" for c in row)
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def gather(conn: psycopg.Connection, start: datetime, end: datetime) -> dict:
    data: dict = {"orders": [], "latency": [], "windows": [], "checks": [], "alerts": [],
                  "health": []}
    if relation_exists(conn, "marts.rpt_ingestion_health"):
        data["orders"] = conn.execute(
            "select hour_start, platform, sum(orders_landed) from marts.rpt_ingestion_health"
            " where hour_start >= %s and hour_start < %s group by 1, 2 order by 1, 2",
            (start, end)).fetchall()
        data["health"] = conn.execute(
            "select platform, sum(orders_landed), max(latency_p50_seconds), max(latency_p95_seconds),"
            " round(sum(ledger_orders_landed)::numeric / nullif(sum(api_reported_count), 0), 4),"
            " round(avg(field_completeness_rate), 4), sum(open_windows)"
            " from marts.rpt_ingestion_health where hour_start >= %s and hour_start < %s"
            " group by 1 order by 1", (start, end)).fetchall()
    if relation_exists(conn, "intermediate.int_order_version_latency"):
        # the one definition of sync latency, over live versions (as the health mart)
        data["latency"] = [r[0] for r in conn.execute(
            "select latency_seconds from intermediate.int_order_version_latency"
            " where source_modified_at >= %s and source_modified_at < %s"
            " and sync_mode = 'live'", (start, end))]
    if relation_exists(conn, "ops.extraction_windows"):
        data["windows"] = conn.execute(
            "select platform, shop_id, sync_mode, window_start, window_end, api_reported_count, orders_landed,"
            " outcome from ops.extraction_windows where window_start >= %s and window_start < %s"
            " and entity = 'orders' order by window_start, platform, shop_id", (start, end)).fetchall()
    if relation_exists(conn, "ops.validation_results"):
        data["checks"] = conn.execute(
            "select distinct on (checkpoint, suite, expectation, description) checkpoint, suite,"
            " coalesce(description, expectation), severity, success, observed, validated_at"
            " from ops.validation_results order by checkpoint, suite, expectation, description,"
            " validated_at desc").fetchall()
    data["recon"], data["queue"] = [], []
    if relation_exists(conn, "marts.fct_order_reconciliation"):
        data["recon"] = conn.execute(
            "select platform, coalesce(difference_category, reconciliation_status), count(*),"
            " sum(difference_amount), string_agg(distinct action, ', ')"
            " from marts.fct_order_reconciliation where reconciliation_date >= %s::date - 7"
            " and reconciliation_date < %s::date group by 1, 2 order by 1, 2",
            (_local(end).date(), _local(end).date())).fetchall()
        data["queue"] = conn.execute(
            "select priority, platform, shop_id, order_id, difference_category, difference_amount,"
            " reconciliation_date from marts.rpt_recon_review_queue order by priority limit 20"
        ).fetchall()
    data["stock"] = []
    if relation_exists(conn, "marts.rpt_oversell_risk"):
        # the scarcest counted SKUs (issue 18), with what puts them at risk
        data["stock"] = conn.execute(
            "select p.merchant_sku, p.title, p.on_hand, p.held, p.reserved,"
            " p.available_to_sell, r.offered, p.oversold,"
            " concat_ws(', ', case when r.oversold_now then 'oversold' end,"
            " case when r.offered_beyond_available then 'offered beyond available' end,"
            " case when r.sells_out_within_hour then 'sells out within the hour' end)"
            " from marts.stock_positions p left join marts.rpt_oversell_risk r using (merchant_sku)"
            " where p.on_hand is not null order by p.available_to_sell, p.merchant_sku limit 10"
        ).fetchall()
    data["shops"] = shop_status(conn)
    if relation_exists(conn, "ops.alerts"):
        data["alerts"] = conn.execute(
            "select to_char(sent_at at time zone 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI'), kind, message"
            " from ops.alerts order by sent_at desc, alert_id limit 50").fetchall()
    return data


STATUS_COLUMNS = ["platform", "shop", "entity", "status", "synced until (UTC+8)",
                  "last sync (UTC+8)", "orders 24h", "rows 24h", "pushed 24h", "push p50 s",
                  "push p95 s", "open windows", "last error"]


def shop_status(conn: psycopg.Connection) -> list[tuple]:
    """marts.rpt_shop_status as `orderhub status` and the report show it
    (issue 20): one row per shop and entity; [] before it exists."""
    if not relation_exists(conn, "marts.rpt_shop_status"):
        return []
    return conn.execute(
        "select platform, shop_id, entity, status,"
        " to_char(synced_until at time zone 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI'),"
        " to_char(last_sync_at at time zone 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI'),"
        " orders_24h, versions_24h, pushed_versions_24h, push_latency_p50_seconds,"
        " push_latency_p95_seconds, open_windows, left(last_error, 80)"
        " from marts.rpt_shop_status order by platform, shop_id, entity").fetchall()


def render(data: dict, start: datetime, end: datetime, title: str = "OrderHub run report") -> str:
    # the registry's colours: one per platform, the same on every chart
    colours = {name: cls.colour for name, cls in clients().items()}
    latency = [float(x) for x in data["latency"]]
    recon_since = f"{_local(end).date() - timedelta(days=7):%Y-%m-%d}"
    figures = [  # (element id, heading, spec or None)
        ("orders-per-hour", "Orders landed per platform per hour",
         charts.orders_per_hour(data["orders"], colours, (start, end))),
        ("latency", f"Sync latency of the {len(latency)} order versions live runs landed",
         charts.latency_histogram(latency)),
        ("completeness", f"Completeness per shop and extraction window ({len(data['windows'])} windows)",
         charts.completeness(data["windows"], (start, end))),
        ("reconciliation", f"Reconciliation by category: orders and differences, {recon_since} to"
                           f" {_local(end).date() - timedelta(days=1):%Y-%m-%d} (Beijing dates)",
         charts.reconciliation(data["recon"], colours)),
    ]
    specs = {chart_id: spec for chart_id, _, spec in figures if spec is not None}
    sections = "".join(
        f'<section><h2>{html.escape(heading)}</h2>'
        + (f'<div class="chart" id="{chart_id}"></div>' if spec is not None
           else f'<p class="empty" id="{chart_id}">no data in this range</p>')
        + "</section>" for chart_id, heading, spec in figures)
    health = _table(["platform", "orders", "latency p50 (s)", "latency p95 (s)", "completeness",
                     "field completeness", "open windows"], data["health"])
    failed_checks = [(c, s, d, sev, obs) for c, s, d, sev, ok, obs, _ in data["checks"] if not ok]
    # "</" never closes the script element early, whatever a shop or SKU is called
    specs_json = json.dumps(specs, ensure_ascii=False).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 28px; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ddd; padding: 3px 8px; text-align: left; }}
.empty {{ color: #888; }} [data-error] {{ color: #b00; }}
</style>
<script>{charts.javascript()}</script>
</head>
<body data-charts-drawn="0">
<h1>{html.escape(title)}</h1>
<p>{_local(start):%Y-%m-%d %H:%M} to {_local(end):%Y-%m-%d %H:%M} (UTC+8), written {datetime.now(PLATFORM_TZ):%Y-%m-%d %H:%M:%S}.
Hover over a chart for its values.</p>
<section><h2>Health per platform</h2>{health}</section>
<section><h2>Shops (marts.rpt_shop_status; `orderhub status`)</h2>
{_table(STATUS_COLUMNS, data.get("shops", []))}</section>
{sections}
<details><summary>Reconciliation as a table</summary>
{_table(["platform", "category / status", "orders", "difference (yuan)", "actions"], data["recon"])}</details>
<section><h2>Review queue (largest 20; marts.rpt_recon_review_queue)</h2>
{_table(["priority", "platform", "shop", "order", "category", "difference (yuan)", "date"], data["queue"])}</section>
<section><h2>Stock: the scarcest SKUs (marts.stock_positions, marts.rpt_oversell_risk)</h2>
{_table(["SKU", "title", "on hand", "held", "reserved", "available", "offered", "oversold", "at risk"],
        data["stock"])}</section>
<section><h2>Failed expectations (latest result of each)</h2>
{_table(["checkpoint", "suite", "expectation", "severity", "observed"], failed_checks)}</section>
<section><h2>Alerts sent</h2>{_table(["sent at (UTC+8)", "kind", "message"], data["alerts"])}</section>
<script>
// Draw every chart as SVG, then say how many have marks with a size (the
// report test reads body[data-charts-drawn] and each chart's data-marks).
const specs = {specs_json};
Promise.all(Object.entries(specs).map(([id, spec]) =>
  vegaEmbed("#" + id, spec, {{renderer: "svg", actions: false}}).then(() => {{
    const chart = document.getElementById(id);
    chart.dataset.marks = String([...chart.querySelectorAll("g.mark-rect > path")].filter(mark => {{
      const box = mark.getBBox(); return box.width > 0 && box.height > 0; }}).length);
  }}).catch(error => {{
    const chart = document.getElementById(id);
    chart.dataset.error = String(error);
    chart.textContent = "This chart could not be drawn: " + error;
  }})
)).then(() => {{
  document.body.dataset.chartsDrawn = String(
    [...document.querySelectorAll("div.chart")].filter(chart => Number(chart.dataset.marks) > 0).length);
}});
</script>
</body></html>
"""


def last_day_of_data(conn) -> tuple[datetime, datetime] | None:
    """The report's default window: the 24 hours up to the end of the hour of
    the newest order version landed (None when nothing has landed)."""
    if conn.execute("select to_regclass('raw.orders')").fetchone()[0] is None:
        return None
    newest = conn.execute("select max(modified_at) from raw.orders").fetchone()[0]
    if newest is None:
        return None
    end = newest.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return end - timedelta(hours=24), end


def write_report(out: Path, start: datetime, end: datetime, url: str | None = None) -> Path:
    from orderhub.config import database_url

    with psycopg.connect(url or database_url()) as conn:
        data = gather(conn, start, end)
    out.write_text(render(data, start, end), encoding="utf-8")
    return out
