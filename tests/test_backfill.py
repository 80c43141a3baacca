"""Alerts that mean something (issue 21): a sync of history is summarized
once, its versions never count as late intake, and the health mart keeps
backfilled versions apart from live ones. A history sync of seven days once
sent 166 sync_latency alerts in one run: every backfilled hour was "late" by days.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from orderhub.alerts import evaluate
from orderhub.config import Shop, parse_time, pii_salt
from orderhub.extract import ExtractionSettings, extract_interval, extract_windows
from orderhub.orchestration import build_marts
from orderhub.transform import ensure_manifest
from orderhub_tools.sandbox import shop_credentials
from orderhub_tools.sandbox.server import SandboxSpec, serve
from tests.truth import reset

pytestmark = pytest.mark.integration

T0 = parse_time("2026-11-11T00:00")
HISTORY = (T0 - timedelta(hours=6), T0)
LIVE = (T0, T0 + timedelta(hours=1))
SHOPS = [Shop("pdd", "pdd-bf", "c"), Shop("douyin", "dy-bf", "c")]


@pytest.fixture(scope="module")
def synced(warehouse_url):
    """Six hours of history synced as a backfill, then one live hour."""
    reset(warehouse_url)
    server = serve(SandboxSpec(seed=6, shops=[(s.platform, s.shop_id) for s in SHOPS], scale=0.05))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for shop in SHOPS:
            creds = shop_credentials(base, 6, shop.platform, shop.shop_id, [shop.shop_id])
            server.sandbox.clock.set((T0 + timedelta(minutes=3)).timestamp())
            extract_windows(shop, [HISTORY], run_id="history", credentials=creds,
                            sync_mode="backfill")
            server.sandbox.clock.set((LIVE[1] + timedelta(minutes=3)).timestamp())
            extract_interval(shop, *LIVE, run_id="hourly", credentials=creds,
                             settings=ExtractionSettings(safety_lag=timedelta(minutes=3)))
    finally:
        server.shutdown()
    ensure_manifest()
    assert build_marts(warehouse_url, pii_salt(), scope="all", echo=lambda out: None) == []
    return warehouse_url


def test_a_history_sync_is_summarized_once(synced, monkeypatch):
    monkeypatch.setenv("ORDERHUB_ALERT_LATENCY_SECONDS", "60")
    with psycopg.connect(synced) as conn:
        alerts = evaluate(conn, *HISTORY, "history", kind="backfill")
    assert [a.kind for a in alerts] == ["backfill_summary"], [a.message for a in alerts]
    assert alerts[0].subject == "history sync done" and "0 still open" in alerts[0].value


def test_backfilled_versions_never_count_as_late_intake(synced, monkeypatch):
    monkeypatch.setenv("ORDERHUB_ALERT_LATENCY_SECONDS", "60")
    with psycopg.connect(synced) as conn:
        late = conn.execute("select count(*) from intermediate.int_order_version_latency"
                            " where sync_mode = 'backfill' and latency_seconds > 60").fetchone()[0]
        history = evaluate(conn, *HISTORY, "history-hour", kind="live")
        live = evaluate(conn, *LIVE, "hourly", kind="live")
    assert late > 0  # the backfilled versions are hours "late"...
    assert [a for a in history if a.kind == "sync_latency"] == []  # ...and never alerted on
    assert [a for a in live if a.kind == "sync_latency"]  # while live intake still is


def test_health_keeps_backfilled_hours_apart(synced):
    with psycopg.connect(synced) as conn:
        rows = conn.execute(
            "select hour_start >= %s, sum(versions_backfilled), max(latency_p95_seconds)"
            " from marts.rpt_ingestion_health group by 1 order by 1", (T0,)).fetchall()
    (_, backfilled, history_p95), (_, live_backfilled, live_p95) = rows
    assert backfilled > 0 and history_p95 is None  # no latency figure from a backfill
    assert live_backfilled == 0 and live_p95 is not None
