"""`orderhub bench` at a tiny scale: a smoke test that each scenario runs and
reports (the figures themselves come from `make bench`, docs/benchmarks.md).

`make test` smokes the scenarios that take about two minutes together here
(1, 2, 3, 5a and the peak hour, 6, which also checks every order against the
truth); scenarios 4, 5b and push add about three minutes more at this scale,
so `make test-bench` smokes every scenario (ORDERHUB_BENCH_SMOKE), and
`make bench` runs them all in full."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from orderhub_tools.bench import BENCH_PLATFORMS

pytestmark = pytest.mark.integration

# The rows each scenario reports (the start of their names).
ROWS = {"1": ("1 landing vs the limit",), "2": ("2a landing vs row-by-row", "2b landing vs dlt"),
        "3": tuple(f"3 extraction {platform}" for platform in BENCH_PLATFORMS),  # every coded one
        "4": ("4 incremental scaling",), "5a": ("5a reconciliation from scratch",),
        "5b": ("5b daily reconciliation",), "6": ("6 peak hour end to end",), "push": ("push",),
        "oversell": ("oversell",)}
SMOKE = tuple(os.environ.get("ORDERHUB_BENCH_SMOKE", "1,2,3,5a,6").split(","))


def test_bench_smoke_reports_each_scenario(warehouse_url):
    result = subprocess.run([sys.executable, "-m", "orderhub_tools.cli", "bench", "--scale", "0.0005",
                             "--runs", "1", "--no-write", "--scenarios", ",".join(SMOKE)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "/orderhub_bench" in result.stdout  # never the warehouse itself
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    scenarios = [row.split("|")[1].strip() for row in rows[1:]]
    expected = [prefix for key in SMOKE for prefix in ROWS[key]]
    for prefix in expected:
        assert any(s.startswith(prefix) for s in scenarios), (prefix, scenarios)
    assert len(scenarios) == len(expected), scenarios  # nothing else ran
    measured = {row.split("|")[1].strip(): row.split("|")[2].strip() for row in rows[1:]}
    for name, value in measured.items():
        if name.startswith(("1 ", "2a", "3 ", "4 ", "5a", "5b", "6 ")) or name == "push":
            assert value != "-" and float(value.split()[0].replace(",", "")) > 0, (name, value)
    if "6" in SMOKE:  # the peak hour kept every order of the hour: fct_orders equals the truth
        peak = next(row for row in rows if row.split("|")[1].strip().startswith("6 peak hour"))
        assert "equal to the sandbox truth" in peak, peak
    if "push" in SMOKE:  # versions landed, seen in raw and in marts.live_orders, the poll measured
        push = next(row.split("|") for row in rows if row.split("|")[1].strip() == "push")
        assert "poll p95" in push[3] and "live_orders p50" in push[7], push
    if "oversell" in SMOKE:  # both figures: none oversold with OrderHub, some without
        oversell = next(row.split("|") for row in rows if row.split("|")[1].strip() == "oversell")
        assert oversell[2].strip() == "0.00 units oversold", oversell
        assert int(oversell[3].split()[0].replace(",", "")) > 0, oversell
