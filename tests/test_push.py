"""Push messages without a broker (issue 17): the Douyin webhook contract,
the Taobao TMC and Pinduoduo long connections (signed connect, frames,
confirm, redelivery), the detail APIs, and why a pushed version and a polled
one are the same raw row.

The whole push path (sandbox -> intake -> NATS -> stream -> raw, with every
push fault and three crashes) runs in tests/test_end_to_end.py, before the
DAGs poll the same window.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest

from orderhub.config import parse_time
from orderhub.extract import to_rows
from orderhub.platforms import Credentials, client_class, client_for, clients
from orderhub.platforms.base import PlatformError
from orderhub.platforms.douyin import push_sign
from orderhub.platforms.eleme import push_sign as eleme_push_sign
from orderhub.platforms.meituan import sign as meituan_sign
from orderhub.platforms.pdd import push_url_sign
from orderhub.platforms.tmall import tmc_sign
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


MEITUAN = client_class("meituan")
MEITUAN_APP = Credentials("http://unused", "4521", "thesecret", "")
PUSH_FORM = (Path(__file__).parent / "fixtures" / "replay" / "meituan_paid_push.txt").read_text()


def test_meituan_signs_the_url_and_sorted_fields_and_a_push_is_the_whole_order():
    url = "http://intake.example/push/meituan"
    fields = {"timestamp": "1794381613", "order_id": "27061900338318805", "app_id": "4521"}
    # md5sum of url?app_id=…&order_id=…&timestamp=…thesecret, computed outside Python
    assert meituan_sign(url, fields, "thesecret") == "34e1131f08b560b686180ee9a5471c48"
    signed = dict(parse_qsl(PUSH_FORM.strip()), app_id="4521")
    signed["sig"] = meituan_sign(url, signed, "thesecret")
    body = urlencode(signed).encode()
    headers = {"host": "intake.example", ":path": "/push/meituan"}
    assert MEITUAN.verify_push(headers, body, [MEITUAN_APP]).answer == {"data": "ok"}
    behind_a_proxy = {"host": "10.0.0.5:8090", "x-forwarded-proto": "https",
                      "x-forwarded-host": "intake.example", ":path": "/push/meituan"}
    for wrong in ({**headers, ":path": "/push/other"}, behind_a_proxy):  # another URL was signed
        with pytest.raises(PushRejected):
            MEITUAN.verify_push(wrong, body, [MEITUAN_APP])
    with pytest.raises(PushRejected):  # the form changed after signing
        MEITUAN.verify_push(headers, body.replace(b"total=32.0", b"total=3.0"), [MEITUAN_APP])
    messages, malformed = MEITUAN.push_messages(body)
    assert malformed == [] and messages == [PushMessage(
        "meituan", "mt-docs", "27061900338318805", "27061900338318805-1794381612-2", "2")]
    # the push carries the order in the order APIs' types: numbers, JSON strings kept
    order = MEITUAN(MEITUAN_APP).parse_order_response(PUSH_FORM)[0]
    assert order["total"] == Decimal("32.0") and order["ctime"] == 1794381601
    assert json.loads(order["detail"])[0]["app_food_code"] == "TEA-005"
    assert "sig" not in order and "app_id" not in order
    for broken in (b"status=2&app_poi_code=mt-docs", b"order_id=1&app_poi_code=x&utime=soon"):
        messages, malformed = MEITUAN.push_messages(broken)
        assert messages == [] and len(malformed) == 1 and "meituan push" in malformed[0].reason


def test_a_meituan_order_whose_json_string_does_not_parse_is_refused_at_landing():
    order = MEITUAN(MEITUAN_APP).parse_order_response(PUSH_FORM)[0]
    rows, rejected = to_rows(MEITUAN(MEITUAN_APP), [order, dict(order, detail="[{\"sku")])
    assert len(rows) == 1 and len(rejected) == 1
    assert rejected[0].reason == "meituan: detail should hold JSON as a string, and its text is not JSON"


ELEME = client_class("eleme")
# md5sum of 'appId=4521message={"orderId": "3012345", "state": "unprocessed"}requestId=r1'
# 'shopId=160012345timestamp=1794381613type=10userId=0thesecret', upper-cased
ELEME_PUSH_SIGN = "F01DD165529F591D6CA43189D965C25C"


def test_an_eleme_push_verifies_with_its_signature_and_names_one_order():
    message = {"requestId": "r1", "type": 10, "appId": "4521", "shopId": 160012345,
               "message": json.dumps({"orderId": "3012345", "state": "unprocessed"}),
               "timestamp": 1794381613, "userId": 0}
    # md5 of the sorted k=v pairs + the secret, upper-case, computed outside Python
    assert eleme_push_sign(message, "thesecret") == ELEME_PUSH_SIGN
    body = json.dumps({**message, "signature": ELEME_PUSH_SIGN}).encode()
    assert ELEME.verify_push({}, body, [MEITUAN_APP]).answer == {"message": "ok"}
    for forged in (body.replace(b"3012345", b"3012346"), body.replace(b'"4521"', b'"4522"'),
                   b"not json"):
        with pytest.raises(PushRejected):
            ELEME.verify_push({}, forged, [MEITUAN_APP])
    messages, malformed = ELEME.push_messages(body)
    assert malformed == [] and messages == [PushMessage("eleme", "160012345", "3012345", "r1",
                                                        "10")]
    messages, malformed = ELEME.push_messages(body.replace(b"orderId", b"order"))
    assert messages == [] and "eleme push" in malformed[0].reason


def test_long_connection_signs_are_the_platforms_formulas():
    # md5sum / base64 of the concatenations, computed outside Python
    assert tmc_sign("7101234567", "default", 1764547200000, "thesecret") == \
        "C7DE1D8A2B1EB954C95E578F47F67153"
    assert push_url_sign("7101234567", 1764547200000, "thesecret") == \
        "OWRlODU4YzQ3Y2IwNWU3MjdmM2E2ODFjNjM1NTU5MGU="
    url, hello = client_class("pdd").push_connect(
        Credentials("http://unused", "7101234567", "thesecret", "", push_url="ws://h/pdd/message/"),
        1764547200000)
    assert url == "ws://h/pdd/message/7101234567/1764547200000/" \
        "OWRlODU4YzQ3Y2IwNWU3MjdmM2E2ODFjNjM1NTU5MGU%3D" and hello == []
    url, hello = client_class("tmall").push_connect(APP, 1764547200000)
    assert url == "ws://mc.api.taobao.com/"  # the real service when the connection names none
    assert json.loads(hello[0])["sign"] == "C7DE1D8A2B1EB954C95E578F47F67153"


def test_long_connection_frames_name_orders_and_are_confirmed_by_id():
    tmall, pdd = client_class("tmall"), client_class("pdd")
    frame = tmall.push_read(json.dumps({
        "kind": "data", "id": "77", "topic": "taobao_trade_TradeBuyerPay", "user_id": "s1",
        "content": json.dumps({"tid": 2001, "status": "WAIT_SELLER_SEND_GOODS"})}))
    assert frame.message == PushMessage("tmall", "s1", "2001", "77", "taobao_trade_TradeBuyerPay")
    assert json.loads(frame.ack) == {"kind": "confirm", "id": "77"}
    frame = pdd.push_read(json.dumps({
        "id": "88", "commandType": "Common", "sendTime": 1,
        "message": {"type": "pdd_trade_TradeConfirmed", "mallID": "m9",
                    "content": json.dumps({"mall_id": "m9", "tid": "261111-1"})}}))
    assert frame.message == PushMessage("pdd", "m9", "261111-1", "88", "pdd_trade_TradeConfirmed")
    assert json.loads(frame.ack)["commandType"] == "Ack" and json.loads(frame.ack)["id"] == "88"
    # unreadable content: quarantined with the reason, and still confirmed
    broken = tmall.push_read(json.dumps({"kind": "data", "id": "79", "user_id": "s1",
                                         "topic": "taobao_trade_TradeClose", "content": "{}"}))
    assert broken.message is None and "content.tid" in broken.malformed.reason and broken.ack
    # another topic: confirmed, not published; heartbeats and connects read as such
    other = pdd.push_read(json.dumps({"id": "90", "commandType": "Common",
                                      "message": {"type": "pdd_goods_Changed"}}))
    assert other.kind == "other" and other.ack
    assert pdd.push_read(pdd.push_heartbeat()).kind == "heartbeat"
    assert tmall.push_read('{"kind":"connect_failed","msg":"x"}').kind == "refused"


def test_the_message_service_refuses_a_bad_sign_and_redelivers_until_confirmed(sandbox, shops,
                                                                              monkeypatch):
    """The sandbox's TMC and PDD services, spoken to with a plain WebSocket
    client: a wrong secret is refused; a message not confirmed comes again."""
    import dataclasses
    import time

    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    from orderhub_tools.runner import SandboxTarget
    from orderhub_tools.sandbox.push import Pusher

    def app(platform: str, secret: str | None = None) -> Credentials:
        shop = next(s for s in shops if s.platform == platform)
        extra = json.loads(SandboxTarget(sandbox.url, TEST_SEED).connections([shop])[
            f"AIRFLOW_CONN_{shop.conn_id.upper()}"])["extra"]
        creds = shop_credentials(sandbox.url, TEST_SEED, platform, shop.shop_id,
                                 [s.shop_id for s in shops if s.platform == platform])
        return dataclasses.replace(creds, push_url=extra["push_url"],
                                   app_secret=secret or creds.app_secret)

    def now_ms() -> int:
        return int(time.time() * 1000)

    tmall, pdd = client_class("tmall"), client_class("pdd")
    url, _ = pdd.push_connect(app("pdd", "guessed"), now_ms())
    with pytest.raises(InvalidStatus, match="401"):
        connect(url, open_timeout=5).close()
    url, hello = tmall.push_connect(app("tmall", "guessed"), now_ms())
    with connect(url, open_timeout=5) as ws:
        ws.send(hello[0])
        assert tmall.push_read(ws.recv(timeout=5)).kind == "refused"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)

    monkeypatch.setattr(Pusher, "ACK_WAIT", 0.5)
    url, hello = tmall.push_connect(app("tmall"), now_ms())
    start = parse_time("2026-11-11T00:00:00+08:00")
    with connect(url, open_timeout=5) as ws:
        ws.send(hello[0])
        assert tmall.push_read(ws.recv(timeout=5)).kind == "connected"
        sandbox.sandbox.push_control("/_sandbox/push", "POST", {
            "targets": {"tmall": "websocket"}, "start": start.isoformat(), "speed": 600,
            "end": (start + timedelta(minutes=5)).isoformat(), "faults": "none"})
        try:
            first = tmall.push_read(ws.recv(timeout=10)).message
            seen, orders = [first.msg_id], {first.order_id}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                stats = sandbox.sandbox.pusher.stats()
                if stats["cursor"] >= stats["end"] and stats["pending"] == 0:
                    break
                try:
                    frame = tmall.push_read(ws.recv(timeout=1))
                except TimeoutError:
                    continue
                seen.append(frame.message.msg_id)
                orders.add(frame.message.order_id)
                # confirm everything but the first message until it came again
                if frame.message.msg_id != first.msg_id or seen.count(first.msg_id) > 1:
                    ws.send(frame.ack)
            assert seen.count(first.msg_id) >= 2, seen  # not confirmed: sent again
            assert stats["pending"] == 0 and stats["redelivered"] > 0, stats
            named = {o[2] for o in stats["orders_pushed"]}
            assert len(named) > 1 and named == orders  # every message came, and only those
        finally:
            sandbox.sandbox.pusher.close()
            sandbox.sandbox.pusher = None


@pytest.mark.parametrize("platform", [name for name, cls in clients().items()
                                      if cls.push_transport])
def test_the_detail_of_a_pushed_order_is_the_version_the_poll_lands(sandbox, shops, platform):
    """Push and poll land one raw row per version: the detail API renders an
    order exactly as the search does, so its payload hash is the same."""
    shop = next(s for s in shops if s.platform == platform)
    creds = shop_credentials(sandbox.url, TEST_SEED, platform, shop.shop_id,
                             [s.shop_id for s in shops if s.platform == platform])
    client = client_for(platform, creds)
    start = parse_time("2026-11-11T00:00:00+08:00")
    end = start + timedelta(minutes=30)
    world, clock = sandbox.sandbox.world, sandbox.sandbox.clock
    clock.set(end.timestamp() + sandbox.sandbox.spec.index_delay)  # the index holds [start, end)
    polled = client.search_orders(start, end, client.first_page, client.max_page_size).orders
    assert polled

    def latest_in_window(payload) -> bool:
        order = world.find(platform, client.order_identity(payload)[0])
        return order.events[world.latest_version(order, clock())][0] < end.timestamp()

    # an order whose latest version (what its detail shows now) is in the window
    order = next(o for o in polled if latest_in_window(o))
    detail = client.order_detail(client.order_identity(order)[0])
    pushed_rows, _ = to_rows(client, [detail])
    polled_rows, _ = to_rows(client, [order])
    assert pushed_rows[0].payload_sha256 == polled_rows[0].payload_sha256
    assert client.api_calls[-1].endpoint == client.detail_endpoint
    # an order this shop does not have: the platform's refusal, not a guess
    with pytest.raises(PlatformError, match="不存在|not-exist") as refused:
        client.order_detail("2999999999999999999")
    assert not refused.value.retryable


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


def test_the_push_fault_profile_is_push_faults_only():
    from orderhub_tools.sandbox.faults import CHOICES, expand
    from orderhub_tools.sandbox.push import PUSH_FAULTS, push_faults

    assert expand("push") == frozenset()  # no gateway fault
    assert push_faults("push") == push_faults("all") == frozenset(PUSH_FAULTS)
    assert push_faults("flaky") == frozenset()
    assert "push" in CHOICES  # a --faults choice of `orderhub demo` and `sandbox serve`


@pytest.mark.integration
def test_a_message_given_up_on_is_quarantined_for_the_poll(clean_warehouse, shops):
    import psycopg

    from orderhub.push.stream import MAX_DELIVER, Stream

    stream = Stream(shops, clean_warehouse, "nats://unused")
    message = PushMessage("pdd", "pdd-tea", "261111-1", "m1", "pdd_trade_TradeConfirmed")
    for _ in range(2):  # a second consumer giving up on the same message adds nothing
        stream.give_up(message, MAX_DELIVER)
    with psycopg.connect(clean_warehouse) as conn:
        rows = conn.execute("select platform, shop_id, reason from ops.quarantine"
                            " where entity = 'push'").fetchall()
    assert rows == [("pdd", "pdd-tea", f"pdd push: detail of 261111-1 still failing after"
                                         f" {MAX_DELIVER} deliveries; left to the poll")]
