"""Kill the loader with SIGKILL mid-landing, re-run, and get identical marts.

``orderhub extract`` (the by-hand loader; the DAG task calls the same code) is
stopped with SIGKILL while a window's transaction has inserted rows but not
committed. Nothing of that window may remain; re-running lands everything;
the marts then equal those of a run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from orderhub.config import parse_time
from orderhub.transform import dbt, ensure_manifest
from orderhub_tools.runner import SandboxTarget
from tests.truth import mart_digest, raw_counts, reset

pytestmark = pytest.mark.integration

START, END = parse_time("2026-11-11T00:00"), parse_time("2026-11-11T01:00")


def extract(env, *extra):
    return subprocess.Popen([sys.executable, "-m", "orderhub_tools.cli", "extract", "--platform", "pdd",
                             "--start", START.isoformat(), "--end", END.isoformat(), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def build_marts() -> str:
    result = dbt("build", check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    return result.stdout


@pytest.fixture()
def sandbox_state(sandbox):
    """`orderhub extract` finds the sandbox the way a developer's shell does."""
    from datetime import timedelta

    sandbox.sandbox.clock.set((END + timedelta(minutes=3)).timestamp())
    path = SandboxTarget.state_file()
    saved = path.read_text() if path.exists() else None
    path.write_text(json.dumps({"url": sandbox.url, "seed": sandbox.sandbox.spec.seed}))
    yield
    if saved is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(saved)


LANDED = ("landed_at",)


def test_sigkill_mid_landing_then_rerun_gives_identical_marts(warehouse_url, sandbox_state,
                                                              tmp_path):
    ensure_manifest()
    env = {**os.environ, "ORDERHUB_DATABASE_URL": warehouse_url}

    # A run that is never interrupted, for reference.
    reset(warehouse_url)
    assert extract(env).wait(timeout=120) == 0
    build_marts()
    # landed_at is when a version landed: two separate landings differ there
    # and nowhere else.
    reference = (raw_counts(warehouse_url), mart_digest(warehouse_url, "fct_orders", LANDED))

    # The same run, killed while the first window's transaction is open.
    reset(warehouse_url)
    marker = tmp_path / "paused"
    victim = extract({**env, "ORDERHUB_FAULT_PAUSE_BEFORE_COMMIT": "30",
                      "ORDERHUB_FAULT_PAUSE_MARKER": str(marker)})
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert victim.poll() is None and time.monotonic() < deadline, victim.stdout.read()
        time.sleep(0.1)
    with psycopg.connect(warehouse_url) as conn:  # the rows are in, uncommitted
        in_flight = conn.execute("select count(*) from pg_stat_activity"
                                 " where state = 'idle in transaction'").fetchone()[0]
    assert in_flight >= 1
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    with psycopg.connect(warehouse_url) as conn:
        assert conn.execute("select count(*) from raw.orders__pdd").fetchone()[0] == 0
        assert conn.execute("select count(*) from ops.extraction_windows").fetchone()[0] == 0

    # Re-run: everything lands, the marts equal the uninterrupted run's.
    assert extract(env).wait(timeout=120) == 0
    build_marts()
    assert (raw_counts(warehouse_url), mart_digest(warehouse_url, "fct_orders", LANDED)) == reference
    assert reference[0]["pdd"] > 0
