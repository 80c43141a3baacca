"""A deterministic world of shops and orders living their lives.

Orders are generated per (platform, shop, creation hour) from a random stream
seeded by ``(seed, platform, shop, hour)``, so any window of the world is the
same whatever else was generated before, and a world needs no fixed period:
the hours a query touches are generated on demand.

Each order is a list of **events** (created, paid, shipped, ...). Every event
is a new *version* of the order with that event's time as its modified time.
The platform gateways (``sandbox/<platform>.py``) render a version in their
own dialect; :func:`standard_state` describes it in OrderHub's standard
vocabulary **from the world model itself** - it shares no code with the
pipeline's mapping (dbt seeds and staging models).

Time: all times are integer Unix seconds. No event ever falls on second :00,
so windows on whole minutes never have to decide which side an event at the
exact boundary belongs to (see ``docs/sandbox.md``).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from orderhub.config import PLATFORM_TZ

HOUR = 3600
DAY = 24 * HOUR
# The longest an order keeps changing after it is created (pay + ship +
# complete + after-sale refund); a query for [a, b) needs orders created in
# [a - MAX_LIFETIME, b).
MAX_LIFETIME = 6 * DAY
CENT = Decimal("0.01")

# Event kinds, in lifecycle order.
CREATED = "created"
CANCELLED = "cancelled"  # closed before payment
PAID = "paid"
REFUND_REQUESTED = "refund_requested"  # before shipment
REFUNDED = "refunded"  # before shipment; the order closes
SHIPPED = "shipped"
COMPLETED = "completed"
AFTERSALE_REQUESTED = "aftersale_requested"  # after completion
AFTERSALE_REFUNDED = "aftersale_refunded"



def profile(platform: str):
    """How a platform's orders live in the world: its gateway class's
    attributes (base_rate, shows_unpaid, has_aftersale, shows_ship_time,
    influencer_discounts, order_id; sandbox/gateway.py)."""
    from orderhub_tools.sandbox import gateway_class

    return gateway_class(platform)

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
PROVINCES = [
    ("浙江省", "杭州市", "西湖区"), ("广东省", "深圳市", "南山区"), ("上海市", "上海市", "浦东新区"),
    ("北京市", "北京市", "朝阳区"), ("四川省", "成都市", "武侯区"), ("江苏省", "南京市", "鼓楼区"),
    ("湖北省", "武汉市", "洪山区"), ("福建省", "厦门市", "思明区"),
]
PRODUCTS = [
    ("茉莉花茶礼盒", "29.90"), ("龙井明前特级", "168.00"), ("普洱熟茶饼", "89.00"),
    ("冷泡乌龙茶包", "39.90"), ("白桃乌龙", "45.50"), ("柠檬红茶", "19.90"),
    ("桂花乌龙", "36.80"), ("大红袍", "128.00"), ("茶具套装", "259.00"), ("玻璃杯", "49.00"),
    ("抹茶粉", "58.00"), ("花果茶", "32.00"),
]


# The tea chain's drinks (the "tea" world: `orderhub demo --world tea`).
DRINKS = [
    ("杨枝甘露", "22.00"), ("多肉葡萄", "28.00"), ("芝芝莓莓", "29.00"), ("黑糖波波牛乳", "19.00"),
    ("满杯红柚", "21.00"), ("轻芒芒甘露", "23.00"), ("纯绿妍茶", "12.00"), ("招牌奶茶", "16.00"),
    ("手打柠檬茶", "15.00"), ("抹茶拿铁", "24.00"),
]
# Which worlds there are: the brand's shops (its tea leaves and cups on the
# retail platforms, default) and a tea chain's stores (drinks on the
# food-delivery platforms, lunch and afternoon peaks).
WORLDS = ("brand", "tea")
# The demo's world unless told otherwise (`orderhub demo`, `orderhub airflow
# --sandbox` before any demo): its seed, and its scale outside the tea world.
DEFAULT_SEED = 42
DEMO_SCALE = 0.1


def merchant_code(product: int) -> str:
    """The brand's code of the ``product``-th catalog product: TEA-001 ..."""
    return f"TEA-{product + 1:03d}"


@dataclass(frozen=True)
class Sku:
    product_id: str
    sku_id: str
    outer_sku_id: str
    title: str
    price: Decimal


@dataclass(frozen=True)
class Line:
    line_no: int
    sku: Sku
    quantity: int

    @property
    def amount(self) -> Decimal:
        return self.sku.price * self.quantity


@dataclass
class Order:
    platform: str
    shop_id: str
    order_id: str
    buyer_name: str
    buyer_phone: str
    province: str
    city: str
    district: str
    street: str
    lines: list[Line]
    merchant_discount: Decimal
    platform_discount: Decimal
    influencer_discount: Decimal
    shipping_fee: Decimal
    events: list[tuple[int, str]] = field(default_factory=list)  # (time, kind), ascending
    # Decided as time passes (a flash sale's, sandbox/stock.py), not generated
    # with its whole life: its events are appended as they happen.
    live: bool = False

    @property
    def goods_amount(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))

    @property
    def discount_amount(self) -> Decimal:
        return self.merchant_discount + self.platform_discount + self.influencer_discount

    @property
    def paid_amount(self) -> Decimal:
        return self.goods_amount - self.discount_amount + self.shipping_fee

    @property
    def created_time(self) -> int:
        return self.events[0][0]

    def visible_versions(self) -> list[int]:
        """Indexes of the events a platform's order API shows as versions
        (one that lists paid orders only never shows an order closed unpaid)."""
        if profile(self.platform).shows_unpaid:
            return list(range(len(self.events)))
        if not any(kind == PAID for _, kind in self.events):
            return []
        return [i for i, (_, kind) in enumerate(self.events) if kind != CREATED]

    def kind(self, version: int) -> str:
        return self.events[version][1]

    def modified(self, version: int) -> int:
        return self.events[version][0]

    def closed_time(self, version: int) -> int | None:
        """When the order ended: completed, or closed (cancelled / refunded)."""
        for kind in (COMPLETED, CANCELLED, REFUNDED):
            found = self.event_time(kind, version)
            if found is not None:
                return found
        return None

    def event_time(self, kind: str, upto: int) -> int | None:
        for i, (time, k) in enumerate(self.events):
            if i > upto:
                break
            if k == kind:
                return time
        return None


# The columns of standard_state that fct_orders and live_orders carry too:
# what every comparison with the truth compares.
STANDARD_COLUMNS = ["platform", "shop_id", "order_id", "order_status_code", "refund_status_code",
                    "created_at", "paid_at", "shipped_at", "completed_at", "updated_at",
                    "goods_amount", "discount_amount", "shipping_fee", "paid_amount", "currency"]


def standard_state(order: Order, version: int) -> dict:
    """The order at one version, in OrderHub's standard vocabulary."""
    kind = order.events[version][1]
    status, refund = {
        CREATED: (10, 0),
        CANCELLED: (50, 0),
        PAID: (20, 0),
        REFUND_REQUESTED: (20, 1),
        REFUNDED: (50, 2),
        SHIPPED: (30, 0),
        COMPLETED: (40, 0),
        AFTERSALE_REQUESTED: (40, 1),
        AFTERSALE_REFUNDED: (40, 2),
    }[kind]
    return {
        "platform": order.platform,
        "shop_id": order.shop_id,
        "order_id": order.order_id,
        "order_status_code": status,
        "refund_status_code": refund,
        "created_at": order.created_time,
        "paid_at": order.event_time(PAID, version),
        "shipped_at": (order.event_time(SHIPPED, version)
                       if profile(order.platform).shows_ship_time else None),
        "completed_at": order.event_time(COMPLETED, version),
        "updated_at": order.events[version][0],
        "goods_amount": order.goods_amount,
        "discount_amount": order.discount_amount,
        # who funds the discounts (fct_order_discounts)
        "merchant_discount_amount": order.merchant_discount,
        "platform_discount_amount": order.platform_discount,
        "influencer_discount_amount": order.influencer_discount,
        "shipping_fee": order.shipping_fee,
        "paid_amount": order.paid_amount,
        "currency": "CNY",
    }


def local_datetime(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, PLATFORM_TZ)


def promo_factor(ts: int) -> float:
    """Double 11: a midnight rush that decays through the night and the day."""
    local = local_datetime(ts)
    if (local.month, local.day) == (11, 11):
        return {0: 25.0, 1: 12.0, 2: 5.0}.get(local.hour, 2.5)
    if (local.month, local.day) == (11, 10) and local.hour >= 20:
        return 1.8
    return 1.0


def food_factor(ts: int) -> float:
    """A tea chain's day: a lunch peak, a larger afternoon one, a dinner tail;
    Double 11 is not its day."""
    hour = local_datetime(ts).hour
    return {7: 0.3, 8: 0.5, 9: 0.6, 10: 1.0, 11: 2.6, 12: 3.0, 13: 1.6, 14: 2.4, 15: 3.2,
            16: 2.6, 17: 1.6, 18: 1.4, 19: 1.2, 20: 1.0, 21: 0.6, 22: 0.3}.get(hour, 0.05)


def diurnal_factor(ts: int) -> float:
    hour = local_datetime(ts).hour
    if hour < 7:
        return 0.4
    if hour < 12:
        return 0.9
    if hour < 19:
        return 1.0
    return 1.5


def _stream(*parts: object) -> random.Random:
    return random.Random("|".join(str(p) for p in parts))


def _digits(*parts: object, n: int) -> str:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return str(int(digest, 16))[:n]


def _off_minute(ts: int) -> int:
    """Never on second :00 (see module docstring)."""
    return ts + 1 if ts % 60 == 0 else ts


class World:
    """Shops, SKUs and orders for one seed; orders generated hour by hour on demand."""

    def __init__(self, seed: int, shops: list[tuple[str, str]], scale: float = 1.0,
                 kind: str = "brand"):
        if kind not in WORLDS:
            raise ValueError(f"no {kind!r} world (there are: {', '.join(WORLDS)})")
        self.seed = seed
        self.shops = list(shops)
        self.scale = scale
        self.kind = kind
        self._buckets: dict[tuple[str, str, int], list[Order]] = {}
        self._catalogs: dict[tuple[str, str], list[Sku]] = {}
        self._by_id: dict[tuple[str, str], Order] = {}  # (platform, order id) of generated orders
        # What the shops list, and a flash sale whose orders depend on what the
        # channels offer as time passes: decided before any query (sandbox/stock.py).
        self.stock = None

    # -- generation -------------------------------------------------------
    def catalog(self, platform: str, shop_id: str) -> list[Sku]:
        key = (platform, shop_id)
        if key not in self._catalogs:
            skus = []
            products = DRINKS if self.kind == "tea" else PRODUCTS
            for i, (title, price) in enumerate(products):
                product_id = _digits(self.seed, platform, shop_id, "product", i, n=11)
                skus.append(Sku(
                    product_id=product_id,
                    sku_id=_digits(self.seed, platform, shop_id, "sku", i, n=13),
                    # the merchant's own code, the same in every shop (the
                    # brand's merchant SKU, dbt_project/seeds/merchant_skus.csv)
                    outer_sku_id=(f"DRK-{i + 1:03d}" if self.kind == "tea"
                                  else merchant_code(i)),
                    title=title,
                    price=Decimal(price),
                ))
            self._catalogs[key] = skus
        return self._catalogs[key]

    def _order_id(self, platform: str, shop_id: str, hour: int, seq: int) -> str:
        return profile(platform).order_id(_digits(self.seed, platform, shop_id, hour, seq, n=20),
                                          hour)

    def bucket(self, platform: str, shop_id: str, hour: int) -> list[Order]:
        """Orders created in [hour, hour + 1h) in one shop (hour: Unix seconds)."""
        key = (platform, shop_id, hour)
        if key in self._buckets:
            return self._buckets[key]
        rng = _stream(self.seed, platform, shop_id, hour)
        curve = (food_factor(hour) if self.kind == "tea"
                 else diurnal_factor(hour) * promo_factor(hour))
        rate = profile(platform).base_rate * self.scale * curve
        count = int(rate) + (1 if rng.random() < rate - int(rate) else 0)
        orders = [self._make_order(rng, platform, shop_id, hour, seq) for seq in range(count)]
        orders.sort(key=lambda o: o.created_time)
        self._buckets[key] = orders
        self._by_id.update(((platform, o.order_id), o) for o in orders)
        return orders

    def find(self, platform: str, order_id: str) -> Order | None:
        """An order generated so far (the detail APIs: a push named it, so
        its hour was generated to push it)."""
        self._advance()
        return self._by_id.get((platform, order_id))

    def add(self, order: Order) -> None:
        """An order the world did not generate (a flash sale's, decided as
        time passes). The bucket is replaced, not changed, so a query
        iterating the old one in another thread is not disturbed."""
        hour = order.created_time - order.created_time % HOUR
        bucket = self.bucket(order.platform, order.shop_id, hour)
        self._buckets[(order.platform, order.shop_id, hour)] = sorted(
            [*bucket, order], key=lambda o: o.created_time)
        self._by_id[(order.platform, order.order_id)] = order

    def _advance(self) -> None:
        if self.stock is not None:
            self.stock.advance()

    def events_between(self, platform: str, shop_id: str, start: int,
                       end: int) -> list[tuple[int, Order, int]]:
        """Every API-visible version modified in [start, end): (time, order,
        version), oldest first - what a platform pushes as it happens. Of
        the generated orders only: a flash sale's orders are decided as time
        passes (``stock.events_between``)."""
        found = []
        for order in self.orders_created(platform, shop_id, start - MAX_LIFETIME, end):
            if order.live:
                continue
            for i in order.visible_versions():
                if start <= order.events[i][0] < end:
                    found.append((order.events[i][0], order, i))
        found.sort(key=lambda e: (e[0], e[1].order_id, e[2]))
        return found

    def latest_version(self, order: Order, now: int) -> int | None:
        """The order's latest API-visible version at ``now`` (detail APIs read
        the platform's store, not its search index: no index delay)."""
        versions = [i for i in order.visible_versions() if order.events[i][0] <= now]
        return versions[-1] if versions else None

    def _make_order(self, rng: random.Random, platform: str, shop_id: str, hour: int,
                    seq: int) -> Order:
        catalog = self.catalog(platform, shop_id)
        lines = []
        for line_no, sku in enumerate(rng.sample(catalog, rng.choice((1, 1, 1, 2, 2, 3))), 1):
            lines.append(Line(line_no, sku, rng.choice((1, 1, 1, 2, 3))))
        goods = sum((line.amount for line in lines), Decimal("0.00"))
        merchant = Decimal(rng.choice((0, 0, 5, 10, 20))) if goods >= 50 else Decimal(0)
        platform_d = (Decimal(rng.randint(100, 1500)) * CENT) if rng.random() < 0.3 else Decimal(0)
        influencer = Decimal(0)
        if profile(platform).influencer_discounts and rng.random() < 0.3:
            influencer = Decimal(rng.randint(100, 1000)) * CENT
        # Discounts never exceed the goods minus one yuan.
        cap = goods - 1
        merchant = min(merchant, max(cap, Decimal(0)))
        platform_d = min(platform_d, max(cap - merchant, Decimal(0)))
        influencer = min(influencer, max(cap - merchant - platform_d, Decimal(0)))
        shipping = Decimal("0.00") if goods >= 99 else Decimal(rng.choice(("6.00", "8.00", "10.00")))
        province, city, district = rng.choice(PROVINCES)
        order = Order(
            platform=platform,
            shop_id=shop_id,
            order_id=self._order_id(platform, shop_id, hour, seq),
            buyer_name=rng.choice(SURNAMES) + "".join(rng.sample(GIVEN, rng.choice((1, 2)))),
            buyer_phone="1" + rng.choice("3456789") + "".join(rng.choices("0123456789", k=9)),
            province=province,
            city=city,
            district=district,
            street=f"{rng.choice(('文三路', '科技园路', '人民路', '中山路'))}{rng.randint(1, 999)}号",
            lines=lines,
            merchant_discount=merchant.quantize(CENT),
            platform_discount=platform_d.quantize(CENT),
            influencer_discount=influencer.quantize(CENT),
            shipping_fee=shipping.quantize(CENT),
        )
        order.events = self._life(rng, platform, hour,
                                  food=profile(platform).food_delivery or self.kind == "tea")
        return order

    @staticmethod
    def _life(rng: random.Random, platform: str, hour: int,
              food: bool = False) -> list[tuple[int, str]]:
        """An order's events. ``food``: delivered within the hour (a
        food-delivery platform's, or any order of the tea chain's)."""
        t = _off_minute(hour + rng.randrange(HOUR))
        events = [(t, CREATED)]

        def step(low: int, high: int, kind: str) -> None:
            nonlocal t
            t = _off_minute(t + rng.randint(low, high))
            events.append((t, kind))

        if profile(platform).shows_unpaid and rng.random() < 0.06:
            step(15 * 60, 30 * 60, CANCELLED)
            return events
        step(5, 15 * 60, PAID)
        if food:
            if rng.random() < 0.03:  # cancelled after the store accepted it: refunded
                step(2 * 60, 15 * 60, REFUND_REQUESTED)
                step(60, 10 * 60, REFUNDED)
                return events
            step(8 * 60, 25 * 60, SHIPPED)  # a rider picks it up
            step(10 * 60, 35 * 60, COMPLETED)  # delivered
            if rng.random() < 0.04:  # a drink spilt or missing: a refund after delivery
                step(10 * 60, 3 * HOUR, AFTERSALE_REQUESTED)
                step(5 * 60, 2 * HOUR, AFTERSALE_REFUNDED)
            return events
        if rng.random() < 0.05:
            step(10 * 60, 6 * HOUR, REFUND_REQUESTED)
            step(10 * 60, 12 * HOUR, REFUNDED)
            return events
        step(30 * 60, 30 * HOUR, SHIPPED)
        step(1 * DAY, 3 * DAY, COMPLETED)
        if profile(platform).has_aftersale and rng.random() < 0.04:
            step(2 * HOUR, 24 * HOUR, AFTERSALE_REQUESTED)
            step(1 * HOUR, 12 * HOUR, AFTERSALE_REFUNDED)
        return events

    # -- queries ------------------------------------------------------------
    def orders_created(self, platform: str, shop_id: str, start: int, end: int):
        """Every order of a shop created in [start, end)."""
        self._advance()
        hour = start - start % HOUR
        while hour < end:
            for order in self.bucket(platform, shop_id, hour):
                if start <= order.created_time < end:
                    yield order
            hour += HOUR

    def search(self, platform: str, shop_id: str, start: int, end: int,
               visible_before: int, extra_delay=None) -> list[tuple[Order, int]]:
        """What a modified-time search for [start, end) returns when the platform's
        index holds the versions modified before ``visible_before`` (each version
        possibly ``extra_delay(order, version)`` seconds later): each order whose
        latest indexed version was modified in the window, at that version.
        Sorted newest first, then by order id (stable paging)."""
        hits = []
        for order in self.orders_created(platform, shop_id, start - MAX_LIFETIME, end):
            latest = None
            for i in order.visible_versions():
                modified = order.events[i][0]
                if modified >= visible_before:
                    break
                if extra_delay is None or modified + extra_delay(order, i) < visible_before:
                    latest = i
            if latest is not None and start <= order.events[latest][0] < end:
                hits.append((order, latest))
        hits.sort(key=lambda hit: (-hit[0].events[hit[1]][0], hit[0].order_id))
        return hits

    def truth(self, start: int, end: int) -> list[dict]:
        """Every order with at least one (API-visible) version modified in
        [start, end), in its latest state with modified time <= end."""
        rows = []
        for platform, shop_id in self.shops:
            for order in self.orders_created(platform, shop_id, start - MAX_LIFETIME, end):
                versions = order.visible_versions()
                if not any(start <= order.events[i][0] < end for i in versions):
                    continue
                latest = max(i for i in versions if order.events[i][0] <= end)
                rows.append(standard_state(order, latest))
        rows.sort(key=lambda r: (r["platform"], r["shop_id"], r["order_id"]))
        return rows
