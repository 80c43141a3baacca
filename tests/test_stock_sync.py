"""Keeping the channels in step, one pass (issue 18, items 2-4 so far): the
warehouse counted, every channel's listing read, and each channel's offer of
a flash sale's SKUs brought down to its allocation through the platforms'
stock APIs, recorded in ops.stock_updates. Before the sale opens, that alone
makes the sale end with no unit oversold, where the same sale without
OrderHub oversells. Driven through the real clients against the sandbox, on a
real warehouse built by dbt."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest

from orderhub.config import parse_time
from orderhub.landing import connect, ensure_schema
from orderhub.transform import dbt, ensure_manifest
from orderhub_tools.runner import SandboxTarget
from orderhub_tools.sandbox.server import SandboxSpec, serve
from orderhub_tools.sandbox.stock import FlashSale, Stock
from orderhub_tools.sandbox.world import World
from tests.truth import reset

pytestmark = pytest.mark.integration

T0 = parse_time("2026-11-11T00:00:00+08:00")
SALE = {"start": int(T0.timestamp()), "minutes": 4.0, "skus": 2, "on_hand": 20, "rate": 20.0}
# seeds/stock_channels.csv: one shop per platform; Tmall's has priority
SHARES = {"tmall": Decimal("0.30"), "jd": Decimal("0.20"), "pdd": Decimal("0.25"),
          "douyin": Decimal("0.25")}


def allocation(available: int) -> dict[str, int]:
    """Each channel's share rounded down; the priority channel takes the rest."""
    split = {p: int(available * share) for p, share in SHARES.items()}
    split["tmall"] += available - sum(split.values())
    return split


def expected(server) -> dict:
    """What every channel may offer of every SKU before any sale: the
    warehouse's count split by the shares (no order holds anything yet)."""
    from orderhub_tools.sandbox.stock import warehouse_answer

    counts = warehouse_answer(server.sandbox.world, server.sandbox.clock())["items"]
    return {(p, item["sku"]): allocation(item["on_hand"])[p] for item in counts for p in SHARES}


@pytest.fixture(scope="module")
def flash(warehouse_url, shops):
    reset(warehouse_url)
    spec = SandboxSpec(seed=5, shops=[(s.platform, s.shop_id) for s in shops], scale=0.01,
                       flash_sale=SALE)
    server = serve(spec)
    server.sandbox.clock.set((T0 - timedelta(minutes=5)).timestamp())  # before the sale
    target = SandboxTarget(f"http://127.0.0.1:{server.server_address[1]}", spec.seed)
    mp = pytest.MonkeyPatch()
    for name, value in target.connections(shops).items():
        mp.setenv(name, value)
    with connect() as conn:
        ensure_schema(conn)
    ensure_manifest()
    built = dbt("build", check=False)
    assert built.returncode == 0, built.stdout[-3000:]
    yield server
    mp.undo()
    server.shutdown()


def quantities(server) -> dict:
    """What each flash-sale channel offers of each SKU now."""
    stock = server.sandbox.world.stock
    return {(lst.platform, lst.merchant.code): lst.quantity for lst in stock.listings
            if lst.channel in stock.channels}


def updates(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("select platform, merchant_sku, offered, allocation, mode,"
                            " sent_quantity, status from ops.stock_updates"
                            " order by platform, merchant_sku, created_at").fetchall()


def test_a_dry_run_proposes_every_change_and_sends_none(flash, warehouse_url):
    from orderhub.stock import sync

    before = quantities(flash)
    result = sync("dry", dry_run=True)
    # 4 channels x (12 catalog products + 2 flash SKUs), every one offered beyond its share
    assert (result.shops, result.proposed, result.sent) == (4, 56, 0)
    assert quantities(flash) == before
    assert {v for (_, sku), v in before.items() if sku.startswith("FS-")} == {20}
    proposed = updates(warehouse_url)
    assert {row[-1] for row in proposed} == {"proposed"} and len(proposed) == 56
    share = expected(flash)
    for platform, sku, offered, allocated, mode, sent, _ in proposed:
        assert (offered, allocated) == (before[(platform, sku)], share[(platform, sku)])
        # a delta where the platform takes one; JD only sets a quantity
        assert (mode, sent) == (("full", allocated) if platform == "jd"
                                else ("increment", allocated - offered))


def test_a_pass_brings_every_channel_to_its_allocation_and_the_sale_oversells_nothing(
        flash, warehouse_url):
    from orderhub.stock import sync

    result = sync("live")
    assert (result.sent, result.refused, result.unknown) == (56, 0, 0)
    assert quantities(flash) == expected(flash)
    assert {(p, sku): n for (p, sku), n in expected(flash).items()
            if sku.startswith("FS-")} == {(p, f"FS-00{i}"): n for p, n in
                                          {"tmall": 6, "jd": 4, "pdd": 5, "douyin": 5}.items()
                                          for i in (1, 2)}  # 20 units: 6 + 4 + 5 + 5
    assert [row[-1] for row in updates(warehouse_url)].count("ok") == 56
    again = sync("again")  # nothing is offered beyond its allocation any more
    assert (again.proposed, again.sent) == (0, 0)
    assert quantities(flash) == expected(flash)

    flash.sandbox.clock.set((T0 + timedelta(minutes=30)).timestamp())  # the sale plays out
    rows = flash.sandbox.world.stock.truth()
    assert [(r["merchant_sku"], r["oversold"]) for r in rows] == [("FS-001", 0), ("FS-002", 0)]
    assert all(r["sold"] > 0 for r in rows)
    # The same sale, nobody keeping the channels in step: units sold twice.
    shops = flash.sandbox.spec.shops
    alone = Stock(World(5, shops, 0.01), FlashSale(**SALE)).truth()
    assert all(r["oversold"] > 0 for r in alone)
