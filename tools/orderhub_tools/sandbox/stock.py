"""Stock in the sandbox (issue 18): what overselling is made of.

The brand's **merchant SKUs** (its own codes, ``FS-001`` ...) sit in one
warehouse: ``on_hand`` units each when a flash sale opens, and
``replenish`` more arriving halfway. Each is **listed** on several channels
(one shop per platform that has a stock API), under that platform's own
product and SKU ids, with the merchant code as the outer id.

Each platform keeps its **own listed quantity** per SKU, and nothing else
does: it reduces it when it sells - on creation or on payment, as the
gateway's ``stock_reduced_on`` says (Tmall, JD, Douyin hold at creation,
Pinduoduo at payment) -, gives units back when an order that held them
closes unpaid, and refuses an order past zero (a holding-on-payment platform
closes an order it cannot pay out of stock). Nothing ties one channel's
quantity to another's or to the warehouse: that is the brand's job, done
through each platform's stock API (the gateways' stock methods call
:meth:`Stock.update`). So units are oversold exactly when the channels
together sell more than the warehouse holds.

**Demand** is fixed by the seed: on every channel and SKU, buyers try to buy
``rate`` times a minute (times the platform's ``demand``, if the sale sets
one), 1 or 2 units each, from ``start`` for ``minutes``.
Whether an attempt becomes an order, and whether an order is paid or closed,
depends on the listed quantity at that moment, so it is decided as the
sandbox clock passes (:meth:`Stock.advance`; the world calls it before it
answers any query). An accepted attempt becomes an order of the world
(``World.add``): order search, detail and push show it like any other.

**The catalog** is listed too: every shop of a platform with a stock API
offers ``CATALOG_QUANTITY`` of each catalog product until a stock call changes
it (the world's ordinary orders do not sell from it: only a flash sale's SKUs
are scarce), so the listing and stock APIs answer for every SKU a shop has.

**The truth** (:meth:`Stock.truth`, ``orderhub sandbox truth --kind stock``):
per merchant SKU, the supply, the units sold (paid) per channel, and the
units sold beyond the supply.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orderhub_tools.sandbox import world as w

CLOSE_UNPAID = 10 * 60  # a flash-sale order unpaid this long closes (and gives its units back)
# What every shop offers of each catalog product until a stock call changes it:
# not scarce, and the world's ordinary orders do not sell from it (the world
# models the stock of a flash sale's SKUs only).
CATALOG_QUANTITY = 600


@dataclass(frozen=True)
class FlashSale:
    """A flash sale on a few scarce SKUs (what ``SandboxSpec.flash_sale`` holds)."""

    start: int  # Unix seconds
    minutes: float = 10.0
    skus: int = 3
    on_hand: int = 30  # units of each SKU in the warehouse when the sale opens
    rate: float = 12.0  # buyers' attempts per channel, SKU and minute
    # What each channel lists when the sale opens; None: the whole on-hand on
    # every channel, as a brand without stock sync lists it (how overselling starts).
    listed: int | None = None
    replenish: int = 0  # units of each SKU arriving at the warehouse halfway through
    # Pinduoduo's listings sit in a promotion slot: its stock cannot be reduced.
    pdd_promotion: bool = False
    # Buyers per platform as a multiple of ``rate`` (missing: 1): {"douyin": 4}
    # is a Douyin live stream driving the sale there.
    demand: dict[str, float] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlashSale:
        """From JSON: ``start`` may be an ISO time."""
        if isinstance(data.get("start"), str):
            from orderhub.config import parse_time

            data = {**data, "start": int(parse_time(data["start"]).timestamp())}
        return cls(**data)

    @property
    def end(self) -> int:
        return self.start + int(self.minutes * 60)

    @property
    def replenished_at(self) -> int:
        return self.start + int(self.minutes * 30)


@dataclass(frozen=True)
class MerchantSku:
    code: str  # the brand's own code: the outer id on every platform
    title: str
    price: Any  # Decimal


@dataclass
class Listing:
    """One merchant SKU on one channel, and the quantity that channel offers."""

    platform: str
    shop_id: str
    merchant: MerchantSku
    sku: w.Sku  # the platform's product id, SKU id and outer id (= the merchant code)
    quantity: int
    in_promotion: bool = False
    catalog: bool = False  # a catalog product's listing: stock calls change it, nothing sells from it

    @property
    def channel(self) -> tuple[str, str]:
        return self.platform, self.shop_id


class StockRefused(Exception):
    """A stock API call the platform refuses: ``reason`` is one of
    not_found, invalid, promotion (the gateway words it in its dialect)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class _Sale:
    """One accepted attempt: the order, and whether it holds units now."""

    listing: Listing
    order: w.Order
    quantity: int
    held: bool = False


@dataclass
class _Tally:
    sold: int = 0  # units in paid orders
    refused: int = 0  # attempts refused: the listed quantity was short
    closed: int = 0  # orders closed unpaid (or, holding on payment, out of stock)


@dataclass
class Update:
    """One stock API call the platform applied (or recognised as a repeat)."""

    at: int
    platform: str
    shop_id: str
    merchant_sku: str
    mode: str  # "full" or "increment"
    asked: int
    before: int
    after: int
    sku_id: str  # the platform's SKU id of the listing changed
    repeat: bool = False  # an idempotent_id seen before: nothing changed


@dataclass
class Stock:
    """What every shop of a platform with a stock API lists (its catalog, at
    CATALOG_QUANTITY until a stock call changes it) and a flash sale's state,
    if there is one. ``clock``: the sandbox's present (None: a world nobody
    updates, advanced to the end of the sale - the offline truth)."""

    world: w.World
    sale: FlashSale | None
    clock: Callable[[], int] | None = None
    listings: list[Listing] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)

    def __post_init__(self) -> None:
        sale = self.sale
        self.skus = [MerchantSku(f"FS-{i + 1:03d}", f"{title}(秒杀)", w.Decimal(price))
                     for i, (title, price) in enumerate(w.PRODUCTS[: sale.skus if sale else 0])]
        self.channels = channels(self.world)
        seed = self.world.seed
        for platform, shop_id in self.world.shops:
            if w.profile(platform).stock_reduced_on:
                self.listings += [
                    Listing(platform, shop_id, MerchantSku(sku.outer_sku_id, sku.title, sku.price),
                            sku, CATALOG_QUANTITY, catalog=True)
                    for sku in self.world.catalog(platform, shop_id)]
        for platform, shop_id in self.channels if sale else ():
            for i, merchant in enumerate(self.skus):
                sku = w.Sku(product_id=w._digits(seed, platform, shop_id, "flash-product", i, n=11),
                            sku_id=w._digits(seed, platform, shop_id, "flash-sku", i, n=13),
                            outer_sku_id=merchant.code, title=merchant.title, price=merchant.price)
                self.listings.append(Listing(
                    platform, shop_id, merchant, sku,
                    self.sale.on_hand if self.sale.listed is None else self.sale.listed,
                    in_promotion=self.sale.pdd_promotion and platform == "pdd"))
        self._by_sku = {(lst.platform, lst.shop_id, lst.sku.sku_id): lst for lst in self.listings}
        self.tally = {(lst.channel, lst.merchant.code): _Tally() for lst in self.listings
                      if not lst.catalog}
        self.sold_log: list[tuple[int, str, int]] = []  # (paid at, merchant code, units)
        self._events: dict[tuple[str, str], list[tuple[int, w.Order, int]]] = {}
        self._idempotent: dict[tuple[str, str, str], Update] = {}
        self._queue: list[tuple[int, int, str, Any]] = []
        self._seq = itertools.count()
        self._done_until = sale.start - 1 if sale else 0
        self._lock = threading.RLock()
        for listing in self.listings:
            if listing.catalog:
                continue
            for attempt in self._attempts(listing):
                self._push(attempt[0], "try", (listing, *attempt))
        world_stock = getattr(self.world, "stock", None)
        if world_stock is not None and world_stock is not self:
            raise ValueError("the world already has a stock")
        self.world.stock = self

    # -- demand ------------------------------------------------------------------
    def _attempts(self, listing: Listing):
        """(time, units, pays after s or None, buyer rng) of every buyer's try."""
        rng = w._stream(self.world.seed, "flash", listing.platform, listing.shop_id,
                        listing.merchant.code)
        t = float(self.sale.start)
        per_second = self.sale.rate * (self.sale.demand or {}).get(listing.platform, 1.0) / 60
        while per_second > 0:
            t += rng.expovariate(per_second)
            if t >= self.sale.end:
                return
            units = rng.choice((1, 1, 1, 2))
            pays_after = rng.randint(5, 90) if rng.random() < 0.92 else None
            yield w._off_minute(int(t)), units, pays_after, rng.random()

    def _push(self, at: int, action: str, data: Any) -> None:
        heapq.heappush(self._queue, (at, next(self._seq), action, data))

    # -- time passes ---------------------------------------------------------------
    def advance(self, upto: int | None = None) -> None:
        """Decide every attempt, payment and close up to ``upto`` (default: now)."""
        if upto is None:
            upto = (self.clock() if self.clock is not None
                    else self.sale.end + CLOSE_UNPAID + 90 if self.sale else 0)
        with self._lock:
            while self._queue and self._queue[0][0] <= upto:
                at, _, action, data = heapq.heappop(self._queue)
                getattr(self, f"_{action}")(at, data)
            self._done_until = max(self._done_until, upto)

    def _try(self, at: int, data) -> None:
        listing, _, units, pays_after, draw = data
        tally = self.tally[(listing.channel, listing.merchant.code)]
        if listing.quantity < units:
            tally.refused += 1
            return
        order = self._order(listing, at, units, draw)
        sale = _Sale(listing, order, units)
        if w.profile(listing.platform).stock_reduced_on == "created":
            listing.quantity -= units
            sale.held = True
        self.world.add(order)
        self._event(order, at)
        if pays_after is None:
            self._push(at + CLOSE_UNPAID, "close", sale)
        else:
            self._push(w._off_minute(at + pays_after), "pay", sale)

    def _pay(self, at: int, sale: _Sale) -> None:
        listing = sale.listing
        if not sale.held:  # holds on payment: the units must still be listed
            if listing.quantity < sale.quantity:
                self._close(at, sale)
                return
            listing.quantity -= sale.quantity
        sale.order.events.append((at, w.PAID))
        self._event(sale.order, at)
        self.tally[(listing.channel, listing.merchant.code)].sold += sale.quantity
        self.sold_log.append((at, listing.merchant.code, sale.quantity))

    def _close(self, at: int, sale: _Sale) -> None:
        if sale.held:
            sale.listing.quantity += sale.quantity
            sale.held = False
        sale.order.events.append((at, w.CANCELLED))
        self._event(sale.order, at)
        self.tally[(sale.listing.channel, sale.listing.merchant.code)].closed += 1

    def _event(self, order: w.Order, at: int) -> None:
        version = len(order.events) - 1
        if version in order.visible_versions():
            self._events.setdefault((order.platform, order.shop_id), []).append(
                (at, order, version))

    def _order(self, listing: Listing, at: int, units: int, draw: float) -> w.Order:
        rng = w._stream(self.world.seed, "flash-buyer", listing.platform, listing.shop_id, at, draw)
        hour = at - at % w.HOUR
        order_id = w.profile(listing.platform).order_id(
            w._digits(self.world.seed, listing.platform, listing.shop_id, "flash", at, draw, n=20),
            hour)
        province, city, district = rng.choice(w.PROVINCES)
        order = w.Order(
            platform=listing.platform, shop_id=listing.shop_id, order_id=order_id,
            buyer_name=rng.choice(w.SURNAMES) + "".join(rng.sample(w.GIVEN, 2)),
            buyer_phone="1" + rng.choice("3456789") + "".join(rng.choices("0123456789", k=9)),
            province=province, city=city, district=district,
            street=f"{rng.choice(('文三路', '人民路'))}{rng.randint(1, 999)}号",
            lines=[w.Line(1, listing.sku, units)],
            merchant_discount=w.Decimal("0.00"), platform_discount=w.Decimal("0.00"),
            influencer_discount=w.Decimal("0.00"), shipping_fee=w.Decimal("0.00"),
        )
        order.events = [(at, w.CREATED)]
        order.live = True
        return order

    def events_between(self, platform: str, shop_id: str, start: int,
                       end: int) -> list[tuple[int, w.Order, int]]:
        """The flash sale's order versions modified in [start, end), decided
        so far (the pusher sends them; the world's hour cache cannot hold them)."""
        self.advance(min(end, self.clock()) if self.clock is not None else end)
        with self._lock:
            return [e for e in self._events.get((platform, shop_id), []) if start <= e[0] < end]

    # -- the platforms' stock APIs -------------------------------------------------
    def find(self, platform: str, shop_id: str, product_id: str | None = None,
             sku_id: str | None = None, outer_id: str | None = None) -> Listing:
        for listing in self.listings:
            if listing.channel != (platform, shop_id):
                continue
            if product_id and listing.sku.product_id != str(product_id):
                continue
            if sku_id and listing.sku.sku_id == str(sku_id):
                return listing
            if not sku_id and outer_id and listing.sku.outer_sku_id == outer_id:
                return listing
        raise StockRefused("not_found", f"no SKU {sku_id or outer_id} of product {product_id}"
                                        f" in shop {shop_id}")

    def update(self, listing: Listing, quantity: int, *, increment: bool = False,
               idempotent_id: str | None = None) -> Update:
        """Set (or, ``increment``, change by) a channel's listed quantity. An
        increment never takes it below 0; a full set below 0 is refused; a
        reduction of a listing in a promotion slot is refused; an
        ``idempotent_id`` seen before changes nothing and answers as before."""
        now = self.clock() if self.clock is not None else None
        self.advance(now)  # the call lands after everything up to now (replay() relies on it)
        with self._lock:
            at = now if now is not None else self._done_until
            key = (listing.platform, listing.shop_id, idempotent_id or "")
            if idempotent_id and key in self._idempotent:
                first = self._idempotent[key]
                repeat = Update(at, listing.platform, listing.shop_id,
                                listing.merchant.code, first.mode, quantity, listing.quantity,
                                listing.quantity, repeat=True, sku_id=listing.sku.sku_id)
                self.updates.append(repeat)
                return first
            if not increment and quantity < 0:
                raise StockRefused("invalid", f"quantity {quantity} < 0")
            after = max(0, listing.quantity + quantity) if increment else quantity
            if listing.in_promotion and after < listing.quantity:
                raise StockRefused("promotion", "the SKU is in a promotion slot:"
                                                " its stock cannot be reduced")
            done = Update(at, listing.platform, listing.shop_id, listing.merchant.code,
                          "increment" if increment else "full", quantity, listing.quantity, after,
                          sku_id=listing.sku.sku_id)
            listing.quantity = after
            self.updates.append(done)
            if idempotent_id:
                self._idempotent[key] = done
            return done

    # -- a sale played again, offline ---------------------------------------------------
    def record(self) -> list[dict[str, Any]]:
        """The stock calls that changed a listing, to play the sale again
        without the sandbox (``replay``)."""
        with self._lock:
            return [{"at": u.at, "platform": u.platform, "shop_id": u.shop_id,
                     "sku_id": u.sku_id, "after": u.after}
                    for u in self.updates if not u.repeat]

    def replay(self, calls: list[dict[str, Any]]) -> None:
        """Apply recorded stock calls at their times, as the sandbox applied
        them: each after every event up to its second, before the next one
        (hence the half second)."""
        for call in calls:
            self._push(call["at"] + 0.5, "apply", call)

    def _apply(self, at: float, call: dict[str, Any]) -> None:
        listing = self._by_sku[(call["platform"], call["shop_id"], call["sku_id"])]
        self.updates.append(Update(int(at), listing.platform, listing.shop_id,
                                   listing.merchant.code, "full", call["after"],
                                   listing.quantity, call["after"], sku_id=listing.sku.sku_id))
        listing.quantity = call["after"]

    def _now(self) -> int:
        return self.clock() if self.clock is not None else self._done_until

    # -- what the brand's warehouse and the truth say ---------------------------------
    def on_hand(self, at: int) -> dict[str, int]:
        """The warehouse's on-hand per merchant SKU at ``at`` (nothing ships
        during the sale: paid orders are reserved, not yet gone)."""
        if self.sale is None:
            return {}
        extra = self.sale.replenish if at >= self.sale.replenished_at else 0
        return {sku.code: self.sale.on_hand + extra for sku in self.skus}

    def truth(self) -> list[dict[str, Any]]:
        """Per merchant SKU: supply, units sold (paid) per channel and in all,
        units sold beyond the supply, and when the first such unit sold."""
        self.advance()
        if self.sale is None:
            return []
        with self._lock:
            rows = []
            for sku in self.skus:
                supply = self.sale.on_hand
                sold = 0
                first_oversold = None
                for at, code, units in sorted(self.sold_log):
                    if code != sku.code:
                        continue
                    sold += units
                    available = supply + (self.sale.replenish
                                          if at >= self.sale.replenished_at else 0)
                    if first_oversold is None and sold > available:
                        first_oversold = at
                total_supply = supply + self.sale.replenish
                channel_rows = {f"{p}/{s}": vars(self.tally[((p, s), sku.code)]).copy()
                                for p, s in self.channels}
                rows.append({
                    "merchant_sku": sku.code, "title": sku.title,
                    "on_hand": self.sale.on_hand, "replenished": self.sale.replenish,
                    "supply": total_supply, "sold": sold,
                    "oversold": max(0, sold - total_supply),
                    "first_oversold_at": first_oversold,
                    "channels": channel_rows,
                })
            return rows

    def state(self) -> dict[str, Any]:
        """What ``/_sandbox/stock`` answers: the listings now, and the truth."""
        truth = self.truth()
        with self._lock:
            return {
                # the sandbox's JSON has no floats: exact decimals instead
                "sale": None if self.sale is None else
                {k: _exact(v) for k, v in vars(self.sale).items()},
                "listings": [{"platform": lst.platform, "shop_id": lst.shop_id,
                              "merchant_sku": lst.merchant.code,
                              "product_id": lst.sku.product_id, "sku_id": lst.sku.sku_id,
                              "outer_id": lst.sku.outer_sku_id, "quantity": lst.quantity,
                              "in_promotion": lst.in_promotion} for lst in self.listings],
                "updates": len(self.updates),
                "truth": truth,
            }


def _exact(value: Any) -> Any:
    """A float as an exact decimal, in dicts too (the sandbox's JSON has none)."""
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    return w.Decimal(str(value)) if isinstance(value, float) else value


# -- the brand's warehouse system -------------------------------------------------
WAREHOUSE_ID = "WH-1"
WAREHOUSE_PATH = "/wms/inventory"


def warehouse_token(seed: int) -> str:
    """The warehouse API's bearer token, derived from the seed like the
    platforms' credentials (nothing secret lives in code or config)."""
    from orderhub_tools.sandbox.gateway import sandbox_credentials

    return sandbox_credentials(seed, "wms", [WAREHOUSE_ID]).token_for(WAREHOUSE_ID)


def warehouse_answer(world: w.World, now: int) -> dict[str, Any]:
    """``GET /wms/inventory``: the warehouse's on-hand per merchant SKU now.
    The catalog's products are not scarce (a steady five thousand or so each:
    the world does not model their stock); a flash sale's SKUs have what
    :meth:`Stock.on_hand` says."""
    from datetime import UTC, datetime

    items = [{"sku": w.merchant_code(i), "on_hand": 5000 + int(w._digits(world.seed, "wms", i, n=3)),
              "location": f"A-{i + 1:02d}"} for i in range(len(w.PRODUCTS))]
    if world.stock is not None:
        items += [{"sku": code, "on_hand": units, "location": "FLASH"}
                  for code, units in world.stock.on_hand(now).items()]
    return {"warehouse_id": WAREHOUSE_ID,
            "as_of": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
            "items": items}


def channels(world: w.World) -> list[tuple[str, str]]:
    """The flash sale's channels: the first shop of every platform whose
    gateway has a stock API, in the registry's order."""
    found: dict[str, str] = {}
    for platform, shop_id in world.shops:
        if w.profile(platform).stock_reduced_on and platform not in found:
            found[platform] = shop_id
    return list(found.items())


# -- the demo's sale, recorded so the offline truth can play it again -------------------
def sale_record_file():
    """Where ``orderhub demo`` records its flash sale and the stock calls the
    sandbox applied (the sale decided which buyers got orders, so the
    offline truth needs them)."""
    from orderhub.config import home

    return home() / "sandbox-sale.json"


def save_sale(world: w.World) -> None:
    stock = world.stock
    sale_record_file().write_text(json.dumps({
        "seed": world.seed, "scale": world.scale, "shops": [list(s) for s in world.shops],
        "sale": vars(stock.sale), "calls": stock.record()}))


def forget_sale() -> None:
    sale_record_file().unlink(missing_ok=True)


def recorded_world(seed: int, shops: list[tuple[str, str]], scale: float) -> w.World | None:
    """This world with the recorded flash sale played again, if the last demo
    ran one in this world (same seed, scale and shops); else None."""
    path = sale_record_file()
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    if (record["seed"], record["scale"], [tuple(s) for s in record["shops"]]) != (
            seed, scale, [tuple(s) for s in shops]):
        return None
    world = w.World(seed, shops, scale)
    Stock(world, FlashSale(**record["sale"])).replay(record["calls"])
    return world
