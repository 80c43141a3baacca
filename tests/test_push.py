"""Push messages without a broker (issue 17): the Douyin webhook contract, the
detail API, and why a pushed version and a polled one are the same raw row.

The whole push path (sandbox -> intake -> NATS -> stream -> raw, with every
push fault and three crashes) runs in tests/test_end_to_end.py, before the
DAGs poll the same window.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from orderhub.config import parse_time
from orderhub.extract import to_rows
from orderhub.platforms import Credentials, client_class, client_for
from orderhub.platforms.douyin import push_sign
from orderhub.push.messages import PushMessage, PushRejected
from orderhub_tools.sandbox import shop_credentials
from tests.conftest import TEST_SEED

DOUYIN = client_class("douyin")
APP = Credentials("http://unused", "7101234567", "thesecret", "")


def test_event_sign_is_md5_of_key_body_secret():
    # md5sum of the concatenation, computed outside Python
    body = b'[{"tag":"101","msg_id":"1","data":"{}"}]'
    assert push_sign("7101234567", body, "thesecret") == "0bc30f052d7729a0694c67156df1a7e9"


def test_a_push_verifies_only_with_the_apps_secret():
    body = b'[{"tag":"101","msg_id":"m1","data":"{\\"p_id\\":61,\\"shop_id\\":9}"}]'
    good = {"app-id": APP.app_key, "event-sign": push_sign(APP.app_key, body, APP.app_secret)}
    assert DOUYIN.verify_push(good, body, [APP]).answer == {"code": 0, "msg": "success"}
    forged = {**good, "event-sign": push_sign(APP.app_key, body, "guessed")}
    for headers in (forged, {"app-id": APP.app_key}, {**good, "app-id": "another-app"}):
        with pytest.raises(PushRejected):
            DOUYIN.verify_push(headers, body, [APP])
    with pytest.raises(PushRejected):  # the body changed after signing
        DOUYIN.verify_push(good, body.replace(b"61", b"62"), [APP])


def test_messages_name_orders_and_unreadable_ones_say_why():
    item = {"tag": "102", "msg_id": "m2", "data": json.dumps({"p_id": 6123, "shop_id": 44})}
    product = {"tag": "400", "msg_id": "m3", "data": "{}"}  # a product message: not an order
    broken = {"tag": "101", "msg_id": "m4", "data": "{}"}
    messages, malformed = DOUYIN.push_messages(json.dumps([item, product, broken]).encode())
    assert messages == [PushMessage("douyin", "44", "6123", "m2", "102")]
    assert messages[0].subject == "push.douyin.44"
    assert PushMessage.decode(messages[0].encode()) == messages[0]
    assert len(malformed) == 1 and "p_id" in malformed[0].reason
    for body in (b"{not json", b'{"tag": "101"}'):
        messages, malformed = DOUYIN.push_messages(body)
        assert messages == [] and len(malformed) == 1
        assert malformed[0].reason.startswith("douyin push: body is not")


def test_the_detail_of_a_pushed_order_is_the_version_the_poll_lands(sandbox, shops):
    """Push and poll land one raw row per version: the detail API renders an
    order exactly as the search does, so its payload hash is the same."""
    shop = next(s for s in shops if s.platform == "douyin")
    creds = shop_credentials(sandbox.url, TEST_SEED, "douyin", shop.shop_id,
                             [s.shop_id for s in shops if s.platform == "douyin"])
    client = client_for("douyin", creds)
    start = parse_time("2026-11-11T00:00:00+08:00")
    end = start + timedelta(minutes=30)
    world, clock = sandbox.sandbox.world, sandbox.sandbox.clock
    clock.set(end.timestamp() + sandbox.sandbox.spec.index_delay)  # the index holds [start, end)
    polled = client.search_orders(start, end, 0, 100).orders
    # an order whose latest version (what its detail shows now) is in the window
    order = next(o for o in polled
                 if world.find("douyin", str(o["order_id"])).events[world.latest_version(
                     world.find("douyin", str(o["order_id"])), clock())][0] < end.timestamp())
    detail = client.order_detail(str(order["order_id"]))
    pushed_rows, _ = to_rows(client, [detail])
    polled_rows, _ = to_rows(client, [order])
    assert pushed_rows[0].payload_sha256 == polled_rows[0].payload_sha256
    assert client.api_calls[-1].endpoint == "order.orderDetail"
    # an order this shop does not have: the platform's refusal, not a guess
    with pytest.raises(Exception, match="订单不存在"):
        client.order_detail("6999999999999999999")


@pytest.mark.integration
def test_a_slow_push_minute_alerts_once_and_a_lag_episode_once(clean_warehouse):
    from datetime import UTC, datetime

    import psycopg

    from orderhub.alerts import ALERTS_SQL, send_once
    from orderhub.landing import ensure_schema
    from orderhub.push.watch import LagWatch, sync_delay_alerts

    minute = datetime(2026, 11, 11, 0, 5, tzinfo=UTC)
    rows = ([("slow", i, minute, 30) for i in range(19)] + [("slow", 19, minute, 1)]
            + [("fast", i, minute, 2) for i in range(5)]
            + [("slow", 99, minute + timedelta(minutes=1), 40)])  # the next minute: not over yet
    with psycopg.connect(clean_warehouse) as conn:
        ensure_schema(conn)
        conn.execute(ALERTS_SQL)
        for shop, n, at, latency in rows:
            conn.execute(
                "insert into raw.orders (platform, shop_id, order_id, modified_at, payload,"
                " payload_sha256, run_id, platform_fetched_at, intake) values ('douyin', %s, %s,"
                " %s, '{}', %s, 'stream', %s, 'push')",
                (shop, f"{shop}{n}", at - timedelta(seconds=latency), f"{shop}{n}",
                 at + timedelta(seconds=1)))
        alerts = sync_delay_alerts(conn)
        assert [(a.kind, a.shop_id, a.window_start) for a in alerts] == [
            ("sync_delay", "slow", minute)]
        assert alerts[0].value == "31.0s > 15s"  # 30 s old when modified, fetched 1 s later
        assert len(send_once(conn, alerts, "t", [])) == 1
        assert send_once(conn, sync_delay_alerts(conn), "t", []) == []  # sent once

        lag = LagWatch(threshold=10)
        now = datetime(2026, 11, 11, 0, 7, 30, tzinfo=UTC)
        assert lag.check(5, now) == []
        assert len(send_once(conn, lag.check(50, now), "t", [])) == 1
        assert send_once(conn, lag.check(80, now + timedelta(minutes=3)), "t", []) == []
        assert lag.check(0, now + timedelta(minutes=4)) == []  # the episode is over
        again = send_once(conn, lag.check(50, now + timedelta(minutes=9)), "t", [])
        assert len(again) == 1 and again[0].value == "50 > 10"
