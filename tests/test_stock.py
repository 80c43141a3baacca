"""Stock in the sandbox (issue 18, item 1): each platform keeps its own listed
quantity, sells from it and refuses past zero, so units are oversold exactly
when the channels together offer more than the warehouse holds; the four
stock APIs set those quantities, signed, in each platform's dialect, driven
through the real platform clients; the truth counts the oversold units."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
import requests

from orderhub.config import parse_time
from orderhub.platforms import PlatformError, client_for
from orderhub.platforms.base import StockListing
from orderhub_tools.sandbox import gateway_class, shop_credentials
from orderhub_tools.sandbox.server import Sandbox, SandboxSpec, serve
from orderhub_tools.sandbox.stock import FlashSale, Stock, StockRefused
from orderhub_tools.sandbox.world import World

T0 = parse_time("2026-11-11T00:00:00+08:00")
SHOPS = [("tmall", "tm-1"), ("jd", "jd-1"), ("pdd", "pdd-1"), ("douyin", "dy-1"),
         ("mall", "mall-1")]
STOCK_PLATFORMS = ["tmall", "jd", "pdd", "douyin"]
SALE = {"start": int(T0.timestamp()), "minutes": 4.0, "skus": 2, "on_hand": 20, "rate": 20.0}


def offline(**changes) -> Stock:
    """A flash sale nobody updates, decided to its end."""
    return Stock(World(5, SHOPS, 0.01), FlashSale(**{**SALE, **changes}))


def test_the_mall_has_no_stock_api_and_the_rest_hold_as_their_platforms_do():
    stock = offline()
    assert [p for p, _ in stock.channels] == STOCK_PLATFORMS
    assert {p: gateway_class(p).stock_reduced_on for p in STOCK_PLATFORMS} == {
        "tmall": "created", "jd": "created", "pdd": "paid", "douyin": "created"}


def test_units_are_oversold_exactly_when_the_channels_offer_more_than_is_on_hand():
    everywhere = offline()  # every channel lists the whole on-hand: 4 x 20 offered
    rows = everywhere.truth()
    for row in rows:
        assert row["supply"] == 20
        assert row["oversold"] == row["sold"] - row["supply"] > 0
        assert row["first_oversold_at"] is not None
        for channel in row["channels"].values():
            assert channel["sold"] <= 20  # no channel sells past its own zero ...
            assert channel["refused"] > 0  # ... it refuses the buyers after it
    split = offline(listed=5)  # 4 x 5 = the 20 on hand: the platforms cannot oversell
    for row in split.truth():
        assert row["oversold"] == 0 and row["first_oversold_at"] is None
        assert 0 < row["sold"] <= 20


def test_a_replenishment_raises_the_supply_from_its_moment():
    rows = offline(replenish=10).truth()
    assert all(row["supply"] == 30 and row["oversold"] == max(0, row["sold"] - 30)
               for row in rows)
    stock = offline(replenish=10)
    assert stock.on_hand(stock.sale.start)["FS-001"] == 20
    assert stock.on_hand(stock.sale.replenished_at)["FS-001"] == 30


def test_units_held_by_an_order_closed_unpaid_go_back_on_sale():
    stock = offline()
    stock.advance()
    tmall = [lst for lst in stock.listings if lst.platform == "tmall" and not lst.catalog]
    closed = sum(stock.tally[(lst.channel, lst.merchant.code)].closed for lst in tmall)
    sold = sum(stock.tally[(lst.channel, lst.merchant.code)].sold for lst in tmall)
    assert closed > 0
    # Tmall holds at creation: what is neither sold nor listed is held by no one.
    assert sum(lst.quantity for lst in tmall) == 20 * len(tmall) - sold


# -- the stock APIs, through the real clients and HTTP ----------------------------------
@pytest.fixture(scope="module")
def server():
    server = serve(SandboxSpec(seed=5, shops=SHOPS, scale=0.01, flash_sale=SALE))
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()


def client(server, platform: str):
    shop = dict(SHOPS)[platform]
    creds = shop_credentials(server.url, 5, platform, shop, [shop])
    return client_for(platform, creds, clock=lambda: server.sandbox.clock())


def listing(server, platform: str, code: str = "FS-001") -> tuple[StockListing, int]:
    """The SKU as the platform lists it, and its quantity, from /_sandbox/stock."""
    state = requests.get(server.url + "/_sandbox/stock", timeout=10).json()
    row = next(r for r in state["listings"] if r["platform"] == platform
               and r["merchant_sku"] == code)
    return StockListing(row["product_id"], row["sku_id"], row["outer_id"]), row["quantity"]


@pytest.mark.parametrize("platform", STOCK_PLATFORMS)
def test_each_stock_api_sets_the_listed_quantity(server, platform):
    server.sandbox.clock.set((T0 - timedelta(minutes=5)).timestamp())  # before the sale
    api = client(server, platform)
    sku, _ = listing(server, platform)
    api.set_stock(sku, 7)
    assert listing(server, platform)[1] == 7
    if api.stock_increments:
        api.set_stock(sku, -3, increment=True, request_id=f"{platform}-a")
        assert listing(server, platform)[1] == 4
        api.set_stock(sku, -100, increment=True, request_id=f"{platform}-b")
        assert listing(server, platform)[1] == 0  # a delta never goes below zero
    else:
        with pytest.raises(ValueError, match="only sets"):
            api.set_stock(sku, -3, increment=True)
    by_outer = StockListing(sku.product_id, outer_id=sku.outer_id)
    if platform != "jd":  # JD's stock write names the SKU id only
        api.set_stock(by_outer, 9)
        assert listing(server, platform)[1] == 9
    with pytest.raises(PlatformError) as error:
        api.set_stock(StockListing(sku.product_id, "999999"), 5)  # no such SKU
    assert not error.value.retryable
    with pytest.raises(PlatformError) as error:
        api.set_stock(sku, -1)  # a full quantity below zero
    assert not error.value.retryable
    api.set_stock(sku, 20)
    assert listing(server, platform)[1] == 20


@pytest.mark.parametrize("platform", STOCK_PLATFORMS)
def test_each_listing_api_shows_every_sku_with_its_quantity_page_by_page(server, platform):
    api = client(server, platform)
    api.listing_page_size = 5  # 12 catalog products and 2 flash SKUs: three pages
    listed = api.listed_skus()
    by_outer = {sku.listing.outer_id: sku for sku in listed}
    assert len(listed) == len(by_outer) == 14
    assert {f"TEA-{i:03d}" for i in range(1, 13)} | {"FS-001", "FS-002"} == set(by_outer)
    for code in ("FS-001", "FS-002"):
        expected, quantity = listing(server, platform, code)
        assert by_outer[code].listing == expected and by_outer[code].quantity == quantity
    # What the listing API names is what the stock API takes.
    api.set_stock(by_outer["FS-001"].listing, 11)
    assert listing(server, platform)[1] == 11
    api.set_stock(by_outer["FS-001"].listing, 20)


def test_a_stock_call_with_a_wrong_secret_is_refused(server):
    api = client(server, "tmall")
    sku, before = listing(server, "tmall", "FS-002")
    forged = client_for("tmall", type(api.credentials)(api.credentials.gateway_url,
                                                       api.credentials.app_key, "wrong",
                                                       api.credentials.access_token))
    with pytest.raises(PlatformError) as error:
        forged.set_stock(sku, before + 50)
    assert error.value.kind == "signature"
    assert listing(server, "tmall", "FS-002")[1] == before


def test_a_retried_douyin_delta_changes_the_stock_once(server):
    api = client(server, "douyin")
    sku, _ = listing(server, "douyin", "FS-002")
    api.set_stock(sku, 10)
    for _ in range(3):  # the first call, then two retries of it
        api.set_stock(sku, -2, increment=True, request_id="flash-FS-002-1")
    assert listing(server, "douyin", "FS-002")[1] == 8
    api.set_stock(sku, -2, increment=True, request_id="flash-FS-002-2")
    assert listing(server, "douyin", "FS-002")[1] == 6
    with pytest.raises(ValueError, match="request_id"):
        api.set_stock(sku, -2, increment=True)
    # ... and the platform itself refuses a delta without its key.
    request = api.stock_update_request(sku, -2, increment=True, request_id="")
    body = requests.request(request.method, request.url, params=request.params,
                            data=request.data, headers=request.headers).json()
    assert body["code"] == 30001 and "idempotent_id" in body["sub_msg"]
    assert listing(server, "douyin", "FS-002")[1] == 6
    api.set_stock(sku, 20)


def test_a_pinduoduo_listing_in_a_promotion_cannot_be_reduced():
    sandbox = Sandbox(SandboxSpec(seed=5, shops=SHOPS, scale=0.01,
                                  flash_sale={**SALE, "pdd_promotion": True}))
    sandbox.clock.set((T0 - timedelta(minutes=5)).timestamp())
    gateway = next(g for g in sandbox.gateways if g.platform == "pdd")
    stock = sandbox.world.stock
    row = next(lst for lst in stock.listings if lst.platform == "pdd" and not lst.catalog)
    api = client_for("pdd", shop_credentials("http://sandbox", 5, "pdd", "pdd-1", ["pdd-1"]),
                     clock=sandbox.clock)
    sku = StockListing(row.sku.product_id, row.sku.sku_id)

    def call(quantity: int, increment: bool = False):
        request = api.stock_update_request(sku, quantity, increment=increment, request_id="")
        reply = gateway.serve("/pdd/api/router", {}, request.data, b"")
        return api.parse_stock_update(reply.body.decode())

    call(25)  # raising it is allowed
    assert row.quantity == 25
    with pytest.raises(PlatformError) as error:
        call(-1, increment=True)
    assert error.value.code == "50001" and row.quantity == 25
    with pytest.raises(StockRefused):
        stock.update(row, 3)


def test_flash_sale_orders_reach_the_order_apis_and_the_truth(server):
    """An accepted buyer is an order like any other: its platform's search
    shows it, with the merchant code as its outer id; a refused one is none."""
    server.sandbox.clock.set((T0 + timedelta(minutes=10)).timestamp())
    world = server.sandbox.world
    api = client(server, "tmall")
    found, page = [], api.first_page
    while True:
        result = api.search_orders(T0, T0 + timedelta(minutes=4), page, 100)
        found += result.orders
        if page * 100 >= result.total:
            break
        page += 1
    flash = {o["tid_str"] for o in found
             if any(line["outer_sku_id"].startswith("FS-") for line in o["orders"]["order"])}
    live = {o.order_id for o in world.orders_created("tmall", "tm-1", SALE["start"],
                                                     SALE["start"] + 240) if o.live}
    assert flash == live and len(live) > 10
    truth = {row["order_id"] for row in world.truth(SALE["start"], SALE["start"] + 240)}
    assert live <= truth
    refused = sum(t.refused for t in server.sandbox.world.stock.tally.values())
    assert refused > 0


def test_orderhub_sandbox_truth_kind_stock_counts_the_oversold_units(tmp_path):
    out = tmp_path / "stock.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "orderhub_tools.cli", "sandbox", "truth", "--kind", "stock",
         "--seed", "5", "--scale", "0.01", "--start", "2026-11-11T00:00:00+08:00",
         "--end", "2026-11-11T00:04:00+08:00", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "ORDERHUB_HOME": str(tmp_path)})  # no running sandbox
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert "nobody kept in step" in result.stdout
    assert len(rows) == 3  # the default sale: 3 SKUs
    assert all(row["oversold"] == row["sold"] - row["supply"] > 0 for row in rows)
    assert f"{sum(r['oversold'] for r in rows)} units oversold" in result.stdout


def test_the_demos_sale_plays_again_offline_with_the_stock_calls_it_applied(tmp_path,
                                                                            monkeypatch):
    """The sale decides which buyers get orders, and the stock calls made
    during it decide the sale: `orderhub demo` records them
    (sandbox-sale.json), and the offline truth (`orderhub sandbox truth`,
    no sandbox running) plays the sale again with them, order for order."""
    from orderhub_tools.sandbox.stock import forget_sale, recorded_world, save_sale

    monkeypatch.setenv("ORDERHUB_HOME", str(tmp_path))
    sandbox = Sandbox(SandboxSpec(seed=5, shops=SHOPS, scale=0.01, flash_sale=SALE))
    stock = sandbox.world.stock
    sale_listings = [lst for lst in stock.listings if not lst.catalog]
    for minute, quantity in ((-1, 4), (1, 0), (2, 9)):  # before the sale, then during it
        sandbox.clock.set(SALE["start"] + minute * 60 + 7)
        for i, listing in enumerate(sale_listings):
            stock.update(listing, quantity + i % 3)
    sandbox.clock.set(SALE["start"] + 3600)
    start, end = SALE["start"] - 3600, SALE["start"] + 3600
    played = sandbox.world.truth(start, end)
    save_sale(sandbox.world)

    again = recorded_world(5, SHOPS, 0.01)
    assert again is not None
    assert again.truth(start, end) == played
    assert again.stock.truth() == stock.truth()
    # without the calls it is another sale: more orders, some units sold twice
    alone = World(5, SHOPS, 0.01)
    Stock(alone, FlashSale(**SALE))
    assert len(alone.truth(start, end)) > len(played)
    assert sum(r["oversold"] for r in alone.stock.truth()) > 0
    # another world, or no record: none
    assert recorded_world(6, SHOPS, 0.01) is None
    forget_sale()
    assert recorded_world(5, SHOPS, 0.01) is None
