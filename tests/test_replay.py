"""Documentation-shaped responses (tests/fixtures/replay, not from the sandbox)
replayed through the normal loader come out of fct_orders with the expected
standard values: status codes, units, time zones, JD's "no value" dates."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from orderhub.config import PLATFORM_TZ
from orderhub.transform import dbt, ensure_manifest
from tests.truth import STANDARD, reset

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parent / "fixtures" / "replay"


def bj(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=PLATFORM_TZ)


EXPECTED = {
    ("tmall", "2231958349"): dict(
        order_status_code=30, refund_status_code=0, created_at=bj("2026-11-11 00:01:12"),
        paid_at=bj("2026-11-11 00:01:40"), shipped_at=bj("2026-11-11 09:30:05"), completed_at=None,
        updated_at=bj("2026-11-11 09:30:05"), goods_amount=Decimal("200.07"),
        discount_amount=Decimal("20.00"), shipping_fee=Decimal("10.00"),
        paid_amount=Decimal("190.07"), currency="CNY"),
    ("jd", "280112233445"): dict(
        order_status_code=40, refund_status_code=0, created_at=bj("2026-11-10 23:59:58"),
        paid_at=bj("2026-11-11 00:00:21"), shipped_at=None, completed_at=bj("2026-11-14 10:12:00"),
        updated_at=bj("2026-11-14 10:12:00"), goods_amount=Decimal("299.00"),
        discount_amount=Decimal("25.00"), shipping_fee=Decimal("0.00"),
        paid_amount=Decimal("274.00"), currency="CNY"),
    ("jd", "280112233446"): dict(  # orderEndTime "0001-01-01 00:00:00" means none
        order_status_code=20, refund_status_code=0, created_at=bj("2026-11-11 01:00:03"),
        paid_at=bj("2026-11-11 01:00:45"), shipped_at=None, completed_at=None,
        updated_at=bj("2026-11-11 01:00:45"), goods_amount=Decimal("59.00"),
        discount_amount=Decimal("0.00"), shipping_fee=Decimal("6.00"),
        paid_amount=Decimal("65.00"), currency="CNY"),
    ("pdd", "261111-364770100011509"): dict(  # refunded before shipment: closed
        order_status_code=50, refund_status_code=2, created_at=bj("2026-11-11 00:05:00"),
        paid_at=bj("2026-11-11 00:05:30"), shipped_at=None, completed_at=None,
        updated_at=bj("2026-11-11 08:00:09"), goods_amount=Decimal("59.80"),
        discount_amount=Decimal("4.50"), shipping_fee=Decimal("6.00"),
        paid_amount=Decimal("61.30"), currency="CNY"),
    ("douyin", "6919254891236917498"): dict(  # fen and Unix seconds
        order_status_code=40, refund_status_code=0, created_at=bj("2026-11-11 00:10:00"),
        paid_at=bj("2026-11-11 00:10:31"), shipped_at=bj("2026-11-11 15:20:00"),
        completed_at=bj("2026-11-14 12:00:07"), updated_at=bj("2026-11-14 12:00:07"),
        goods_amount=Decimal("128.00"), discount_amount=Decimal("15.00"),
        shipping_fee=Decimal("0.00"), paid_amount=Decimal("113.00"), currency="CNY"),
    # Meituan: yuan floats (59.699999999999996 is 59.70), the bag fee (200 fen) in
    # original_price and charged with delivery, lines and discounts as JSON strings.
    ("meituan", "27061900338318741"): dict(  # the list API's answer: completed
        order_status_code=40, refund_status_code=0, created_at=bj("2026-11-11 12:05:09"),
        paid_at=bj("2026-11-11 12:05:31"), shipped_at=None, completed_at=bj("2026-11-11 12:41:30"),
        updated_at=bj("2026-11-11 12:41:30"), goods_amount=Decimal("59.70"),
        discount_amount=Decimal("5.00"), shipping_fee=Decimal("5.00"),
        paid_amount=Decimal("59.70"), currency="CNY"),
    ("meituan", "27061900338318805"): dict(  # a paid-order push (a form): 32.0 is 32.00
        order_status_code=20, refund_status_code=0, created_at=bj("2026-11-11 15:20:01"),
        paid_at=bj("2026-11-11 15:20:12"), shipped_at=None, completed_at=None,
        updated_at=bj("2026-11-11 15:20:12"), goods_amount=Decimal("32.00"),
        discount_amount=Decimal("0.00"), shipping_fee=Decimal("0.00"),
        paid_amount=Decimal("32.00"), currency="CNY"),
    ("meituan", "27061900338318999"): dict(  # the detail API: cancelled after acceptance
        order_status_code=50, refund_status_code=2, created_at=bj("2026-11-11 18:00:05"),
        paid_at=bj("2026-11-11 18:00:20"), shipped_at=None, completed_at=None,
        updated_at=bj("2026-11-11 18:30:44"), goods_amount=Decimal("57.60"),
        discount_amount=Decimal("6.00"), shipping_fee=Decimal("4.50"),
        paid_amount=Decimal("56.10"), currency="CNY"),
    # Ele.me: discounts and their shares negative, the delivery and packaging fees
    # inside originalPrice, lines in two baskets, times without an offset.
    ("eleme", "3026911234567891234"): dict(
        order_status_code=40, refund_status_code=0, created_at=bj("2026-11-11 12:10:05"),
        paid_at=bj("2026-11-11 12:10:20"), shipped_at=None, completed_at=bj("2026-11-11 12:52:40"),
        updated_at=bj("2026-11-11 12:52:40"), goods_amount=Decimal("60.00"),
        discount_amount=Decimal("12.00"), shipping_fee=Decimal("7.00"),
        paid_amount=Decimal("55.00"), currency="CNY"),
}
# Who funds the discounts, and the lines (inside JSON strings; in baskets).
FOOD_DISCOUNTS = {"27061900338318741": (Decimal("3.00"), Decimal("2.00")),
                  "27061900338318999": (Decimal("6.00"), Decimal("0.00")),
                  "3026911234567891234": (Decimal("8.00"), Decimal("4.00"))}
FOOD_LINES = {("27061900338318741", "TEA-006"): (3, Decimal("19.90")),
              ("27061900338318805", "TEA-005"): (2, Decimal("16.00")),
              ("27061900338318999", "TEA-007"): (2, Decimal("28.80")),
              ("3026911234567891234", "DRK-002"): (1, Decimal("28.00")),
              ("3026911234567891234", "DRK-008"): (2, Decimal("16.00"))}
FILES = {"meituan": ["meituan_orders.json", "meituan_paid_push.txt", "meituan_order_detail.json"]}


def replay(platform: str, shop: str) -> str:
    files = [str(FIXTURES / name) for name in FILES.get(platform, [f"{platform}_orders.json"])]
    result = subprocess.run(
        [sys.executable, "-m", "orderhub_tools.cli", "replay", "--platform", platform, "--shop", shop,
         *files], capture_output=True, text=True, check=True)
    return result.stdout


def test_replayed_documentation_responses_standardize_as_expected(clean_warehouse):
    ensure_manifest()
    for platform in ("tmall", "jd", "pdd", "douyin", "meituan", "eleme"):
        out = replay(platform, f"{platform}-docs")
        assert out.count("0 quarantined") == len(FILES.get(platform, [1])), out
    assert "0 new raw rows" in replay("tmall", "tmall-docs")  # idempotent
    result = dbt("build", check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    with psycopg.connect(clean_warehouse) as conn:
        cur = conn.execute(f"select {', '.join(STANDARD)} from marts.fct_orders")
        rows = {(r[0], r[2]): dict(zip(STANDARD, r, strict=True)) for r in cur.fetchall()}
        ledger = conn.execute("select count(*) from ops.extraction_windows").fetchone()[0]
        discounts = {r[0]: (r[1], r[2]) for r in conn.execute(
            "select order_id, merchant_discount_amount, platform_discount_amount"
            " from marts.fct_orders where platform in ('meituan', 'eleme')"
            " and discount_amount > 0")}
        lines = {r[:2]: r[2:] for r in conn.execute(
            "select order_id, outer_sku_id, quantity, unit_price from marts.fct_order_items"
            " where platform in ('meituan', 'eleme')")}
    assert set(rows) == set(EXPECTED)
    for key, expected in EXPECTED.items():
        actual = {k: v for k, v in rows[key].items() if k in expected}
        assert actual == expected, key
    assert ledger == 0  # a replayed file is not an API window
    assert discounts == FOOD_DISCOUNTS
    assert lines == FOOD_LINES
    reset(clean_warehouse)
