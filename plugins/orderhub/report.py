"""``orderhub report --out report.html``: one self-contained HTML page (inline
SVG and CSS, no scripts or fonts from anywhere) for a time range:

* orders per platform per hour (marts.rpt_ingestion_health),
* the sync-latency distribution (every version a live run landed),
* completeness per extraction window (the ledger),
* reconciliation differences by category and amount, and the review queue
  (arrive with the settlement marts, issue 5; the page says so),
* the latest GX results and the alerts sent.

A few lines of inline JavaScript only *check* the drawing: after layout they
count the charts whose marks have a size and write it to
``body[data-charts-drawn]`` (the report test reads it from headless Chromium).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

from orderhub.config import PLATFORM_TZ
from orderhub.landing import relation_exists
from orderhub.platforms import clients

WIDTH, HEIGHT, PAD = 720, 220, 40


@dataclass
class Bar:
    label: str
    value: float
    color: str = "#4c78a8"
    title: str = ""


def bar_chart(chart_id: str, bars: list[Bar], *, unit: str = "", max_value: float | None = None,
              every: int = 1) -> str:
    """A vertical bar chart as inline SVG (labels under every ``every``-th bar)."""
    if not bars:
        return f'<p class="empty" id="{chart_id}">no data in this range</p>'
    top = max_value or max(b.value for b in bars) or 1
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    step = inner_w / len(bars)
    marks = []
    for i, bar in enumerate(bars):
        h = inner_h * bar.value / top
        x = PAD + i * step
        tip = html.escape(bar.title or f"{bar.label}: {bar.value:g}{unit}")
        marks.append(f'<rect class="mark" x="{x + step * 0.1:.1f}" y="{PAD + inner_h - h:.1f}" '
                     f'width="{max(step * 0.8, 1):.1f}" height="{max(h, 0.5):.1f}" fill="{bar.color}">'
                     f'<title>{tip}</title></rect>')
        if i % every == 0:
            marks.append(f'<text x="{x + step / 2:.1f}" y="{HEIGHT - PAD + 14}" '
                         f'text-anchor="middle">{html.escape(bar.label)}</text>')
    axis = (f'<line x1="{PAD}" y1="{PAD + inner_h}" x2="{WIDTH - PAD}" y2="{PAD + inner_h}" stroke="#999"/>'
            f'<text x="{PAD - 4}" y="{PAD + 4}" text-anchor="end">{top:g}{html.escape(unit)}</text>'
            f'<text x="{PAD - 4}" y="{PAD + inner_h}" text-anchor="end">0</text>')
    return (f'<svg class="chart" id="{chart_id}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
            f'height="{HEIGHT}" role="img">{axis}{"".join(marks)}</svg>')


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
            "select platform, shop_id, window_start, window_end, api_reported_count, orders_landed,"
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
    # 1. orders per platform per hour: one bar per (hour, platform), grouped by hour
    hours = sorted({h for h, _, _ in data["orders"]})
    counts = {(h, p): n for h, p, n in data["orders"]}
    # the registry's platforms that have orders here, in its order and colours
    colours = {name: cls.colour for name, cls in clients().items()
               if any(p == name for _, p, _ in data["orders"])}
    platforms = list(colours)
    order_bars = [Bar(f"{_local(h):%H:%M}" if p == platforms[0] else "", float(counts.get((h, p), 0)),
                      colours[p], f"{_local(h):%m-%d %H:%M} {p}: {counts.get((h, p), 0)} orders")
                  for h in hours for p in platforms]
    # 2. latency histogram in 5-minute buckets
    latency = [float(x) for x in data["latency"]]
    buckets: dict[int, int] = {}
    for seconds in latency:
        buckets[int(seconds // 300)] = buckets.get(int(seconds // 300), 0) + 1
    latency_bars = [Bar(f"{b * 5}′", float(buckets.get(b, 0)), "#4c78a8",
                        f"{b * 5}-{b * 5 + 5} min: {buckets.get(b, 0)} versions")
                    for b in range(0, (max(buckets) + 1) if buckets else 0)]
    # 3. completeness per window (landed / reported), red when short
    window_bars = []
    for platform, shop, w_start, w_end, reported, landed, outcome in data["windows"]:
        rate = landed / reported if reported else (1.0 if outcome == "ok" else 0.0)
        short = outcome != "ok" or (reported is not None and landed < reported)
        window_bars.append(Bar("", rate * 100, "#d62728" if short else "#2ca02c",
                               f"{platform}/{shop} [{_local(w_start):%H:%M}, {_local(w_end):%H:%M}):"
                               f" {landed} of {reported} ({outcome})"))
    health = _table(["platform", "orders", "latency p50 (s)", "latency p95 (s)", "completeness",
                     "field completeness", "open windows"], data["health"])
    failed_checks = [(c, s, d, sev, obs) for c, s, d, sev, ok, obs, _ in data["checks"] if not ok]
    legend = " ".join(f'<span class="key" style="background:{c}"></span>{p}' for p, c in colours.items())
    charts = [
        ("Orders per platform per hour", legend + bar_chart("orders-per-hour", order_bars,
                                                           every=max(len(platforms), 1))),
        (f"Sync latency ({len(latency)} versions; platform fetch time minus modified time)",
         bar_chart("latency", latency_bars, every=max(1, len(latency_bars) // 12))),
        (f"Completeness per extraction window ({len(window_bars)} windows; red = short or failed)",
         bar_chart("completeness", window_bars, unit="%", max_value=100)),
    ]
    sections = "".join(f"<section><h2>{html.escape(t)}</h2>{body}</section>" for t, body in charts)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 28px; }}
svg.chart text {{ font-size: 10px; fill: #555; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ddd; padding: 3px 8px; text-align: left; }}
.key {{ display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }}
.empty {{ color: #888; }}
</style></head>
<body data-charts-drawn="0">
<h1>{html.escape(title)}</h1>
<p>{_local(start):%Y-%m-%d %H:%M} to {_local(end):%Y-%m-%d %H:%M} (UTC+8), written {datetime.now(PLATFORM_TZ):%Y-%m-%d %H:%M:%S}</p>
<section><h2>Health per platform</h2>{health}</section>
<section><h2>Shops (marts.rpt_shop_status; `orderhub status`)</h2>
{_table(STATUS_COLUMNS, data.get("shops", []))}</section>
{sections}
<section><h2>Reconciliation: orders by outcome, the 7 days before {_local(end):%Y-%m-%d}</h2>
{_table(["platform", "category / status", "orders", "difference (yuan)", "actions"], data["recon"])}</section>
<section><h2>Review queue (largest 20; marts.rpt_recon_review_queue)</h2>
{_table(["priority", "platform", "shop", "order", "category", "difference (yuan)", "date"], data["queue"])}</section>
<section><h2>Stock: the scarcest SKUs (marts.stock_positions, marts.rpt_oversell_risk)</h2>
{_table(["SKU", "title", "on hand", "held", "reserved", "available", "offered", "oversold", "at risk"],
        data["stock"])}</section>
<section><h2>Failed expectations (latest result of each)</h2>
{_table(["checkpoint", "suite", "expectation", "severity", "observed"], failed_checks)}</section>
<section><h2>Alerts sent</h2>{_table(["sent at (UTC+8)", "kind", "message"], data["alerts"])}</section>
<script>
addEventListener("load", () => {{
  const drawn = [...document.querySelectorAll("svg.chart")].filter(svg =>
    [...svg.querySelectorAll(".mark")].some(m => {{ const b = m.getBBox(); return b.width > 0 && b.height > 0; }}));
  document.body.dataset.chartsDrawn = String(drawn.length);
}});
</script>
</body></html>
"""


def last_day_of_data(conn) -> tuple[datetime, datetime] | None:
    """The report's default window: the 24 hours up to the end of the hour of
    the newest order version landed (None when nothing has landed)."""
    from datetime import timedelta

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
