"""Small, fast facts: exact JSON, windows, the world's determinism and config."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from orderhub import jsonutil
from orderhub.config import parse_time
from orderhub.extract import windows
from orderhub.platforms.base import loads
from orderhub_tools.sandbox.world import World


def test_money_round_trips_exactly_and_floats_are_refused():
    text = '{"b":[1,2.50],"a":4.5,"s":"茶"}'
    value = loads(text)
    assert value["a"] == Decimal("4.5") and isinstance(value["b"][1], Decimal)
    assert jsonutil.canonical(value) == '{"a":4.5,"b":[1,2.50],"s":"茶"}'
    with pytest.raises(TypeError):
        jsonutil.dumps({"x": 0.1})


def test_windows_cover_the_interval_without_gaps_or_overlap():
    a, b = parse_time("2026-11-11T00:00"), parse_time("2026-11-11T01:10")
    parts = list(windows(a, b, timedelta(minutes=30)))
    assert parts[0][0] == a and parts[-1][1] == b
    assert all(x[1] == y[0] for x, y in zip(parts, parts[1:], strict=False))
    assert [p[1] - p[0] for p in parts] == [timedelta(minutes=30)] * 2 + [timedelta(minutes=10)]


def test_times_without_offset_mean_shanghai():
    assert parse_time("2026-11-11T00:00").utcoffset() == timedelta(hours=8)
    assert parse_time("2026-11-10T16:00:00+00:00") == parse_time("2026-11-11T00:00")


def test_world_is_deterministic_and_independent_of_what_was_generated_before():
    shops = [("tmall", "s1"), ("pdd", "s2")]
    a, b = int(parse_time("2026-11-11T00:00").timestamp()), int(parse_time("2026-11-11T02:00").timestamp())
    first = World(3, shops, 0.05).truth(a, b)
    other = World(3, shops, 0.05)
    other.truth(a - 86400, a)  # generate other hours first
    assert other.truth(a, b) == first and first
    assert World(4, shops, 0.05).truth(a, b) != first


def test_world_money_identity_and_event_order():
    world = World(1, [("douyin", "d1"), ("jd", "j1")], 0.05)
    start = int(parse_time("2026-11-11T00:00").timestamp())
    orders = list(world.orders_created("douyin", "d1", start, start + 3600))
    orders += list(world.orders_created("jd", "j1", start, start + 3600))
    assert orders
    for order in orders:
        assert order.paid_amount == order.goods_amount - order.discount_amount + order.shipping_fee
        times = [t for t, _ in order.events]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert all(t % 60 != 0 for t in times)  # no event on a window boundary


def test_the_tea_chains_world_peaks_at_lunch_and_in_the_afternoon_and_delivers_within_the_hour():
    stores = [("meituan", "mt-1"), ("eleme", "170000001"), ("mall", "mini")]
    tea = World(5, stores, 1.0, kind="tea")

    def created(hour: str, platform: str, shop: str, world=tea) -> list:
        start = int(parse_time(f"2026-11-11T{hour}").timestamp())
        return list(world.orders_created(platform, shop, start, start + 3600))

    for platform, shop in stores:
        night, lunch, afternoon = (len(created(h, platform, shop)) for h in ("03:00", "12:00",
                                                                            "15:00"))
        assert night < lunch < afternoon, (platform, night, lunch, afternoon)
        for order in created("12:00", platform, shop):
            assert all(line.sku.outer_sku_id.startswith("DRK-") for line in order.lines)
            kinds = [kind for _, kind in order.events]
            delivered = order.event_time("completed", len(order.events) - 1)
            assert delivered is None or delivered - order.created_time < 2 * 3600, kinds
    # the brand's world at the same hour: Double 11 retail, shipped days later
    brand = World(5, [("tmall", "t1")], 1.0)
    order = created("12:00", "tmall", "t1", world=brand)[0]
    assert not order.lines[0].sku.outer_sku_id.startswith("DRK-")
    with pytest.raises(ValueError, match="no 'coffee' world"):
        World(5, stores, kind="coffee")
