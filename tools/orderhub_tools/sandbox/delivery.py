"""SF same-city in the sandbox (issue 19): the deliveries of the shops that
deliver their own orders with it, and the gateway that answers for them.

A delivery follows its order (sandbox/world.py, the food lifecycle): the
shop dispatches it within two minutes of payment, a rider accepts it, reaches
the store, picks the order up when the order ships and delivers it when the
order completes; an order cancelled after the store accepted it cancels its
delivery. Distance and fee are drawn per order: 8 yuan up to 3 km, 2 yuan
for each further km, and one order in ten with an SF coupon of 2 yuan (the
shop pays ``real_pay_money``). Everything is derived from the seed and the
order, so the gateway and ``orderhub sandbox truth --kind deliveries`` agree.

    POST /sf/open/api/external/getorderstatus?sign=…   the delivery now
    POST /sf/open/api/external/listorderfeed?sign=…    its statuses and their times
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from orderhub.config import PLATFORM_TZ
from orderhub.delivery.sf_same_city import FEED_API, NO_SUCH_ORDER, STATUS_API, body_text, sign
from orderhub_tools.sandbox.faults import ShopFaults
from orderhub_tools.sandbox.gateway import CLOCK_TOLERANCE, AppCredentials, Reply, with_faults
from orderhub_tools.sandbox.world import (
    COMPLETED,
    MAX_LIFETIME,
    PAID,
    REFUND_REQUESTED,
    SHIPPED,
    SURNAMES,
    Order,
    World,
    _digits,
    _stream,
)

SERVICE = "sf_same_city"
PREFIX = "/sf"
CREATED, CANCELLED, ACCEPTED, AT_STORE, DELIVERING, DELIVERED = 1, 2, 10, 12, 15, 17
WITHDREW = 22  # the rider gave the delivery back; another accepts it
STATUS_TEXT = {CREATED: "订单创建", CANCELLED: "订单取消", ACCEPTED: "配送员接单",
               AT_STORE: "配送员到店", DELIVERING: "配送员配送中", DELIVERED: "订单完成",
               WITHDREW: "配送员撤单"}


@dataclass(frozen=True)
class Delivery:
    """One delivery's whole life, as SF knows it."""

    order: Order
    sf_order_id: str
    events: tuple[tuple[int, int], ...]  # (Unix seconds, order_status), ascending
    distance_m: int
    total_fen: int
    real_fen: int
    rider_name: str
    rider_phone: str

    def at(self, now: int) -> list[tuple[int, int]]:
        """Its statuses up to ``now`` (none: not dispatched yet)."""
        return [e for e in self.events if e[0] <= now]


def delivery_of(world: World, order: Order) -> Delivery | None:
    """The delivery of a paid order of a shop delivering with SF same-city."""
    times = {kind: t for t, kind in order.events}
    if PAID not in times:
        return None
    rng = _stream(world.seed, SERVICE, order.platform, order.order_id)
    created = times[PAID] + rng.randint(20, 120)
    accepted = created + rng.randint(20, 180)
    events = [(created, CREATED)]
    if SHIPPED in times:
        picked_up = times[SHIPPED]
        events.append((accepted, ACCEPTED))
        withdrew = accepted + rng.randint(30, 120)
        again = withdrew + rng.randint(30, 120)
        if rng.random() < 0.05 and again + 60 < picked_up:  # one rider in twenty gives it back
            events += [(withdrew, WITHDREW), (again, ACCEPTED)]
            accepted = again
        at_store = max(accepted + 30, picked_up - rng.randint(60, 300))
        events += [(at_store, AT_STORE), (picked_up, DELIVERING)]
        if COMPLETED in times:
            events.append((times[COMPLETED], DELIVERED))
    elif REFUND_REQUESTED in times:  # cancelled after the store accepted it
        cancelled = times[REFUND_REQUESTED]
        created = min(created, cancelled - 1)
        events = [(created, CREATED)]
        if accepted < cancelled:
            events.append((accepted, ACCEPTED))
        events.append((cancelled, CANCELLED))
    distance = rng.randint(300, 6000)
    total = 800 + 200 * max(0, -(-(distance - 3000) // 1000))
    coupon = 200 if rng.random() < 0.1 else 0
    return Delivery(
        order=order,
        sf_order_id="3" + _digits(world.seed, SERVICE, order.order_id, n=15),
        events=tuple(events),
        distance_m=distance,
        total_fen=total,
        real_fen=total - coupon,
        rider_name=rng.choice(SURNAMES) + "师傅",
        rider_phone="1" + rng.choice("3579") + "".join(rng.choices("0123456789", k=9)),
    )


def local(ts: int) -> str:
    return datetime.fromtimestamp(ts, PLATFORM_TZ).strftime("%Y-%m-%d %H:%M:%S")


def status_answer(delivery: Delivery, now: int) -> dict[str, Any]:
    """getorderstatus's result at ``now``."""
    steps = delivery.at(now)
    status = steps[-1][1]
    rider = status not in (CREATED, CANCELLED) or any(s == ACCEPTED for _, s in steps)
    return {
        "sf_order_id": delivery.sf_order_id,
        "shop_order_id": delivery.order.order_id,
        "order_status": status,
        "status_desc": STATUS_TEXT[status],
        "rider_name": delivery.rider_name if rider else "",
        "rider_phone": delivery.rider_phone if rider else "",
        "delivery_distance_meter": delivery.distance_m,
        "total_pay_money": delivery.total_fen,
        "real_pay_money": delivery.real_fen,
    }


def feed_answer(delivery: Delivery, now: int) -> dict[str, Any]:
    """listorderfeed's result at ``now``."""
    return {
        "sf_order_id": delivery.sf_order_id,
        "shop_order_id": delivery.order.order_id,
        "feed": [{"order_status": status, "status_desc": STATUS_TEXT[status],
                  "create_time": local(t)} for t, status in delivery.at(now)],
    }


def deliveries_truth(world: World, delivered: dict[str, str], start: int, end: int,
                     now: int) -> list[dict]:
    """The deliveries of the orders in the orders' truth for [start, end)
    whose shop delivers with SF same-city (``delivered``: shop id ->
    service), each in its state at ``now``: the sandbox clock when the last
    run asked (the service answers with the present, not a modified-time
    window)."""
    rows = []
    for row in world.truth(start, end):
        if delivered.get(row["shop_id"]) != SERVICE:
            continue
        order = world.find(row["platform"], row["order_id"])
        delivery = delivery_of(world, order) if order else None
        steps = delivery.at(now) if delivery else []
        if not steps:
            continue
        when: dict[int, int] = {}
        for t, status in steps:  # each status's first time (a rider who withdrew: the first acceptance)
            when.setdefault(status, t)
        rows.append({
            "platform": row["platform"], "shop_id": row["shop_id"], "order_id": row["order_id"],
            "delivery_id": delivery.sf_order_id, "delivery_status_code": steps[-1][1],
            "dispatched_at": when.get(CREATED), "accepted_at": when.get(ACCEPTED),
            "arrived_at": when.get(AT_STORE), "picked_up_at": when.get(DELIVERING),
            "delivered_at": when.get(DELIVERED), "cancelled_at": when.get(CANCELLED),
            "rider_changes": sum(status == WITHDREW for _, status in steps),
            "distance_m": delivery.distance_m, "delivery_fee": delivery.real_fen,
        })
    rows.sort(key=lambda r: (r["platform"], r["shop_id"], r["order_id"]))
    return rows


class SfSameCityGateway:
    """SF same-city's open API for the sandbox's shops that deliver with it.
    ``faults``: per shop id, the faults of SF's gateway when it answers
    about that shop's deliveries (the shop's fault profile, SF's own
    request count and clock): 5xx, 504 incidents, its throttling answer,
    a clock 15 minutes off, cut-off and lost answers (faults.py)."""

    def __init__(self, world: World, credentials: AppCredentials, clock,
                 delivered: dict[str, str], faults: dict[str, ShopFaults] | None = None):
        self.world = world
        self.credentials = credentials  # app_key = dev_id, app_secret = dev_key
        self.clock = clock
        self.shops = {shop_id: platform for platform, shop_id in world.shops
                      if delivered.get(shop_id) == SERVICE}
        self.faults = faults or {}

    @staticmethod
    def answer(code: int, message: str, result: Any = None) -> Reply:
        body = {"error_code": code, "error_msg": message}
        if result is not None:
            body["result"] = result
        return Reply(200, json.dumps(body, ensure_ascii=False).encode())

    def serve(self, path: str, query: dict[str, str], body: bytes) -> Reply:
        text = body.decode("utf-8")
        try:
            asked = json.loads(text)
        except ValueError:
            return self.answer(1000, "请求体不是JSON")
        faults = self.faults.get(str(asked.get("shop_id")))
        if faults is None:
            return self.handle(path, query, text, asked, 0)

        def refused(offset: int) -> None:
            if offset and abs(int(asked.get("push_time") or 0) - (self.clock() + offset)) > CLOCK_TOLERANCE:
                faults.note("skew")  # stamped with the caller's clock: handle() refuses it

        return with_faults(faults, self.clock(),
                           lambda offset: self.handle(path, query, text, asked, offset),
                           lambda: self.answer(1004, "请求过于频繁"), refused)

    def handle(self, path: str, query: dict[str, str], text: str, asked: dict,
               offset: int) -> Reply:
        """SF's own answer; ``offset``: its clock minus the sandbox's."""
        api = path.rsplit("/", 1)[-1]
        if str(asked.get("dev_id")) != self.credentials.app_key:
            return self.answer(1002, "dev_id不存在")
        if query.get("sign") != sign(text, self.credentials.app_key, self.credentials.app_secret):
            return self.answer(1001, "签名错误")
        if abs(int(asked.get("push_time") or 0) - (self.clock() + offset)) > CLOCK_TOLERANCE:
            return self.answer(1003, "push_time与服务器时间相差过大")
        if api not in (STATUS_API, FEED_API):
            return Reply(404, json.dumps({"error": f"no API {api}"}).encode())
        platform = self.shops.get(str(asked.get("shop_id")))
        order = self.world.find(platform, str(asked.get("order_id"))) if platform else None
        if order is not None and order.shop_id != str(asked.get("shop_id")):
            order = None
        delivery = delivery_of(self.world, order) if order else None
        now = self.clock()
        if delivery is None or not delivery.at(now):
            return self.answer(int(NO_SUCH_ORDER), "订单不存在")
        answer = status_answer if api == STATUS_API else feed_answer
        return self.answer(0, "success", answer(delivery, now))

    # -- status callbacks (live mode: sandbox/push.py sends them as they happen) --
    platform = SERVICE  # the pusher's name for this sender
    push_transport = "webhook"
    push_batch = 1  # one callback per POST

    def delivery_events(self, shop_id: str, start: int, end: int) -> list[tuple[int, Delivery, int]]:
        """Every status change in [start, end) of the deliveries of a shop's
        orders: (time, delivery, index of the status), oldest first."""
        platform = self.shops[shop_id]
        found = []
        for order in self.world.orders_created(platform, shop_id, start - MAX_LIFETIME, end):
            delivery = delivery_of(self.world, order)
            for i, (t, _) in enumerate(delivery.events if delivery else ()):
                if start <= t < end:
                    found.append((t, delivery, i))
        found.sort(key=lambda e: (e[0], e[1].sf_order_id, e[2]))
        return found

    def callback_item(self, delivery: Delivery, index: int) -> tuple[str, dict[str, Any]]:
        """(message id, callback body) for one status change."""
        t, status = delivery.events[index]
        url_index = {DELIVERED: "order_complete", CANCELLED: "sf_cancel"}.get(status,
                                                                              "rider_status")
        rider = status not in (CREATED, CANCELLED)
        item = {"sf_order_id": delivery.sf_order_id, "shop_id": delivery.order.shop_id,
                "shop_order_id": delivery.order.order_id, "url_index": url_index,
                "order_status": status, "status_desc": STATUS_TEXT[status],
                "operator_name": delivery.rider_name if rider else "",
                "operator_phone": delivery.rider_phone if rider else "", "push_time": t}
        return f"{delivery.sf_order_id}-{status}-{t}", item

    def push_forged(self, item: dict[str, Any]) -> dict[str, Any]:
        return dict(item, shop_order_id="9" + item["shop_order_id"])

    def push_malformed(self, msg_id: str, half: bool) -> bytes:
        return b'{"sf_order_id": "' if half else b'{"order_status": 17}'

    def push_request(self, items: list[dict[str, Any]], *, forge: bool = False,
                     raw: bytes | None = None, url: str = "") -> tuple[dict[str, str], bytes]:
        """One callback: its JSON body (the sign goes in the URL: push_target)."""
        body = raw if raw is not None else body_text(
            {**items[0], "dev_id": int(self.credentials.app_key)}).encode()
        return {"Content-Type": "application/json"}, body

    def push_target(self, url: str, body: bytes, forge: bool = False) -> str:
        """The developer's callback URL with SF's sign of this body (a forged
        callback's made with a key that is not the account's)."""
        key = "not-the-dev-key" if forge else self.credentials.app_secret
        return f"{url}?{urlencode({'sign': sign(body.decode(), self.credentials.app_key, key)})}"

    @staticmethod
    def push_acked(status: int, text: str) -> bool:
        try:
            return status == 200 and json.loads(text).get("error_code") == 0
        except (ValueError, AttributeError):
            return False
