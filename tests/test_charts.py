"""The run report's chart specs (orderhub.charts), without a browser: the
times, the window classification and the latency percentiles they draw.
tests/test_health.py and tests/test_reconciliation.py draw them in Chromium."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from orderhub import charts

T0 = datetime(2026, 11, 10, 16, 0, tzinfo=UTC)  # 2026-11-11 00:00 in Beijing


def values(spec: dict) -> list[dict]:
    return spec["data"]["values"] if "data" in spec else spec["layer"][0]["data"]["values"]


def test_times_are_beijing_wall_clock_on_a_utc_scale():
    assert charts.wall_clock(T0) == "2026-11-11T00:00:00Z"
    spec = charts.orders_per_hour([(T0, "jd", 3)], {"tmall": "#f00", "jd": "#c00"},
                                  (T0, T0 + timedelta(hours=24)))
    x = spec["encoding"]["x"]
    assert x["scale"] == {"type": "utc", "domain": ["2026-11-11T00:00:00Z", "2026-11-12T00:00:00Z"]}
    assert x["title"] == "hour (UTC+8)" and spec["encoding"]["y"]["title"] == "orders landed"
    # only the platforms drawn are in the legend, in the registry's colours
    assert spec["encoding"]["color"]["scale"] == {"domain": ["jd"], "range": ["#c00"]}
    assert charts.orders_per_hour([], {}, (T0, T0)) is None


def test_each_window_is_complete_short_failed_or_uncounted():
    hour = timedelta(hours=1)
    windows = [("jd", "1", "live", T0, T0 + hour, 5, 5, "ok"),
               ("jd", "1", "live", T0 + hour, T0 + 2 * hour, 5, 4, "ok"),
               ("pdd", "2", "live", T0, T0 + hour, 5, 5, "partial"),
               ("pdd", "2", "repair", T0, T0 + hour, None, 0, "failed"),
               ("mall", "3", "live", T0, T0 + hour, None, 7, "ok")]
    cells = values(charts.completeness(windows, (T0, T0 + 2 * hour)))
    assert [c["status"] for c in cells] == [
        "complete", "short", "short", "failed", "ok, no count from the platform"]
    assert cells[3]["shop"] == "pdd / 2 (repair)" and cells[1]["window"] == "11-11 01:00 to 02:00"
    assert charts.COMPLETENESS["short"] == "#d62728"


def test_latency_buckets_are_round_and_the_percentiles_nearest_rank():
    seconds = [float(s) for s in range(60, 3660, 60)]  # 1 to 60 minutes, one each
    spec = charts.latency_histogram(seconds)
    bins = spec["layer"][0]["data"]["values"]
    assert {b["to"] - b["from"] for b in bins} == {2.0}  # 59 minutes over at most 40 buckets: 2
    assert sum(b["versions"] for b in bins) == len(seconds)
    rules = {r["percentile"]: r["minutes"] for r in spec["layer"][1]["data"]["values"]}
    assert rules == {"p50": 30.0, "p95": 57.0}


def test_reconciliation_lists_the_largest_differences_first():
    rows = [("jd", "matched", 90, Decimal("0"), "none"),
            ("jd", "rounding", 4, Decimal("0.04"), "auto_write_off"),
            ("tmall", "unbooked_fee", 2, Decimal("-12.50"), "manual_review")]
    spec = charts.reconciliation(rows, {"tmall": "#f00", "jd": "#c00", "pdd": "#fc0"})
    left = spec["hconcat"][0]["encoding"]
    assert left["y"]["sort"] == ["unbooked_fee", "rounding", "matched"]
    assert {v["amount"] for v in spec["data"]["values"]} == {"0.00", "0.04", "-12.50"}
