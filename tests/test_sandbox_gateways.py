"""The sandbox speaks each platform's dialect: signatures, limits, paging, wrappers.
Driven through the real platform clients, so both sides are exercised."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
import requests

from orderhub.config import parse_time
from orderhub.platforms import Credentials, PlatformError, client_for, names
from orderhub_tools.sandbox import shop_credentials

T0 = parse_time("2026-11-11T00:00")


def creds(sandbox, shops, platform) -> Credentials:
    shop_ids = [s.shop_id for s in shops if s.platform == platform]
    return shop_credentials(sandbox.url, sandbox.sandbox.spec.seed, platform, shop_ids[0],
                            shop_ids)


@pytest.fixture(autouse=True)
def clock(sandbox):
    sandbox.sandbox.clock.set((T0 + timedelta(hours=2)).timestamp())


def index_holds_the_first_half_hour(sandbox) -> None:
    """The clock just after [T0, T0 + 30 min) is indexed: every order that
    changed in it is found there (a food-delivery order, delivered within the
    hour, has moved on by T0 + 2 h)."""
    sandbox.sandbox.clock.set((T0 + timedelta(minutes=30)).timestamp()
                              + sandbox.sandbox.spec.index_delay)


# The platform's real error body for bad credentials: a bad signature where
# the platform signs its calls, an unknown token where it does not (the mall).
BAD_CREDENTIALS = {
    "tmall": lambda body: body["error_response"]["code"] == 25
    and body["error_response"]["msg"] == "Invalid signature",
    "jd": lambda body: body["error_response"]["code"] == "19"
    and "en_desc" in body["error_response"] and "zh_desc" in body["error_response"],
    "pdd": lambda body: body["error_response"]["error_code"] == 20004
    and {"error_msg", "sub_msg", "request_id"} <= set(body["error_response"]),
    "douyin": lambda body: body["code"] == 40004 and {"msg", "sub_code", "log_id"} <= set(body),
    "meituan": lambda body: body["error"]["code"] == 703 and body["data"] == "ng"
    and body["error"]["msg"] == "签名验证错误",
    "eleme": lambda body: body["error"]["code"] == "INVALID_SIGNATURE" and body["result"] is None
    and "id" in body,
    "mall": lambda body: body["error"]["code"] == "UNAUTHORIZED" and body["error"]["message"],
}


def test_every_registered_platform_has_its_dialect_tested():
    assert set(BAD_CREDENTIALS) == set(names())


@pytest.mark.parametrize("platform", names())
def test_wrong_credentials_get_the_platforms_error_body(sandbox, shops, platform):
    good = creds(sandbox, shops, platform)
    client = client_for(platform, replace(good, app_secret="not-the-secret",
                                          access_token="not-the-token"))
    request = client.order_search_request(T0, T0 + timedelta(minutes=30), client.first_page, 10)
    response = requests.request(request.method, request.url, params=request.params,
                                data=request.data, headers=request.headers)
    body = response.json()
    assert BAD_CREDENTIALS[platform](body), body
    client.last_status = response.status_code
    with pytest.raises(PlatformError) as err:
        client.parse_order_search(response.text)
    signs = platform != "mall"  # the mall signs nothing: its token is the credential
    assert err.value.kind == ("signature" if signs else "auth") and not err.value.retryable


@pytest.mark.parametrize("platform", names())
def test_good_credentials_return_orders_in_the_platforms_wrapper(sandbox, shops, platform):
    index_holds_the_first_half_hour(sandbox)
    client = client_for(platform, creds(sandbox, shops, platform))
    size = client.max_page_size  # 100; Ele.me 50
    page = client.search_orders(T0, T0 + timedelta(minutes=30), client.first_page, size)
    assert page.total > 0 and len(page.orders) == min(page.total, size)
    order_id, modified = client.order_identity(page.orders[0])
    assert order_id and T0 <= modified < T0 + timedelta(minutes=30)


def test_pdd_rejects_windows_over_30_minutes(sandbox, shops):
    client = client_for("pdd", creds(sandbox, shops, "pdd"))
    with pytest.raises(PlatformError) as err:
        client.search_orders(T0, T0 + timedelta(minutes=31), 1, 100)
    assert err.value.code == "10000" and "30分钟" in err.value.message


def test_tmall_rejects_page_size_over_100(sandbox, shops):
    client = client_for("tmall", creds(sandbox, shops, "tmall"))
    with pytest.raises(PlatformError) as err:
        client.search_orders(T0, T0 + timedelta(minutes=30), 1, 101)
    assert err.value.code == "41"


def test_douyin_pages_count_from_zero_and_jd_from_one(sandbox, shops):
    dy = client_for("douyin", creds(sandbox, shops, "douyin"))
    first = dy.search_orders(T0, T0 + timedelta(hours=1), 0, 5)
    second = dy.search_orders(T0, T0 + timedelta(hours=1), 1, 5)
    assert first.orders and {o["order_id"] for o in first.orders}.isdisjoint(
        o["order_id"] for o in second.orders)
    jd = client_for("jd", creds(sandbox, shops, "jd"))
    with pytest.raises(PlatformError):
        jd.search_orders(T0, T0 + timedelta(hours=1), 0, 5)


def test_units_and_formats_follow_each_platform(sandbox, shops):
    """Money: yuan strings (TOP, JOS), yuan numbers (PDD), integer fen (Doudian),
    yuan floats with JSON strings inside (Meituan)."""
    index_holds_the_first_half_hour(sandbox)
    raw = {}
    for platform in ("tmall", "jd", "pdd", "douyin", "meituan"):
        client = client_for(platform, creds(sandbox, shops, platform))
        request = client.order_search_request(T0, T0 + timedelta(minutes=30), client.first_page, 5)
        raw[platform] = requests.request(request.method, request.url, params=request.params,
                                         data=request.data, headers=request.headers).text
    trade = json.loads(raw["tmall"])["trades_sold_increment_get_response"]["trades"]["trade"][0]
    assert isinstance(trade["payment"], str) and trade["payment"].count(".") == 1
    assert trade["orders"]["order"], "sub-orders present"
    jd_order = json.loads(raw["jd"])["jingdong_pop_order_search_responce"]["searchorderinfo_result"]["orderInfoList"][0]
    assert isinstance(jd_order["orderPayment"], str)
    pdd_order = json.loads(raw["pdd"])["order_sn_increment_get_response"]["order_sn_list"][0]
    assert isinstance(pdd_order["pay_amount"], (int, float))
    dy_order = json.loads(raw["douyin"])["data"]["shop_order_list"][0]
    assert isinstance(dy_order["pay_amount"], int) and isinstance(dy_order["update_time"], int)
    mt_order = json.loads(raw["meituan"])["data"][0]
    assert isinstance(mt_order["total"], float) and isinstance(mt_order["utime"], int)
    assert isinstance(mt_order["package_bag_money"], int)  # fen
    assert isinstance(mt_order["detail"], str) and json.loads(mt_order["detail"])[0]["quantity"]
    assert isinstance(mt_order["extras"], str)


def test_clock_hides_versions_not_yet_indexed(sandbox, shops):
    client = client_for("tmall", creds(sandbox, shops, "tmall"))
    sandbox.sandbox.clock.set((T0 + timedelta(minutes=10)).timestamp())
    early = client.search_orders(T0, T0 + timedelta(minutes=30), 1, 100).total
    sandbox.sandbox.clock.set((T0 + timedelta(hours=1)).timestamp())
    later = client.search_orders(T0, T0 + timedelta(minutes=30), 1, 100).total
    assert early < later


def test_transport_errors_do_not_leak_credentials_into_messages():
    secret_token = "tok-SECRET-123"
    client = client_for("douyin", Credentials("http://127.0.0.1:9", "key", "secret", secret_token))
    with pytest.raises(PlatformError) as err:
        client.search_orders(T0, T0 + timedelta(minutes=30), 0, 10)
    assert err.value.retryable and err.value.kind == "transport"
    assert secret_token not in str(err.value) and "secret" not in str(err.value)
    assert secret_token not in repr(client.credentials)


def test_a_client_that_went_away_is_one_line_not_a_traceback(capfd):
    """At a peak, clients time out and retry; the sandbox says so in one line."""
    import socket
    import threading
    import time
    from http.server import BaseHTTPRequestHandler

    from orderhub_tools.sandbox.server import SandboxServer

    class Gone(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            raise BrokenPipeError(32, "Broken pipe")

    server = SandboxServer(("127.0.0.1", 0), Gone)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(server.server_address) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: sandbox\r\n\r\n")
            client.recv(1)
        time.sleep(0.2)
    finally:
        server.shutdown()
    err = capfd.readouterr().err
    assert "went away (BrokenPipeError)" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("platform", ["meituan", "eleme"])
def test_offset_paged_bills_are_read_to_the_end_and_match_the_world(sandbox, shops, platform,
                                                                     monkeypatch):
    """Meituan's bill list (fen) and Ele.me's finance records (yuan, outgo
    negative) page by offset: every line of a day once, as the world settled it."""
    import importlib

    from orderhub_tools.sandbox.gateway import fen

    module = importlib.import_module(f"orderhub.platforms.{platform}")
    monkeypatch.setattr(module, "BILL_PAGE_SIZE" if platform == "meituan"
                        else "FINANCE_PAGE_SIZE", 3)  # pages of 3: several of them
    client = client_for(platform, creds(sandbox, shops, platform))
    shop_id = next(s.shop_id for s in shops if s.platform == platform)
    gateway = next(g for g in sandbox.sandbox.gateways if g.platform == platform)
    day = parse_time("2026-11-10T00:00")
    sandbox.sandbox.clock.set((day + timedelta(days=2)).timestamp())
    world_lines = gateway.settlement_lines(shop_id, int(day.timestamp()),
                                           int((day + timedelta(days=1)).timestamp()))
    assert len(world_lines) > 3
    lines, cursor, pages = [], None, 0
    while True:
        page = client.search_settlements(day, day + timedelta(days=1), cursor)
        lines += page.lines
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(lines) == len(world_lines) == page.total and pages == -(-len(lines) // 3)
    assert [client.line_identity(line)[0] for line in lines] == [
        line.order_id for line in world_lines]
    first, truth = lines[0], world_lines[0]
    if platform == "meituan":
        assert first["wm_poi_receive_cent"] == fen(truth.settle_amount)
    else:
        assert first["income"] == truth.settle_amount
        assert first["commission"] == -truth.commission
