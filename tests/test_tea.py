"""The tea chain's world through Airflow (issue 19): `orderhub demo --world tea`
for one lunch hour, on the test warehouse, its first ten minutes pushed live
(Meituan's and Ele.me's webhooks, SF same-city's status callbacks, through
`orderhub intake`, NATS and `orderhub stream`) with every push fault on: lost,
doubled, late and stormy messages, forged and unreadable ones. Meituan's and Ele.me's stores
and the mini-program shop land equal to the truth, and SF same-city's
deliveries reach marts.fct_deliveries equal to the truth, column by column,
each linked to its order. The hour's one orders_incremental run is the net
under the pushes; the closing repair is left out (`--no-repair`: the repair
path runs in the end-to-end and chaos worlds)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import psycopg
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


@pytest.fixture(scope="module")
def tea_demo(warehouse_url):
    environment = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    result = subprocess.run(
        [sys.executable, "-m", "orderhub_tools.cli", "demo", "--world", "tea", "--fresh",
         "--seed", "27", "--scale", "0.5", "--settlement-days", "0",
         "--start", "2026-11-11T12:00", "--end", "2026-11-11T13:00", "--live", "20",
         "--speed", "30", "--faults", "push", "--no-repair"],
        env={**environment, "ORDERHUB_DATABASE_URL": warehouse_url},
        capture_output=True, text=True, timeout=900)
    return result


def test_the_tea_demo_ends_equal_to_the_truth(tea_demo):
    out = tea_demo.stdout
    assert tea_demo.returncode == 0, out[-3000:] + tea_demo.stderr[-3000:]
    for platform in ("meituan", "eleme", "mall"):
        row = re.search(rf"^{platform}\s+(\d+)\s+(\d+) (=|!=)\s*(\d+)", out, re.M)
        assert row and row.group(3) == "=" and int(row.group(2)) > 0, out[-3000:]
    found = re.search(r"deliveries \(marts.fct_deliveries; sf_same_city\): (\d+) found, (\d+)"
                      r" in the truth, 0 missing, 0 extra, 0 column differences \(equal\)", out)
    assert found and found.group(1) == found.group(2) and int(found.group(1)) > 20, out[-3000:]
    assert re.search(r"marts.live_orders vs the sandbox truth .*: (\d+) orders, 0 missing,"
                     r" 0 duplicated, 0 column differences \(equal\)", out), out[-3000:]


def test_sfs_status_callbacks_land_deliveries_through_the_push_path(tea_demo, warehouse_url):
    """During the live ten minutes SF called back on every status change;
    the intake verified each, refused the forged ones and quarantined the
    unreadable ones, and the stream asked SF and landed the answers (intake
    push), before the poll came by (the net for the callbacks lost)."""
    callbacks = re.search(r"delivery versions landed: (\d+) from status callbacks", tea_demo.stdout)
    assert callbacks and int(callbacks.group(1)) > 5, tea_demo.stdout[-3000:]
    with psycopg.connect(warehouse_url) as conn:
        pushed = conn.execute(
            "select count(*), count(distinct order_id), min(extracted_at)"
            " from raw.deliveries where intake = 'push'").fetchone()
        polled_first = conn.execute(
            "select min(extracted_at) from raw.deliveries where intake = 'poll'").fetchone()[0]
        refused = conn.execute("select count(*) from ops.push_rejections"
                               " where platform = 'sf_same_city'").fetchone()[0]
        unreadable = conn.execute("select count(*) from ops.quarantine where platform ="
                                  " 'sf_same_city' and reason like 'sf_same_city callback%'"
                                  ).fetchone()[0]
        forged_landed = conn.execute("select count(*) from raw.deliveries"
                                     " where order_id like '9%'").fetchone()[0]
    assert pushed[0] == int(callbacks.group(1)) and pushed[1] > 3
    assert polled_first is None or pushed[2] < polled_first  # before the poll's first landing
    assert refused > 0 and forged_landed == 0  # forged callbacks: refused, never landed
    assert unreadable > 0  # seed 27's push faults send SF three unreadable callbacks


def test_every_delivery_is_linked_to_its_order_and_the_rider_is_masked(tea_demo, warehouse_url):
    with psycopg.connect(warehouse_url) as conn:
        deliveries, linked, fees, clear = conn.execute(
            "select count(*), count(o.order_key), sum(d.delivery_fee),"
            " count(*) filter (where d.rider_phone_masked ~ '^[0-9]{11}$')"
            " from marts.fct_deliveries d left join marts.fct_orders o using (order_key)").fetchone()
        statuses = dict(conn.execute(
            "select delivery_status, count(*) from marts.fct_deliveries group by 1").fetchall())
        shops = dict(conn.execute(
            "select platform || '/' || shop_id, count(*) from marts.fct_deliveries"
            " group by 1").fetchall())
    assert deliveries > 20 and linked == deliveries and clear == 0
    assert fees >= 6 * deliveries  # 8 yuan at least, less a 2-yuan coupon
    assert statuses.get("delivered", 0) > 0
    # SF carries the mini-program's orders and one Ele.me store's (商家自配送);
    # the other stores' orders ride with the platforms' own riders
    assert set(shops) == {"mall/tea-mini", "eleme/170022002"}


def test_the_delivery_fee_is_a_cost_of_the_order_it_delivered(tea_demo, warehouse_url):
    with psycopg.connect(warehouse_url) as conn:
        rows = conn.execute(
            "select c.platform, c.platform_settles, c.refund_status_code, c.paid_amount,"
            " c.received_amount, c.delivery_fee, c.net_after_delivery, d.delivery_fee"
            " from marts.fct_order_delivery_costs c join marts.fct_deliveries d using (order_key)"
        ).fetchall()
        delivered = conn.execute("select count(*) from marts.fct_deliveries").fetchone()[0]
    assert len(rows) == delivered
    for platform, settles, refund, paid, received, fee, net, delivery_fee in rows:
        assert fee == delivery_fee
        if platform == "mall":  # its own channel: what the buyer paid, unless refunded
            assert not settles and received == (0 if refund == 2 else paid)
        else:  # a platform that settles: nothing received before its settlement
            assert settles
        assert net == (None if received is None else received - fee)
