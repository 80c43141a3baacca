"""The chaos suite: every fault profile, through the real DAGs, against the truth.

One world, one shop per profile (and one with ``all``), spread over the
platforms; seed 11 (``ORDERHUB_CHAOS_SEEDS`` for more). For each seed, on a
fresh warehouse:

    orders_incremental  for [T0, T1)          at platform time T1 + lag
    orders_repair       for [T0, T1)          at platform time T1 + lag
    orders_repair       for [T0, T1), settled at platform time T1 + 4 h + lag

then every shop's fct_orders rows must equal ``orderhub sandbox truth``: no
order missing, none duplicated, every order at its latest version; and every
ledger window must be ok. The earlier runs leave dbt and GX to the last one
(``--mark-success-pattern``), which builds and checks the marts.
"""

from __future__ import annotations

import os
from datetime import timedelta

import psycopg
import pytest
import yaml

from orderhub.config import parse_time
from orderhub.platforms import names
from orderhub_tools.runner import SandboxTarget, run
from orderhub_tools.sandbox.delivery import deliveries_truth
from orderhub_tools.sandbox.faults import ALL, PROFILES
from orderhub_tools.sandbox.server import SandboxSpec, serve
from tests.truth import cli_truth, differences, fct_orders, reset

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

T0, T1 = parse_time("2026-11-11T00:00"), parse_time("2026-11-11T01:00")
SCALE = 0.03
CHAOS = [*PROFILES, ALL]  # none, flaky, incident, ..., skew, all
# Each platform gets several profiles; request-count faults go where windows
# are short (30 minutes: Tmall, PDD), so a small world still meets them.
# The brand's own shop (config only) takes a paging fault.
PLATFORM_OF = {"none": "jd", "flaky": "pdd", "incident": "jd", "throttle": "tmall",
               "drift": "pdd", "late": "douyin", "truncated": "tmall", "dup": "mall",
               "skew": "douyin", "all": "tmall"}
# The food-delivery sources run a shop with every fault on. (A profile of its own
# on their one-day windows meets its fault only with luck: Ele.me's skew shop,
# a page or two a run, once met none.)
ALL_TOO = ["meituan", "eleme"]
# SF same-city (issue 19) delivers the orders of a brand's-own-shop store
# with every fault on: on its orders' gateway and on SF's.
DELIVERED = {f"chaos-{ALL}-sf": "sf_same_city"}
SHOPS = {**{f"chaos-{profile}": (PLATFORM_OF[profile], profile) for profile in CHAOS},
         **{f"chaos-{ALL}-{platform}": (platform, ALL) for platform in ALL_TOO},
         **{shop_id: ("mall", ALL) for shop_id in DELIVERED}}
# What each profile's gateway must have done for the run to count as tested.
EVIDENCE = {"flaky": "flaky", "incident": "incident", "throttle": "throttle", "drift": "drift",
            "late": "late", "truncated": "truncated", "dup": "dup", "skew": "skew"}


@pytest.fixture(scope="module")
def chaos_shops(tmp_path_factory):
    shops = [{"platform": platform, "shop_id": shop_id,
              "conn_id": "orderhub_" + shop_id.replace("-", "_"), "faults": profile}
             for shop_id, (platform, profile) in SHOPS.items()]
    for shop in shops:
        if shop["shop_id"] in DELIVERED:
            shop.update(delivery=DELIVERED[shop["shop_id"]],
                        delivery_conn_id=shop["conn_id"] + "_delivery")
    assert set(PLATFORM_OF) == set(CHAOS)
    assert {platform for platform, _ in SHOPS.values()} == set(names())  # every platform
    path = tmp_path_factory.mktemp("chaos") / "shops.yml"
    path.write_text(yaml.safe_dump({"shops": shops}))
    return path, shops


# One seed in `make test` (the DAG wiring under every fault, once per world;
# tests/test_chaos_net.py takes the same machinery through 50 fresh seeds);
# ORDERHUB_CHAOS_SEEDS=11,23 runs more (`make test-chaos`).
SEEDS = [int(s) for s in os.environ.get("ORDERHUB_CHAOS_SEEDS", "11").split(",")]


@pytest.fixture(scope="module", params=SEEDS, ids=lambda seed: f"seed{seed}")
def chaos_run(request, warehouse_url, chaos_shops, tmp_path_factory, monkeypatch_module):
    seed = request.param
    path, shops = chaos_shops
    monkeypatch_module.setenv("ORDERHUB_SHOPS_FILE", str(path))
    monkeypatch_module.setenv("ORDERHUB_BREAKER_COOLDOWN_SECONDS", "3")
    # retries 0.2, 0.4, ... 3.2 s apart: 6.2 s in all, past the 3 s incidents
    monkeypatch_module.setenv("ORDERHUB_RETRY_BASE_SECONDS", "0.2")
    monkeypatch_module.setenv("ORDERHUB_PAGE_SIZE", "5")  # many pages: paging faults need them
    reset(warehouse_url)
    spec = SandboxSpec(seed=seed, shops=[(s["platform"], s["shop_id"]) for s in shops],
                       scale=SCALE, shop_faults={s["shop_id"]: s["faults"] for s in shops},
                       incident_seconds=3, deliveries=DELIVERED)
    server = serve(spec)
    try:
        target = SandboxTarget(f"http://127.0.0.1:{server.server_address[1]}", seed)
        report = run(T0, T1, sandbox=target, settle=timedelta(hours=4), defer_marts=True)
    finally:
        server.shutdown()
    truth = cli_truth(seed, SCALE, T0, T1, tmp_path_factory.mktemp("truth") / "truth.jsonl")
    injected = {shop_id: dict(f.injected) for shop_id, f in server.sandbox.faults.items()}
    # SF's gateway: its own faults, and the deliveries as the last run saw them
    injected |= {f"{shop_id}/sf": dict(f.injected)
                 for shop_id, f in server.sandbox.delivery.faults.items()}
    delivered = deliveries_truth(server.sandbox.world, DELIVERED, int(T0.timestamp()),
                                 int(T1.timestamp()), server.sandbox.clock())
    return report, truth, fct_orders(warehouse_url), injected, delivered


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("shop_id", list(SHOPS))
def test_every_order_arrives_at_its_latest_version(chaos_run, shop_id):
    _, truth, actual, _, _ = chaos_run
    expected = [r for r in truth if r["shop_id"] == shop_id]
    assert expected, f"the world has no orders for {shop_id} in the window"
    diff = differences([r for r in actual if r["shop_id"] == shop_id], expected)
    assert diff == {"missing": [], "unexpected": [], "duplicated": 0, "columns": []}, diff


@pytest.mark.parametrize("profile", sorted(EVIDENCE))
def test_the_fault_really_happened(chaos_run, profile):
    _, _, _, injected, _ = chaos_run
    assert injected[f"chaos-{profile}"].get(EVIDENCE[profile], 0) > 0
    for shop_id, (platform, profile) in SHOPS.items():
        if profile == ALL:
            assert injected[shop_id], f"the {platform} shop with every fault met faults too"


def test_every_ledger_window_is_ok_after_repair(chaos_run, warehouse_url):
    report, _, _, _, _ = chaos_run
    with psycopg.connect(warehouse_url) as conn:
        open_windows = conn.execute(
            "select platform, shop_id, window_start, outcome, last_error from ops.extraction_windows"
            " where outcome <> 'ok' or orders_landed < api_reported_count").fetchall()
    assert open_windows == []
    assert report.windows_open == 0


@pytest.mark.parametrize("shop_id", list(DELIVERED))
def test_every_delivery_arrives_at_its_latest_state_through_sfs_faults(chaos_run, shop_id,
                                                                       warehouse_url):
    """SF same-city's gateway failed, throttled, cut answers short and kept
    another clock; fct_deliveries still has every delivery of the shop's
    orders, once, in the state SF showed the last run."""
    _, _, _, injected, delivered = chaos_run
    assert injected[f"{shop_id}/sf"], "SF's gateway met no fault"
    expected = {r["order_id"]: (r["delivery_id"], str(r["delivery_status_code"]),
                                r["delivery_fee"]) for r in delivered if r["shop_id"] == shop_id}
    assert expected, f"no delivery of {shop_id}'s orders in the window"
    with psycopg.connect(warehouse_url) as conn:
        rows = conn.execute(
            "select order_id, delivery_id, raw_delivery_status, (delivery_fee * 100)::integer"
            " from marts.fct_deliveries where shop_id = %s", (shop_id,)).fetchall()
    assert {order_id: rest for order_id, *rest in rows} == {
        order_id: list(values) for order_id, values in expected.items()}
    assert len(rows) == len(expected)
