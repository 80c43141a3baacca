"""Nothing silently dropped: a status the mapping seed lacks fails the DAG run,
and the failure names the platform, the value and how many orders carry it."""

from __future__ import annotations

import psycopg
import pytest

from orderhub.config import parse_time
from orderhub.runner import SandboxTarget, airflow_home, run
from orderhub.sandbox.server import SandboxSpec, serve
from orderhub.sandbox.tmall import UNMAPPED
from tests.truth import reset

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


def test_an_unmapped_status_fails_the_run_and_is_named(warehouse_url, shops):
    reset(warehouse_url)
    spec = SandboxSpec(seed=5, shops=[(s.platform, s.shop_id) for s in shops], scale=0.05,
                       unmapped_status=True)
    server = serve(spec)
    try:
        target = SandboxTarget(f"http://127.0.0.1:{server.server_address[1]}", spec.seed)
        with pytest.raises(RuntimeError, match="last DAG run failed"):
            run(parse_time("2026-11-11T00:00"), parse_time("2026-11-11T01:00"), sandbox=target,
                repair=False)
    finally:
        server.shutdown()
    log = (airflow_home() / "last_orders_incremental.log").read_text()
    assert f"Unmapped platform statuses: tmall order status '{UNMAPPED}'" in log
    assert "Add rows to seeds/platform_status_map.csv" in log
    with psycopg.connect(warehouse_url) as conn:  # raw keeps them; fct_orders was not built
        landed = conn.execute("select count(*) from raw.tmall_orders"
                              " where payload->>'status' = %s", (UNMAPPED,)).fetchone()[0]
        fct_orders = conn.execute("select to_regclass('marts.fct_orders')").fetchone()[0]
    assert landed > 0 and fct_orders is None
