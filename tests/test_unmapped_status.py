"""Nothing silently dropped: a status the mapping seed lacks fails the DAG run,
and the failure names the platform, the value and how many orders carry it."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from expectations.checkpoints import run_check
from orderhub.config import parse_time
from orderhub_tools.runner import SandboxTarget, airflow_home, run
from orderhub_tools.sandbox.server import SandboxSpec, serve
from orderhub_tools.sandbox.tmall import UNMAPPED
from tests.truth import reset

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


def test_an_unmapped_status_fails_the_run_and_is_named(warehouse_url, shops):
    reset(warehouse_url)
    spec = SandboxSpec(seed=5, shops=[(s.platform, s.shop_id) for s in shops], scale=0.05,
                       unmapped_status=True)
    server = serve(spec)
    try:
        target = SandboxTarget(f"http://127.0.0.1:{server.server_address[1]}", spec.seed)
        report = run(parse_time("2026-11-11T00:00"), parse_time("2026-11-11T01:00"),
                     sandbox=target, repair=False)
        assert report.runs and not report.runs[-1][2], "the run must fail"
        assert report.windows_open == 0  # every window was read: the mapping failed it
    finally:
        server.shutdown()
    log = (airflow_home() / "last_orders_incremental.log").read_text()
    assert f"Unmapped platform statuses: tmall order status '{UNMAPPED}'" in log
    assert "Add rows to seeds/platform_mapping.csv (kind status)" in log
    with psycopg.connect(warehouse_url) as conn:
        # Raw keeps them, and fct_orders shows them with no code (never a guessed one)
        # beside the good orders, which still land.
        landed = conn.execute("select count(distinct order_id) from raw.orders__tmall"
                              " where payload->>'status' = %s", (UNMAPPED,)).fetchone()[0]
        uncoded = conn.execute("select count(*) from marts.fct_orders where raw_order_status = %s"
                               " and order_status_code is null", (UNMAPPED,)).fetchone()[0]
        coded = conn.execute("select count(*) from marts.fct_orders"
                             " where order_status_code is not null").fetchone()[0]
    assert landed > 0 and uncoded == landed and coded > 0

    # The GX checkpoint fails too, and its observed rows name platform and value.
    outcome = run_check("mapping_consistency", warehouse_url)
    assert not outcome.success
    unmapped = [f for f in outcome.critical_failures
                if "order_status_code is null" in str(f["kwargs"])]
    assert unmapped and UNMAPPED in str(unmapped[0]["examples"]), outcome.critical_failures

    # `orderhub mapping check` names it and gives the seed row to paste.
    report = subprocess.run([sys.executable, "-m", "orderhub_tools.cli", "mapping", "check"],
                            capture_output=True, text=True)
    assert report.returncode == 1
    assert f"tmall,status,,,,,,,,{UNMAPPED},NO_REFUND," in report.stdout
