"""How the world's platforms settle orders, and the reconciliation truth.

A platform pays the merchant for an order some days after it completes: the
buyer's payment plus what the platform (and, on Douyin, the influencer) funded
of the discounts, minus commission and service fee. This module decides, per
order and deterministically from the seed, when that happens and what the
settlement lines say - including the differences reconciliation must find:

==================  ===========================================================
rounding            the platform's commission is off by 1-3 cents
unbooked_fee        a fee the books do not know (shipping insurance, 0.50-5 yuan)
unbooked_subsidy    a platform subsidy the books do not know ("new customer", 2-20)
refund_timing       an after-sale refund whose refund line posts 3-5 days later
cross_day           the payout lands on the day after the one it was due
unsettled           the order is never settled
unexplained         the payout differs from the buyer's payment by 0.5-2 %
lost_order          a settlement line for an order the order APIs never return
==================  ===========================================================

At most one difference is injected per order. Some arise naturally too (a
Tmall order confirmed at 23:55 is paid out after midnight; a refund line may
post after the reconciled range ends), so the truth is not the injected label
but :func:`reconciliation_truth`: the categories the world's own facts imply
for a reconciled range, by the rules in ``docs/reconciliation.md``. It reads
the world's orders and lines, never the API payloads or the pipeline.

The books' side (what OrderHub expects) uses the platforms' contract terms,
which the dbt seed ``platform_terms.csv`` carries too: settlement days after
completion, commission rate (on the buyer's payment without postage) and
service-fee rate (on the buyer's payment), each rounded half-up to the cent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from orderhub.config import PLATFORM_TZ
from orderhub_tools.sandbox import world as w

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Terms:
    settle_days: int
    commission_rate: Decimal
    service_fee_rate: Decimal


@cache
def contract_terms() -> dict[str, Terms]:
    """The platforms' contract terms: the world settles by the very numbers
    the books expect (dbt_project/seeds/platform_terms.csv). A platform
    without a row does not settle (a brand's own shop)."""
    import csv

    from orderhub.config import dbt_project_dir

    with (dbt_project_dir() / "seeds" / "platform_terms.csv").open(encoding="utf-8") as handle:
        return {row["platform"]: Terms(int(row["settle_days"]), Decimal(row["commission_rate"]),
                                       Decimal(row["service_fee_rate"]))
                for row in csv.DictReader(handle)}
# An order due on day E with no payout is "unsettled" once day E + GRACE_DAYS is
# reconciled too (a cross-day payout lands on E + 1); before that it is pending.
GRACE_DAYS = 1
# Differences up to this are rounding (recon_rules.csv: rounding's classification bound).
# Injected rounding is at most 0.03 and unexplained at least 0.10, so any bound
# in [0.03, 0.10) gives the same truth.
ROUNDING_BOUND = Decimal("0.05")

INJECTED = ("rounding", "unbooked_fee", "unbooked_subsidy", "refund_timing", "cross_day",
            "unsettled", "unexplained")
INJECT_RATE = 0.025  # per kind, per settled order
REFUND_TIMING_RATE = 0.4  # of the after-sale refunds that come after the payout
GHOST_RATE = 0.008  # lost orders per order of a shop's day
CATEGORIES = (*INJECTED, "lost_order", "prior_period")
# The reconciliation looks this far back for orders whose settlement may land in a range.
SETTLE_HORIZON = w.MAX_LIFETIME + 8 * w.DAY


def local_date(ts: int) -> date:
    return datetime.fromtimestamp(ts, PLATFORM_TZ).date()


def day_start(day: date) -> int:
    return int(datetime.combine(day, time(), PLATFORM_TZ).timestamp())


def half_up(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class SettlementLine:
    """One settlement record: a payout (trade_type settled) or a refund after
    settlement. Components are magnitudes; ``settle_amount`` is signed."""

    platform: str
    shop_id: str
    line_id: str
    order_id: str
    line_type: str  # payout | refund
    settled_at: int
    order_time: int  # when the buyer paid
    gross: Decimal = ZERO  # the buyer's payment as the platform books it
    platform_subsidy: Decimal = ZERO
    influencer_subsidy: Decimal = ZERO
    commission: Decimal = ZERO
    service_fee: Decimal = ZERO
    other_fee: Decimal = ZERO
    refund: Decimal = ZERO

    @property
    def settle_amount(self) -> Decimal:
        return (self.gross + self.platform_subsidy + self.influencer_subsidy - self.commission
                - self.service_fee - self.other_fee - self.refund)


@dataclass
class OrderSettlement:
    platform: str
    shop_id: str
    order_id: str
    due: date | None  # the books' expectation: completion date + settle days
    injected: str | None
    ghost: bool = False
    lines: list[SettlementLine] = field(default_factory=list)
    refunded_at: int | None = None  # after-sale refund, as the order APIs show it
    books_expected: Decimal = ZERO  # before any refund
    books_subsidy: Decimal = ZERO  # platform- and influencer-funded discounts on the order


def books_fees(platform: str, paid: Decimal, shipping: Decimal) -> tuple[Decimal, Decimal]:
    terms = contract_terms()[platform]
    return (half_up(terms.commission_rate * (paid - shipping)),
            half_up(terms.service_fee_rate * paid))


def _line_id(*parts: object) -> str:
    return str(int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest(), 16))[:16]


def settle(world: w.World, order: w.Order) -> OrderSettlement | None:
    """The order's settlement, or None when it never completes (cancelled, or
    refunded before shipment: nothing to settle)."""
    last = len(order.events) - 1
    completed = order.event_time(w.COMPLETED, last)
    if completed is None or order.platform not in contract_terms():
        return None
    rng = w._stream(world.seed, "settle", order.platform, order.shop_id, order.order_id)
    platform = order.platform
    draw = rng.random()
    injected = INJECTED[int(draw / INJECT_RATE)] if draw < INJECT_RATE * len(INJECTED) else None
    due = local_date(completed) + timedelta(days=contract_terms()[platform].settle_days)
    if w.profile(platform).pays_on_completion:  # Alipay pays out on the buyer's confirmation
        settled_at = completed + rng.randint(60, 1800)
    else:  # a daily batch on the due date
        settled_at = day_start(due) + rng.randint(3600, 22 * 3600)
    refunded = order.event_time(w.AFTERSALE_REFUNDED, last)
    refund_first = refunded is not None and refunded < settled_at
    if injected == "cross_day":
        settled_at = day_start(local_date(settled_at) + timedelta(days=1)) + rng.randint(60, 3000)
    elif injected in ("unsettled", "rounding", "unbooked_fee", "unbooked_subsidy",
                      "unexplained") and refunded is not None:
        injected = None  # amount differences only on orders that keep their money
    elif injected == "refund_timing" and (refunded is None or refund_first):
        injected = None
    if injected is None and refunded is not None and not refund_first \
            and rng.random() < REFUND_TIMING_RATE:
        injected = "refund_timing"  # refunds are rare: inject among them at a higher rate
    settled_at = w._off_minute(settled_at)
    paid, shipping = order.paid_amount, order.shipping_fee
    commission, service_fee = books_fees(platform, paid, shipping)
    out = OrderSettlement(platform, order.shop_id, order.order_id, due, injected,
                          refunded_at=refunded,
                          books_subsidy=order.platform_discount + order.influencer_discount,
                          books_expected=paid + order.platform_discount + order.influencer_discount
                          - commission - service_fee)
    if injected == "unsettled":
        return out
    payout = dict(gross=paid, platform_subsidy=order.platform_discount,
                  influencer_subsidy=order.influencer_discount, commission=commission,
                  service_fee=service_fee)
    if refund_first:  # refunded before settlement: fees waived, nothing paid out
        payout.update(commission=ZERO, service_fee=ZERO,
                      refund=paid + order.platform_discount + order.influencer_discount)
    elif injected == "rounding":
        payout["commission"] = max(ZERO, commission + rng.choice((-3, -2, -1, 1, 2, 3)) * CENT)
    elif injected == "unbooked_fee":
        payout["other_fee"] = rng.randint(50, 500) * CENT
    elif injected == "unbooked_subsidy":
        payout["platform_subsidy"] = order.platform_discount + rng.randint(200, 2000) * CENT
    elif injected == "unexplained":
        share = Decimal(rng.randint(5, 20)) / 1000
        delta = max(half_up(paid * share), Decimal("0.10"))
        payout["gross"] = paid + delta * rng.choice((-1, 1))
    paid_at = order.event_time(w.PAID, last) or order.created_time
    line = SettlementLine(platform, order.shop_id, _line_id(world.seed, order.order_id, "payout"),
                          order.order_id, "payout", settled_at, paid_at, **payout)
    out.lines.append(line)
    if refunded is not None and not refund_first:
        delay = rng.randint(3 * w.DAY, 5 * w.DAY) if injected == "refund_timing" else rng.randint(60, 1800)
        out.lines.append(SettlementLine(
            platform, order.shop_id, _line_id(world.seed, order.order_id, "refund"), order.order_id,
            "refund", w._off_minute(refunded + delay), paid_at, refund=line.settle_amount))
    return out


def ghosts(world: w.World, platform: str, shop_id: str, day: date) -> list[OrderSettlement]:
    """Orders the order APIs never return (sold through a channel the search
    leaves out), paid out on ``day``: lost orders."""
    rng = w._stream(world.seed, "ghost", platform, shop_id, day.isoformat())
    if platform not in contract_terms():
        return []
    expected = w.profile(platform).base_rate * world.scale * 24 * GHOST_RATE
    count = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
    out = []
    for n in range(count):
        settled_at = w._off_minute(day_start(day) + rng.randint(3600, 22 * 3600))
        hour = settled_at - settled_at % w.HOUR - 3 * w.DAY
        order_id = world._order_id(platform, shop_id, hour, f"ghost-{n}")
        sku = rng.choice(world.catalog(platform, shop_id))
        paid = sku.price
        commission, service_fee = books_fees(platform, paid, ZERO)
        line = SettlementLine(platform, shop_id, _line_id(world.seed, order_id, "payout"), order_id,
                              "payout", settled_at, settled_at - 3 * w.DAY, gross=paid,
                              commission=commission, service_fee=service_fee)
        out.append(OrderSettlement(platform, shop_id, order_id, None, "lost_order", ghost=True,
                                   lines=[line]))
    return out


class Settlements:
    """Settlement lines of one world, generated on demand and cached."""

    def __init__(self, world: w.World):
        self.world = world
        self._orders: dict[tuple[str, str, str], OrderSettlement | None] = {}

    def of(self, order: w.Order) -> OrderSettlement | None:
        key = (order.platform, order.shop_id, order.order_id)
        if key not in self._orders:
            self._orders[key] = settle(self.world, order)
        return self._orders[key]

    def candidates(self, platform: str, shop_id: str, start: int, end: int):
        """Every order settlement that may have a line in [start, end) or fall
        due in it (ghosts included)."""
        for order in self.world.orders_created(platform, shop_id, start - SETTLE_HORIZON, end):
            settlement = self.of(order)
            if settlement is not None:
                yield settlement
        day = local_date(start)
        while day_start(day) < end:
            yield from ghosts(self.world, platform, shop_id, day)
            day += timedelta(days=1)

    def lines(self, platform: str, shop_id: str, start: int, end: int) -> list[SettlementLine]:
        """Lines booked in [start, end), oldest first, then by line id."""
        found = [line for s in self.candidates(platform, shop_id, start, end) for line in s.lines
                 if start <= line.settled_at < end]
        found.sort(key=lambda line: (line.settled_at, line.line_id))
        return found


def categorize(s: OrderSettlement, start: int, end: int, books_until: int | None = None) -> str | None:
    """The category the reconciliation of [start, end) (whole Beijing days)
    must give this order: a difference kind, "matched", or None when the order
    is not judged in this range (not due in it, or due on its last day with no
    payout yet: pending). The books (the orders) are as synced until
    ``books_until`` (default ``end``): a refund they hold whose line is not in
    the range is a timing difference."""
    lines = [line for line in s.lines if start <= line.settled_at < end]
    first_day, end_day = local_date(start), local_date(end)
    if s.ghost:
        return "lost_order" if lines else None
    if s.due is None or s.due >= end_day:
        return None
    if s.due < first_day:
        return "prior_period" if lines else None
    if not lines:
        return "unsettled" if s.due < end_day - timedelta(days=GRACE_DAYS) else None
    refunded = s.refunded_at is not None and s.refunded_at < (books_until or end)
    expected = ZERO if refunded else s.books_expected
    settled = sum((line.settle_amount for line in lines), ZERO)
    diff = settled - expected
    payouts = [line for line in lines if line.line_type == "payout"]
    if refunded and diff != 0 and not any(line.line_type == "refund" for line in lines):
        return "refund_timing"
    if diff == 0:
        paid_out = local_date(min(line.settled_at for line in payouts)) if payouts else s.due
        return "cross_day" if paid_out != s.due else "matched"
    other_fee = sum((line.other_fee for line in lines), ZERO)
    subsidy_excess = sum((line.platform_subsidy + line.influencer_subsidy for line in lines),
                         ZERO) - s.books_subsidy
    if other_fee and diff == -other_fee:
        return "unbooked_fee"
    if subsidy_excess > 0 and diff == subsidy_excess:
        return "unbooked_subsidy"
    if abs(diff) <= ROUNDING_BOUND:
        return "rounding"
    return "unexplained"


def reconciliation_truth(world: w.World, start: int, end: int,
                         books_until: int | None = None) -> list[dict]:
    """Every order and settlement line the reconciliation of [start, end) must
    flag, with its category, sorted by platform, shop and order id (orders
    synced until ``books_until``, default ``end``)."""
    settlements = Settlements(world)
    rows = []
    for platform, shop_id in world.shops:
        for s in settlements.candidates(platform, shop_id, start, end):
            category = categorize(s, start, end, books_until)
            if category not in (None, "matched"):
                rows.append({"platform": platform, "shop_id": shop_id, "order_id": s.order_id,
                             "category": category, "injected": s.injected})
    rows.sort(key=lambda r: (r["platform"], r["shop_id"], r["order_id"]))
    return rows
