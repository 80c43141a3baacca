"""The run report's charts (issue 20): Vega-Lite specs written with Altair,
drawn in the page by Vega-Embed, whose JavaScript the page carries inline
(vl-convert's bundle), so the report opens offline from disk.

Times are Beijing wall-clock time. Each is written as if it were UTC and
every time scale is a UTC scale, so the axes read UTC+8 in any browser's time
zone. The axis shows the hour, and the date at midnight, so hours stay legible
over days (Vega thins the labels that would overlap).

Every function returns a spec (a dict) or None when there is nothing to draw.
Money is decimal in the warehouse; it becomes a JSON number here, for drawing
only (the tooltips show it to the fen).
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal

import altair as alt

from orderhub.config import PLATFORM_TZ

WIDTH = 620


COMPLETENESS = {  # status -> colour; short and failed windows are the red ones
    "complete": "#2ca02c", "ok, no count from the platform": "#98df8a",
    "short": "#d62728", "failed": "#7f0000"}


def wall_clock(ts: datetime) -> str:
    """Beijing wall-clock time as an ISO string in UTC (see the module's note)."""
    return ts.astimezone(PLATFORM_TZ).replace(tzinfo=None).isoformat() + "Z"


def _label(ts: datetime) -> str:
    return f"{ts.astimezone(PLATFORM_TZ):%m-%d %H:%M}"


def _spec(chart: alt.TopLevelMixin) -> dict:
    return chart.configure_view(stroke=None).configure_axis(grid=True, gridColor="#eee").to_dict()


def _platform_colours(colours: dict[str, str], values: list[dict]) -> alt.Scale:
    """The registry's colour of each platform drawn, in the registry's order."""
    present = {v["platform"] for v in values}
    drawn = {p: c for p, c in colours.items() if p in present}
    return alt.Scale(domain=list(drawn), range=list(drawn.values()))


def time_x(field: str, title: str, window: tuple[datetime, datetime]) -> alt.X:
    """A time axis over the report's window, in hours, with the date at midnight."""
    return alt.X(field, title=title, scale=alt.Scale(
        type="utc", domain=[wall_clock(window[0]), wall_clock(window[1])]), axis=alt.Axis(
        labelOverlap=True, labelFlush=True,
        labelExpr="utchours(datum.value) == 0 && utcminutes(datum.value) == 0"
                  " ? utcFormat(datum.value, '%m-%d') : utcFormat(datum.value, '%H:%M')"))


def orders_per_hour(rows: list[tuple[datetime, str, int]], colours: dict[str, str],
                    window: tuple[datetime, datetime]) -> dict | None:
    """Orders landed per hour, stacked by platform (marts.rpt_ingestion_health)."""
    if not rows:
        return None
    values = [{"hour": wall_clock(h), "when": _label(h), "platform": p, "orders": int(n)}
              for h, p, n in rows]
    chart = alt.Chart(alt.Data(values=values)).mark_bar().encode(
        x=time_x("utcyearmonthdatehours(hour):T", "hour (UTC+8)", window),
        y=alt.Y("sum(orders):Q", title="orders landed"),
        color=alt.Color("platform:N", scale=_platform_colours(colours, values),
                        legend=alt.Legend(title="platform", orient="right")),
        tooltip=[alt.Tooltip("when:N", title="hour (UTC+8)"), alt.Tooltip("platform:N"),
                 alt.Tooltip("sum(orders):Q", title="orders")],
    ).properties(width=WIDTH, height=220)
    return _spec(chart)


def _bucket_seconds(spread: float) -> int:
    """A round bucket width giving at most 40 buckets over the spread."""
    for width in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400):
        if spread / width <= 40:
            return width
    return int(spread // 40) + 1


def latency_histogram(seconds: list[float]) -> dict | None:
    """Sync latency of every live order version, binned, with its p50 and p95."""
    if not seconds:
        return None
    ordered = sorted(seconds)
    width = _bucket_seconds(ordered[-1] - ordered[0])
    counts: dict[int, int] = {}
    for s in ordered:
        counts[int(s // width)] = counts.get(int(s // width), 0) + 1
    bins = [{"from": b * width / 60, "to": (b + 1) * width / 60, "versions": n,
             "range": f"{b * width / 60:g}-{(b + 1) * width / 60:g} min"} for b, n in sorted(counts.items())]

    def nearest_rank(q: int) -> float:  # the q-th percentile, nearest-rank
        return ordered[max(0, math.ceil(q * len(ordered) / 100) - 1)]

    marks = [{"percentile": f"p{q}", "minutes": round(nearest_rank(q) / 60, 2)} for q in (50, 95)]
    bars = alt.Chart(alt.Data(values=bins)).mark_bar(color="#4c78a8").encode(
        x=alt.X("from:Q", bin="binned", title="sync latency (minutes; fetched minus modified)"),
        x2="to:Q",
        y=alt.Y("versions:Q", title="order versions"),
        tooltip=[alt.Tooltip("range:N", title="latency"), alt.Tooltip("versions:Q")])
    rules = alt.Chart(alt.Data(values=marks)).mark_rule(strokeWidth=2, strokeDash=[5, 3]).encode(
        x="minutes:Q",
        color=alt.Color("percentile:N", scale=alt.Scale(domain=["p50", "p95"], range=["#222", "#d95f02"]),
                        legend=alt.Legend(title="percentile")),
        tooltip=[alt.Tooltip("percentile:N"), alt.Tooltip("minutes:Q", title="minutes")])
    return _spec(alt.layer(bars, rules).properties(width=WIDTH, height=200))


def completeness(windows: list[tuple], window: tuple[datetime, datetime]) -> dict | None:
    """One cell per shop and extraction window, coloured by what landed of what
    the platform reported (the ledger, ops.extraction_windows)."""
    if not windows:
        return None
    values = []
    for platform, shop, mode, start, end, reported, landed, outcome in windows:
        if outcome == "failed":
            status = "failed"
        elif outcome == "partial" or (reported is not None and landed < reported):
            status = "short"
        else:
            status = "complete" if reported is not None else "ok, no count from the platform"
        values.append({
            "shop": f"{platform} / {shop}" + ("" if mode == "live" else f" ({mode})"),
            "from": wall_clock(start), "to": wall_clock(end),
            "window": f"{_label(start)} to {end.astimezone(PLATFORM_TZ):%H:%M}",
            "landed": landed, "reported": "not given" if reported is None else reported,
            "status": status, "outcome": outcome})
    chart = alt.Chart(alt.Data(values=values)).mark_rect(stroke="white", strokeWidth=1).encode(
        x=time_x("from:T", "extraction window (UTC+8)", window),
        x2="to:T",
        y=alt.Y("shop:N", title="platform / shop", sort="ascending"),
        color=alt.Color("status:N", scale=alt.Scale(domain=list(COMPLETENESS),
                                                     range=list(COMPLETENESS.values())),
                        legend=alt.Legend(title="landed of reported")),
        tooltip=[alt.Tooltip("shop:N", title="platform / shop"), alt.Tooltip("window:N"),
                 alt.Tooltip("landed:Q", title="orders landed"),
                 alt.Tooltip("reported:N", title="platform reported"),
                 alt.Tooltip("outcome:N")],
    ).properties(width=WIDTH, height=alt.Step(16))
    return _spec(chart)


def reconciliation(rows: list[tuple], colours: dict[str, str]) -> dict | None:
    """Orders and difference amounts by reconciliation category, per platform."""
    if not rows:
        return None
    values, weight = [], {}
    for platform, category, n, amount, actions in rows:
        amount = amount or Decimal(0)
        values.append({"platform": platform, "category": category, "orders": int(n),
                       "difference": float(amount), "amount": f"{amount:,.2f}",
                       "actions": actions or ""})
        size, count = weight.get(category, (Decimal(0), 0))
        weight[category] = (size + abs(amount), count + int(n))
    # the largest differences first, then the most orders
    order = sorted(weight, key=lambda c: (-weight[c][0], -weight[c][1], c))
    base = alt.Chart(alt.Data(values=values)).mark_bar().encode(
        y=alt.Y("category:N", sort=order, title="category / status"),
        color=alt.Color("platform:N", legend=alt.Legend(title="platform"),
                        scale=_platform_colours(colours, values)),
        tooltip=[alt.Tooltip("category:N"), alt.Tooltip("platform:N"), alt.Tooltip("orders:Q"),
                 alt.Tooltip("amount:N", title="difference (yuan)"), alt.Tooltip("actions:N")])
    chart = alt.hconcat(
        base.encode(x=alt.X("sum(orders):Q", title="orders")).properties(width=230),
        base.encode(x=alt.X("sum(difference):Q", title="difference (yuan)")).properties(width=310),
    ).resolve_scale(color="shared")
    return _spec(chart)


def javascript() -> str:
    """Vega, Vega-Lite and Vega-Embed in one script (no imports, nothing fetched)."""
    import vl_convert
    from altair.utils._importers import vl_version_for_vl_convert

    return vl_convert.javascript_bundle(vl_version=vl_version_for_vl_convert())
