"""SF same-city (issue 19): its signature, its answers through the real
client against the sandbox, deliveries that follow their orders, and the
extraction machinery landing them (entity ``deliveries``) once.

The whole path through Airflow and dbt to ``marts.fct_deliveries`` is
tests/test_tea.py (the tea chain's demo)."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import psycopg
import pytest

from orderhub.config import Shop, parse_time
from orderhub.delivery import service_class, services
from orderhub.delivery.sf_same_city import body_text, sign, verify_callback
from orderhub.extract import extract_deliveries, extract_shop
from orderhub.platforms import Credentials, PlatformError
from orderhub_tools.sandbox import shop_credentials
from orderhub_tools.sandbox.delivery import (
    ACCEPTED,
    CANCELLED,
    DELIVERED,
    DELIVERING,
    PREFIX,
    SERVICE,
    WITHDREW,
    deliveries_truth,
    delivery_of,
)
from orderhub_tools.sandbox.gateway import sandbox_credentials
from orderhub_tools.sandbox.server import SandboxSpec, serve
from orderhub_tools.sandbox.world import COMPLETED, PAID, REFUND_REQUESTED, SHIPPED

T0 = parse_time("2026-11-11T11:00")
SEED = 19
SHOP = Shop("mall", "tea-mini", "orderhub_test_tea_mini", delivery=SERVICE,
            delivery_conn_id="orderhub_test_tea_sf")
OTHER = ("meituan", "mt-test")  # a store with riders of its own: SF carries none of its orders


def test_the_signature_is_the_base64_of_the_md5_hex_of_body_dev_id_and_key():
    body = ('{"order_id":"M1","order_type":2,"shop_id":"tea-mini","shop_type":2,'
            '"dev_id":1234567,"push_time":1794369600}')
    # computed with md5sum | base64 in a shell, not with this code
    assert sign(body, "1234567", "abcdef0123456789") == \
        "NWZkZDVkZTJhMGFhNWNkNTRhNDEwNGRmMzQwMjQyMzE="
    assert base64.b64decode(sign(body, "1234567", "k")).decode() == \
        hashlib.md5(f"{body}&1234567&k".encode()).hexdigest()
    assert verify_callback(body, sign(body, "1234567", "k"), "1234567", "k")
    assert not verify_callback(body + " ", sign(body, "1234567", "k"), "1234567", "k")
    assert body_text({"a": "顺丰", "b": 1}) == '{"a":"顺丰","b":1}'


def test_the_registry_of_delivery_services_knows_sf_same_city():
    assert set(services()) == {"sf_same_city"}
    with pytest.raises(ValueError, match="unknown delivery service"):
        service_class("dada")


@pytest.fixture(scope="module")
def tea():
    spec = SandboxSpec(seed=SEED, shops=[(SHOP.platform, SHOP.shop_id), OTHER], scale=1.0,
                       world="tea", deliveries={SHOP.shop_id: SERVICE})
    server = serve(spec)
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    server.sandbox.clock.set((T0 + timedelta(hours=3)).timestamp())
    yield server
    server.shutdown()


def sf_credentials(url: str, secret: str | None = None) -> Credentials:
    app = sandbox_credentials(SEED, SERVICE, [SHOP.shop_id])
    return Credentials(url + PREFIX, app.app_key, secret or app.app_secret, "")


def client(tea, secret: str | None = None, shop_id: str = SHOP.shop_id):
    sf = service_class(SERVICE)(sf_credentials(tea.url, secret), shop_id=shop_id)
    sf.clock = tea.sandbox.clock
    return sf


def paid_orders(tea, platform: str = "mall", shop_id: str = "tea-mini", hours: int = 1) -> list:
    world = tea.sandbox.world
    orders = world.orders_created(platform, shop_id, int(T0.timestamp()),
                                  int(T0.timestamp()) + hours * 3600)
    return [o for o in orders if any(kind == PAID for _, kind in o.events)]


def test_a_delivery_follows_its_order(tea):
    world = tea.sandbox.world
    orders = paid_orders(tea, hours=6)
    cancelled = [o for o in orders if any(kind == REFUND_REQUESTED for _, kind in o.events)]
    assert len(orders) > 100 and cancelled  # both lives are seen
    withdrawn = [delivery_of(world, o) for o in orders
                 if WITHDREW in (s for _, s in delivery_of(world, o).events)]
    assert withdrawn  # a rider gave one back: accepted, withdrew, accepted again
    for delivery in withdrawn:
        assert [s for _, s in delivery.events][:4] == [1, ACCEPTED, WITHDREW, ACCEPTED]
    for order in orders:
        times = {kind: t for t, kind in order.events}
        delivery = delivery_of(world, order)
        steps = dict((status, t) for t, status in delivery.events)
        assert [t for t, _ in delivery.events] == sorted(t for t, _ in delivery.events)
        assert steps[1] > times[PAID]
        if SHIPPED in times:
            assert steps[DELIVERING] == times[SHIPPED]
            assert steps[DELIVERED] == times[COMPLETED]
        else:
            assert steps[CANCELLED] == times[REFUND_REQUESTED]
        assert delivery.real_fen <= delivery.total_fen and delivery.total_fen >= 800


def test_sf_answers_through_the_client_and_refuses_what_it_should(tea):
    order = next(o for o in paid_orders(tea) if any(k == COMPLETED for _, k in o.events))
    payload = client(tea).delivery(order.order_id)
    status, feed = payload["getorderstatus"], payload["listorderfeed"]
    assert status["shop_order_id"] == order.order_id and status["order_status"] == DELIVERED
    assert [step["order_status"] for step in feed["feed"]] == [1, 10, 12, 15, 17]
    assert isinstance(status["real_pay_money"], int)  # fen
    order_id, modified = client(tea).identity("deliveries", payload)
    assert (order_id, int(modified.timestamp())) == (
        order.order_id, max(t for t, k in order.events if k == COMPLETED))
    # not an order SF carries: none; a store of another platform: none
    assert client(tea).delivery("M-no-such-order") is None
    other = paid_orders(tea, *OTHER)[0]
    assert client(tea, shop_id=OTHER[1]).delivery(other.order_id) is None
    with pytest.raises(PlatformError) as refused:
        client(tea, secret="0" * 32).delivery(order.order_id)
    assert (refused.value.code, refused.value.kind) == ("1001", "signature")
    late = client(tea)
    late.clock = lambda: tea.sandbox.clock() - 3600  # push_time an hour off
    with pytest.raises(PlatformError) as skewed:
        late.delivery(order.order_id)
    assert skewed.value.kind == "clock" and skewed.value.retryable


def test_extraction_lands_every_delivery_of_the_shops_orders_once(tea, clean_warehouse):
    """Orders first, then their deliveries, through extract_windows; the
    raw rows are the truth's deliveries, and a second run adds nothing."""
    start, end = T0, T0 + timedelta(hours=2)
    # the moment the run for [start, end) happens: the platforms' index holds the window
    tea.sandbox.clock.set(end.timestamp() + tea.sandbox.spec.index_delay)
    orders_creds = shop_credentials(tea.url, SEED, "mall", "tea-mini", ["tea-mini"])

    def run(run_id: str):
        extract_shop(SHOP, start, end, run_id=run_id, credentials=orders_creds)
        return extract_deliveries(SHOP, [(start, end)], run_id=run_id,
                                  credentials=orders_creds,
                                  delivery_credentials=sf_credentials(tea.url))

    first = run("test-deliveries-1")
    assert first.windows == 2 and first.windows_failed == 0 and first.rows_inserted > 0
    truth = deliveries_truth(tea.sandbox.world, {SHOP.shop_id: SERVICE}, int(start.timestamp()),
                             int(end.timestamp()), tea.sandbox.clock())
    with psycopg.connect(clean_warehouse) as conn:
        landed = conn.execute(
            "select order_id, payload #>> '{getorderstatus,order_status}'"
            " from raw.deliveries where platform = 'mall'").fetchall()
        ledger = conn.execute("select count(*), sum(orders_landed) from ops.extraction_windows"
                              " where entity = 'deliveries' and outcome = 'ok'").fetchone()
    assert sorted(landed) == sorted((r["order_id"], str(r["delivery_status_code"]))
                                    for r in truth)
    assert ledger == (2, len(truth))
    again = run("test-deliveries-2")
    assert again.rows_inserted == 0 and again.deliveries is None  # extract_deliveries' own result
    assert extract_deliveries(Shop("mall", "no-delivery", "c"), [(start, end)],
                              run_id="x") is None


def test_the_truth_command_gives_the_deliveries_as_the_last_run_saw_them(tmp_path):
    """`orderhub sandbox truth --kind deliveries` on the tea chain's shops file:
    the deliveries of the window's orders, by default at its end plus the
    safety lag."""
    import json
    import os
    import subprocess
    import sys

    from orderhub.config import REPO_ROOT, load_shops
    from orderhub_tools.sandbox.world import World

    tea_file = REPO_ROOT / "config" / "worlds" / "tea.yml"
    out = tmp_path / "deliveries.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "orderhub_tools.cli", "sandbox", "truth", "--kind", "deliveries",
         "--seed", "19", "--scale", "0.5", "--start", "2026-11-11T12:00",
         "--end", "2026-11-11T13:00", "--out", str(out)],
        env={**os.environ, "ORDERHUB_SHOPS_FILE": str(tea_file)}, capture_output=True,
        text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    shops = load_shops(tea_file)
    world = World(19, [(s.platform, s.shop_id) for s in shops], 0.5, kind="tea")
    start, end = parse_time("2026-11-11T12:00"), parse_time("2026-11-11T13:00")
    expected = deliveries_truth(world, {s.shop_id: s.delivery for s in shops if s.delivery},
                                int(start.timestamp()), int(end.timestamp()),
                                int(end.timestamp()) + 180)
    assert [r["delivery_id"] for r in rows] == [r["delivery_id"] for r in expected]
    assert {r["shop_id"] for r in rows} == {"tea-mini", "170022002"}
    assert [r["delivery_status_code"] for r in rows] == [
        r["delivery_status_code"] for r in expected]


def test_a_status_callback_is_signed_in_its_url_and_names_the_shop_order(tea):
    """What the sandbox's SF sends in live mode verifies with the shop's SF
    account (the sign in the URL, over the body's exact text) and reads as
    (shop id, shop order id, callback id); a forged or unreadable one does not."""
    from urllib.parse import parse_qsl, urlsplit

    from orderhub.push.messages import PushRejected

    gateway = tea.sandbox.delivery
    sf = service_class(SERVICE)
    account = sf_credentials(tea.url)
    order = paid_orders(tea)[0]
    delivery = delivery_of(tea.sandbox.world, order)
    msg_id, item = gateway.callback_item(delivery, 1)

    def sent(forge: bool = False, raw: bytes | None = None) -> tuple[dict, bytes]:
        _, body = gateway.push_request([item], forge=forge, raw=raw)
        url = gateway.push_target("http://intake/delivery/sf_same_city", body, forge=forge)
        return dict(parse_qsl(urlsplit(url).query)), body

    query, body = sent()
    assert sf.verify_callback_request(query, body, [account]) == account
    assert sf.read_callback(body.decode()) == (SHOP.shop_id, order.order_id, msg_id)
    assert msg_id == f"{delivery.sf_order_id}-{delivery.events[1][1]}-{delivery.events[1][0]}"
    for bad_query, bad_body in (sent(forge=True), ({}, body), (query, body + b" ")):
        with pytest.raises(PushRejected):
            sf.verify_callback_request(bad_query, bad_body, [account])
    for raw in (gateway.push_malformed("m", True), gateway.push_malformed("m", False)):
        query, body = sent(raw=raw)
        assert sf.verify_callback_request(query, body, [account]) == account  # signed ...
        with pytest.raises((KeyError, TypeError, ValueError)):  # ... and unreadable
            sf.read_callback(body.decode())


def test_the_intake_refuses_a_callback_not_signed_by_the_shops_account(clean_warehouse):
    """`POST /delivery/sf_same_city`: a callback signed by another shop's SF
    account, or by none, is refused with SF's error answer and counted in
    ops.push_rejections; a signed one it cannot read is quarantined and
    answered (SF sending it again would not make it readable). None of them
    reaches the broker (this intake has none)."""
    from starlette.testclient import TestClient

    from orderhub.push.intake import Intake, PushApp

    first = Credentials("http://sf", "1111111", "a" * 32, "")
    second = Credentials("http://sf", "2222222", "b" * 32, "")
    intake = Intake("nats://unused", clean_warehouse, {},
                    delivery_apps={SERVICE: [PushApp(first, frozenset({"shop-a"})),
                                             PushApp(second, frozenset({"shop-b"}))]},
                    delivery_shops={SERVICE: {"shop-a": "mall", "shop-b": "mall"}})
    web = TestClient(intake.app())  # no lifespan: no broker connection

    def callback(account: Credentials, body: dict | str):
        text = body if isinstance(body, str) else body_text(body)
        return web.post(f"/delivery/{SERVICE}", content=text.encode(),
                        params={"sign": sign(text, account.app_key, account.app_secret)})

    body = {"sf_order_id": "3001", "shop_id": "shop-b", "shop_order_id": "M1",
            "order_status": 10, "push_time": 1794369600}
    refused = callback(first, body)  # shop-b's callback, signed with shop-a's account
    assert refused.status_code == 401 and refused.json()["error_code"] == 1001
    assert callback(Credentials("http://sf", "2222222", "c" * 32, ""), body).status_code == 401
    unreadable = callback(second, '{"sf_order_id": "3001"}')
    assert unreadable.status_code == 200 and unreadable.json() == {"error_code": 0,
                                                                   "error_msg": "success"}
    assert web.post("/delivery/dada", content=b"{}").status_code == 404
    with psycopg.connect(clean_warehouse) as conn:
        rejections = conn.execute("select reason from ops.push_rejections"
                                  " where platform = %s order by 1", (SERVICE,)).fetchall()
        quarantined = conn.execute("select reason from ops.quarantine where platform = %s",
                                   (SERVICE,)).fetchall()
    assert len(rejections) == 2 and "does not serve it" in rejections[0][0] + rejections[1][0]
    assert len(quarantined) == 1 and "shop order id" in quarantined[0][0]
