"""What every sandbox gateway shares: shop lookup by token, the clock, the
modified-time search with paging, fault injection, and a cache so paging one
window does not search the world once per page."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from threading import Lock, local
from typing import Any, ClassVar

from orderhub import jsonutil
from orderhub.config import PLATFORM_TZ
from orderhub_tools.sandbox.faults import ShopFaults
from orderhub_tools.sandbox.settlement import SettlementLine, Settlements
from orderhub_tools.sandbox.stock import CATALOG_QUANTITY, StockRefused, Update
from orderhub_tools.sandbox.world import Order, Sku, World

CLOCK_TOLERANCE = 600  # gateways refuse request timestamps more than 10 minutes off


@dataclass(frozen=True)
class AppCredentials:
    """A platform app (key + secret) and one access token per shop. Derived
    from the seed, so the sandbox and ``orderhub demo`` agree without any
    secret living in code or config."""

    app_key: str
    app_secret: str
    tokens: dict[str, str]  # access token -> shop id

    def token_for(self, shop_id: str) -> str:
        return next(t for t, s in self.tokens.items() if s == shop_id)


def sandbox_credentials(seed: int, platform: str, shop_ids: list[str]) -> AppCredentials:
    def derive(*parts: object) -> str:
        return hashlib.sha256("|".join(["orderhub-sandbox", str(seed), *map(str, parts)])
                              .encode()).hexdigest()

    return AppCredentials(
        app_key=str(int(derive(platform, "app_key"), 16))[:8],
        app_secret=derive(platform, "app_secret")[:32],
        tokens={derive(platform, shop, "token")[:40]: shop for shop in shop_ids},
    )


def yuan(amount: Decimal) -> str:
    """Yuan as a string with two decimals: ``"200.07"``."""
    return f"{amount:.2f}"


def yuan_number(amount: Decimal) -> Decimal:
    """Yuan as a JSON number the way PDD writes it: ``4.5``, ``59``."""
    text = f"{amount:.2f}".rstrip("0").rstrip(".")
    return Decimal(text)


def fen(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def allocate(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split ``total`` over lines by weight, to the cent, summing exactly."""
    base = sum(weights)
    if not weights or base == 0:
        return [Decimal("0.00")] * len(weights)
    shares = [(total * w / base).quantize(Decimal("0.01")) for w in weights[:-1]]
    return [*shares, total - sum(shares, Decimal("0.00"))]


def parse_local(value: str | None) -> int | None:
    """``yyyy-MM-dd HH:mm:ss`` Beijing time -> Unix seconds (None if malformed)."""
    try:
        return int(datetime.strptime(value or "", "%Y-%m-%d %H:%M:%S")
                   .replace(tzinfo=PLATFORM_TZ).timestamp())
    except ValueError:
        return None


def _body(payload: dict[str, Any] | bytes) -> bytes:
    """A JSON answer, or a file (bytes) as it is."""
    return payload if isinstance(payload, bytes) else jsonutil.dumps(payload).encode()


@dataclass
class Reply:
    status: int
    body: bytes
    clock_offset: int = 0  # the gateway's clock (Date header) minus the sandbox clock


GATEWAY_TIMEOUT = b"<html><body><h1>504 Gateway Time-out</h1></body></html>"


def with_faults(faults: ShopFaults, clock: int, handle: Callable[[int], Reply],
                throttled: Callable[[], Reply], refused: Callable[[int], Reply | None]) -> Reply:
    """One request through a shop's faults, for every gateway of the sandbox:
    an incident (504) or a flaky 5xx before it reaches the platform, then
    throttling (``throttled()``: the platform's own answer), then a caller's
    clock off by more than the tolerance (``refused(offset)``: the platform's
    refusal, or None to let ``handle`` refuse it), then the platform's answer
    (``handle(offset)``), which can still be lost on the way back or arrive
    cut short. ``offset``: the platform's clock minus the sandbox's."""
    offset = faults.clock_offset()
    n, failure = faults.next_request(clock)
    if failure == "incident":
        return Reply(504, GATEWAY_TIMEOUT, offset)
    if failure == "flaky":
        code = (500, 502, 503)[n % 3]
        return Reply(code, f"<html><body><h1>{code}</h1></body></html>".encode(), offset)
    if failure == "throttle":
        return replace(throttled(), clock_offset=offset)
    refusal = refused(offset)
    if refusal is not None:
        return replace(refusal, clock_offset=offset)
    reply = replace(handle(offset), clock_offset=offset)
    if faults.lose_answer(n):  # handled, then the answer is lost on the way
        return Reply(504, GATEWAY_TIMEOUT, offset)
    if faults.truncate(n):
        return replace(reply, body=reply.body[: max(1, len(reply.body) * 2 // 3)])
    return reply


class Gateway:
    """One platform's gateway. Subclasses: ``prefix``, ``token``, ``request_time``,
    ``handle``, ``render`` and the platform's ``throttled`` and ``clock_refused`` bodies.

    A subclass with a ``platform`` name in a module of this package is that
    platform's gateway (:func:`orderhub_tools.sandbox.gateways`); its class
    attributes also say how the platform's orders live in the world."""

    platform: ClassVar[str]
    prefix: ClassVar[str]
    extra_prefixes: ClassVar[tuple[str, ...]] = ()
    connection_path: ClassVar[str] = ""  # the gateway URL a shop's connection gets (default: prefix)
    throttle_status: ClassVar[int] = 200  # the platforms answer "throttled" in a 200 body
    first_page: ClassVar[int] = 1
    # How the platform's orders live in the world (sandbox/world.py):
    base_rate: ClassVar[float] = 50.0  # orders per shop-hour at scale 1, before the daily curve
    shows_unpaid: ClassVar[bool] = True  # its order API lists orders before payment
    has_aftersale: ClassVar[bool] = True  # its order API shows after-sale refunds
    shows_ship_time: ClassVar[bool] = True  # its order API has a shipment time
    influencer_discounts: ClassVar[bool] = False  # live-stream hosts fund discounts
    food_delivery: ClassVar[bool] = False  # delivered by a rider within the hour (Meituan, Ele.me)
    # Payouts (sandbox/settlement.py): on the buyer's confirmation, or a daily batch on the due day.
    pays_on_completion: ClassVar[bool] = False
    # Stock (sandbox/stock.py): when a sale takes units off the platform's
    # listed quantity, "created" or "paid"; "" = no stock API in the sandbox.
    stock_reduced_on: ClassVar[str] = ""

    @staticmethod
    def order_id(digits: str, hour: int) -> str:
        """The platform's order id shape, from 20 random digits and the creation hour."""
        return digits[:19]
    # Test switches: render some orders with a status the mapping seed lacks;
    # leave top-level fields out of every order (a platform "dropping" a field).
    unmapped_status: bool = False
    dropped_fields: tuple[str, ...] = ()
    # ... and for these shops, lose one order from every page while reporting
    # the full total: a window that stays short however often it is read.
    short_shops: frozenset[str] = frozenset()

    def __init__(self, world: World, credentials: AppCredentials, clock, index_delay: int,
                 faults: dict[str, ShopFaults] | None = None):
        self.world = world
        self.credentials = credentials
        self.clock = clock  # () -> sandbox now, Unix seconds
        self.index_delay = index_delay
        self.faults = faults or {}
        self._cache: dict[tuple, list[tuple[Order, int]]] = {}
        self.settlements = Settlements(world)  # this platform's settlements, cached
        self._lines: dict[tuple, list[SettlementLine]] = {}
        self._lock = Lock()
        self._request = local()  # the shop's faults for the request this thread serves

    # -- the platform's dialect ------------------------------------------------
    def token(self, query: dict, form: dict) -> str | None:
        raise NotImplementedError

    def request_time(self, query: dict, form: dict) -> float | None:
        """The caller's request timestamp (Unix seconds), if it sent one."""
        raise NotImplementedError

    def handle(self, path: str, query: dict[str, str], form: dict[str, str],
               body: bytes) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError

    def render(self, order: Order, version: int) -> dict[str, Any]:
        raise NotImplementedError

    def throttled(self, ban_seconds: int) -> dict[str, Any]:
        raise NotImplementedError

    def clock_refused(self) -> dict[str, Any]:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------
    def shop_for(self, token: str | None) -> str | None:
        return self.credentials.tokens.get(token or "")

    def shop_for_request(self, query: dict[str, str], form: dict[str, str],
                         headers: dict[str, str]) -> str | None:
        """The shop a request is for: by the access token among its
        parameters (a plain API overrides this to read a header)."""
        return self.shop_for(self.token(query, form))

    @property
    def _request_shop(self) -> str | None:
        """The shop of the request this thread serves (for handle())."""
        return getattr(self._request, "shop", None)

    def serve(self, path: str, query: dict[str, str], form: dict[str, str], body: bytes,
              headers: dict[str, str] | None = None) -> Reply:
        """Faults around the platform's own handling of one request."""
        shop_id = self.shop_for_request(query, form, {k.lower(): v for k, v in
                                                      (headers or {}).items()})
        self._request.shop = shop_id
        faults = self.faults.get(shop_id) if shop_id else None
        if faults is None:
            status, payload = self.handle(path, query, form, body)
            return Reply(status, _body(payload))

        def refused(offset: int) -> Reply | None:
            sent = self.request_time(query, form)
            if offset and sent is not None and abs(sent - (self.clock() + offset)) > CLOCK_TOLERANCE:
                faults.note("skew")
                return Reply(200, jsonutil.dumps(self.clock_refused()).encode())
            return None

        def handle(offset: int) -> Reply:
            self._request.faults = faults  # for search() and page() during this request
            try:
                status, payload = self.handle(path, query, form, body)
            finally:
                self._request.faults = None
            return Reply(status, _body(payload))

        return with_faults(
            faults, self.clock(), handle,
            lambda: Reply(self.throttle_status, jsonutil.dumps(self.throttled(1)).encode()), refused)

    @property
    def _faults(self) -> ShopFaults | None:
        return getattr(self._request, "faults", None)

    def search(self, shop_id: str, start: int, end: int) -> list[tuple[Order, int]]:
        faults = self._faults
        visible_before = self.clock() - self.index_delay
        extra = None
        if faults is not None:
            visible_before -= faults.drift_lag(self.clock())
            if "late" in faults:
                def extra(order: Order, i: int, faults=faults) -> int:
                    versions = order.visible_versions()
                    position = versions.index(i)
                    following = (order.events[versions[position + 1]][0]
                                 if position + 1 < len(versions) else None)
                    return faults.late_delay(order.order_id, i, order.events[i][0], following)
        key = (shop_id, start, end, visible_before, extra is not None)
        with self._lock:
            if key not in self._cache:
                if len(self._cache) > 256:
                    self._cache.clear()
                self._cache[key] = self.world.search(self.platform, shop_id, start, end,
                                                     visible_before, extra)
            return self._cache[key]

    def page(self, shop_id: str, start: int, end: int, page: int,
             size: int) -> tuple[list[dict[str, Any]], int]:
        hits = self.search(shop_id, start, end)
        offset = (page - self.first_page) * size
        chosen = hits[offset:offset + size]
        faults = self._faults
        if faults is not None and "dup" in faults and offset > 0 and chosen:
            chosen = [hits[offset - 1], *chosen]  # the previous page's last order again
            faults.note("dup")
        if shop_id in self.short_shops and chosen:
            chosen = chosen[:-1]
        rendered = [self.render(o, v) for o, v in chosen]
        for order in rendered:
            for name in self.dropped_fields:
                order.pop(name, None)
        return rendered, len(hits)

    def current(self, shop_id: str, order_id: str) -> tuple[Order, int] | None:
        """An order of the shop at its latest version now, for a detail API
        (it reads the platform's store, not the search index: no index
        delay); None if the shop has no such order (yet)."""
        order = self.world.find(self.platform, order_id)
        version = self.world.latest_version(order, self.clock()) if order else None
        if order is None or order.shop_id != shop_id or version is None:
            return None
        return order, version

    # -- push (sandbox/push.py decides when; sandbox/channels.py holds connections) --
    # "webhook": the pusher POSTs push_request(items) to the receiver's URL;
    # "websocket": the receiver connects to the platform's message service and
    # the pusher writes push_frame(item) on that connection.
    push_transport: ClassVar[str] = ""
    push_batch: ClassVar[int] = 50  # messages per webhook POST
    channel_path: ClassVar[str] = ""  # where the message service takes its connections
    channel_hello: ClassVar[bool] = False  # connect signed in a first frame (TMC), not the URL

    def push_item(self, order: Order, version: int) -> tuple[str, dict[str, Any]]:
        """(message id, message) for one version: ids and status, not the order."""
        raise NotImplementedError

    def push_forged(self, item: dict[str, Any]) -> dict[str, Any]:
        """A forgery modelled on a real message (sent with a wrong signature
        by webhook; for a shop the connection's app does not serve on a
        long connection)."""
        raise NotImplementedError

    def push_malformed(self, msg_id: str, half: bool) -> bytes:
        """A message the receiver cannot read (two kinds, by ``half``)."""
        raise NotImplementedError

    def push_target(self, url: str, body: bytes, forge: bool = False) -> str:
        """Where one webhook POST goes: the receiver's URL (SF same-city
        adds its sign to it: sandbox/delivery.py)."""
        return url

    def push_frame(self, item: dict[str, Any]) -> str:
        """A message as a long connection's text frame."""
        raise NotImplementedError

    def channel_open(self, path: str, hello) -> tuple[bool, str | None]:
        """Whether a connection to ``path`` is the app's (``hello()`` reads
        its first frame when the protocol has one); the answer to send."""
        raise NotImplementedError

    def channel_read(self, text: str) -> tuple[str | None, str | None]:
        """A frame the receiver sent: (the message id it confirms, the answer to send)."""
        raise NotImplementedError

    # -- stock (sandbox/stock.py) ------------------------------------------------------
    def stock_update(self, shop_id: str, *, product_id: str | None, sku_id: str | None = None,
                     outer_id: str | None = None, quantity: int, increment: bool,
                     idempotent_id: str | None = None) -> tuple[Update | None, StockRefused | None]:
        """Apply one stock API call: (the update, None), or (None, why the
        platform refuses it) for the gateway to word in its dialect."""
        stock = self.world.stock
        try:
            if stock is None:
                raise StockRefused("not_found", f"no SKU {sku_id or outer_id} of product"
                                                f" {product_id} in shop {shop_id}")
            listing = stock.find(self.platform, shop_id, product_id, sku_id, outer_id)
            return stock.update(listing, quantity, increment=increment,
                                idempotent_id=idempotent_id), None
        except StockRefused as refused:
            return None, refused

    def listing_page(self, shop_id: str, page: int, size: int,
                     first: int = 1) -> tuple[list[tuple[Sku, int]], int]:
        """One page of the products the shop lists (one SKU each: the
        catalog's, then a flash sale's, with their quantities now), and how
        many it lists in all."""
        stock = self.world.stock
        if stock is not None:
            stock.advance()
            products = [(listing.sku, listing.quantity) for listing in stock.listings
                        if listing.channel == (self.platform, shop_id)]
        else:
            products = [(sku, CATALOG_QUANTITY)
                        for sku in self.world.catalog(self.platform, shop_id)]
        offset = (page - first) * size
        return products[offset:offset + size], len(products)

    # -- settlements ----------------------------------------------------------------
    def settlement_lines(self, shop_id: str, start: int, end: int) -> list[SettlementLine]:
        """Lines booked in [start, end) by now (the clock): a day's bill fills
        up as the day goes on. Oldest first, then by line id (stable paging)."""
        upto = min(end, self.clock())
        key = (shop_id, start, upto)
        with self._lock:
            if key not in self._lines:
                if len(self._lines) > 64:
                    self._lines.clear()
                self._lines[key] = self.settlements.lines(self.platform, shop_id, start, upto) \
                    if upto > start else []
            return self._lines[key]
