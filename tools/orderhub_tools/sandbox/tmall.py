"""Sandbox TOP gateway: ``POST /tmall/router/rest``, ``taobao.trades.sold.increment.get``."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Any

from orderhub.platforms.base import local_time
from orderhub.platforms.tmall import (
    BILL_METHOD,
    BILL_RESPONSE_KEY,
    DETAIL_METHOD,
    LISTING_METHOD,
    LISTING_RESPONSE_KEY,
    METHOD,
    RESPONSE_KEY,
    STOCK_METHOD,
    STOCK_RESPONSE_KEY,
    sign,
    tmc_sign,
)
from orderhub_tools.sandbox import world as w
from orderhub_tools.sandbox.gateway import (
    CLOCK_TOLERANCE,
    Gateway,
    allocate,
    fen,
    parse_local,
    yuan,
)
from orderhub_tools.sandbox.settlement import SettlementLine

STATUS = {
    w.CREATED: "WAIT_BUYER_PAY", w.CANCELLED: "TRADE_CLOSED_BY_TAOBAO",
    w.PAID: "WAIT_SELLER_SEND_GOODS", w.REFUND_REQUESTED: "WAIT_SELLER_SEND_GOODS",
    w.REFUNDED: "TRADE_CLOSED", w.SHIPPED: "WAIT_BUYER_CONFIRM_GOODS",
    w.COMPLETED: "TRADE_FINISHED", w.AFTERSALE_REQUESTED: "TRADE_FINISHED",
    w.AFTERSALE_REFUNDED: "TRADE_FINISHED",
}
REFUND = {
    w.REFUND_REQUESTED: "WAIT_SELLER_AGREE", w.REFUNDED: "SUCCESS",
    w.AFTERSALE_REQUESTED: "WAIT_SELLER_AGREE", w.AFTERSALE_REFUNDED: "SUCCESS",
}
MAX_WINDOW = 24 * 3600
# TMC topics (UNCONFIRMED which topic TMC sends for which refund step).
TOPIC = {
    w.CREATED: "taobao_trade_TradeCreate", w.PAID: "taobao_trade_TradeBuyerPay",
    w.SHIPPED: "taobao_trade_TradeSellerShip", w.COMPLETED: "taobao_trade_TradeSuccess",
    w.CANCELLED: "taobao_trade_TradeClose", w.REFUND_REQUESTED: "taobao_refund_RefundCreated",
    w.REFUNDED: "taobao_refund_RefundSuccess", w.AFTERSALE_REQUESTED: "taobao_refund_RefundCreated",
    w.AFTERSALE_REFUNDED: "taobao_refund_RefundSuccess",
}
UNMAPPED = "PAID_FORBID_CONSIGN"  # paid, shipment forbidden: real, rare, not in the seed


def _t(ts: int | None) -> str | None:
    return None if ts is None else local_time(datetime.fromtimestamp(ts).astimezone())


def error(code: int, msg: str, sub_code: str = "", sub_msg: str = "") -> dict[str, Any]:
    body = {"code": code, "msg": msg, "request_id": uuid.uuid4().hex[:13]}
    if sub_code:
        body.update(sub_code=sub_code, sub_msg=sub_msg)
    return {"error_response": body}


# Bill rows of one settlement line: (account_id, notice, component, sign).
BILL_ITEMS = [
    (2, "交易收款", "gross", 1), (1, "天猫补贴", "platform_subsidy", 1),
    (3, "天猫佣金", "commission", -1),
    (4, "支付宝服务费", "service_fee", -1), (6, "运费险", "other_fee", -1),
    (2, "售后退款", "refund", -1),
]


def bill_rows(line: SettlementLine) -> list[dict[str, Any]]:
    rows = []
    for n, (account, notice, component, sign_) in enumerate(BILL_ITEMS):
        amount = getattr(line, component)
        if not amount:
            continue
        rows.append({
            "bid": int(line.line_id[:14]) * 10 + n,
            "account_id": account,
            "trade_id": int(line.order_id),
            "order_id": int(line.order_id) + 1,  # the first sub-order (oid)
            "total_amount": fen(line.gross),
            "amount": sign_ * fen(amount),
            "book_time": _t(line.settled_at),
            "biz_time": _t(line.settled_at),
            "pay_time": _t(line.order_time),
            "alipay_outno": f"T{line.line_id}",
            "alipay_notice": notice,
            "status": 1,
        })
    return rows


class TmallGateway(Gateway):
    platform = "tmall"
    prefix = "/tmall/router/rest"
    base_rate = 60.0
    pays_on_completion = True  # Alipay pays out on the buyer's confirmation
    stock_reduced_on = "created"  # 拍下减库存, what flash sales use

    @staticmethod
    def order_id(digits: str, hour: int) -> str:
        return "2" + digits[:18]
    first_page = 1

    def handle(self, path, query, form, body):
        params = {**query, **form}
        for name in ("method", "app_key", "sign", "timestamp", "v", "sign_method", "session"):
            if not params.get(name):
                return 200, error(40, "Missing required arguments:" + name)
        if params["app_key"] != self.credentials.app_key:
            return 200, error(29, "Invalid app Key")
        if params["sign_method"] not in ("md5", "hmac", "hmac-sha256"):
            return 200, error(41, "Invalid arguments:sign_method")
        if sign(params, self.credentials.app_secret, params["sign_method"]) != params["sign"]:
            return 200, error(25, "Invalid signature")
        shop_id = self.shop_for(params["session"])
        if shop_id is None:
            return 200, error(27, "Invalid session", "invalid-sessionkey", "SessionKey非法")
        if params["method"] == BILL_METHOD:
            return self.bills(shop_id, params)
        if params["method"] == DETAIL_METHOD:
            found = self.current(shop_id, params.get("tid", ""))
            if found is None:  # UNCONFIRMED sub code
                return 200, error(41, "Invalid arguments", "isv.trade-not-exist",
                                  f"tid {params.get('tid')} 不存在")
            return 200, {"trade_fullinfo_get_response": {"trade": self.render(*found),
                                                         "request_id": uuid.uuid4().hex[:13]}}
        if params["method"] == STOCK_METHOD:
            return self.quantity_update(shop_id, params)
        if params["method"] == LISTING_METHOD:
            return self.items_onsale(shop_id, params)
        if params["method"] != METHOD:
            return 200, error(22, "Invalid method")
        try:
            start, end = parse_local(params["start_modified"]), parse_local(params["end_modified"])
            if start is None or end is None:
                raise ValueError("start_modified/end_modified: yyyy-MM-dd HH:mm:ss")
            page_no = int(params.get("page_no", 1))
            page_size = int(params.get("page_size", 40))
        except (KeyError, ValueError) as exc:
            return 200, error(41, "Invalid arguments", "isv.invalid-parameter", str(exc))
        if not 0 < end - start <= MAX_WINDOW:
            return 200, error(41, "Invalid arguments", "isv.invalid-parameter:start_modified",
                              "start_modified与end_modified必须在同一天且间隔不超过1天")
        if not 1 <= page_size <= 100 or page_no < 1:
            return 200, error(41, "Invalid arguments", "isv.invalid-parameter:page_size",
                              "page_size必须在1到100之间, page_no从1开始")
        trades, total = self.page(shop_id, start, end, page_no, page_size)
        result: dict[str, Any] = {"total_results": total, "trades": {"trade": trades}}
        if params.get("use_has_next") == "true":
            result = {"has_next": page_no * page_size < total, "trades": {"trade": trades}}
        result["request_id"] = uuid.uuid4().hex[:13]
        return 200, {RESPONSE_KEY: result}

    def items_onsale(self, shop_id: str, params: dict[str, str]):
        """taobao.items.onsale.get, with each item's SKUs (UNCONFIRMED, see the client)."""
        try:
            page, size = int(params.get("page_no", 1)), int(params.get("page_size", 40))
            if page < 1 or not 1 <= size <= 200:
                raise ValueError("page_no from 1, page_size 1..200")
        except ValueError as exc:
            return 200, error(41, "Invalid arguments", "isv.invalid-parameter", str(exc))
        products, total = self.listing_page(shop_id, page, size)
        items = [{"num_iid": int(sku.product_id), "title": sku.title, "num": quantity,
                  "outer_id": sku.outer_sku_id,
                  "skus": {"sku": [{"sku_id": int(sku.sku_id), "outer_id": sku.outer_sku_id,
                                    "quantity": quantity}]}} for sku, quantity in products]
        return 200, {LISTING_RESPONSE_KEY: {"items": {"item": items}, "total_results": total,
                                            "request_id": uuid.uuid4().hex[:13]}}

    def quantity_update(self, shop_id: str, params: dict[str, str]):
        """taobao.item.quantity.update (the business errors' sub codes are UNCONFIRMED)."""
        try:
            quantity = int(params["quantity"])
            kind = params.get("type", "1")
            if kind not in ("1", "2") or not params.get("num_iid"):
                raise ValueError("num_iid required; type is 1 (full) or 2 (increment)")
        except (KeyError, ValueError) as exc:
            return 200, error(41, "Invalid arguments", "isv.invalid-parameter", str(exc))
        done, refused = self.stock_update(shop_id, product_id=params["num_iid"],
                                          sku_id=params.get("sku_id"),
                                          outer_id=params.get("outer_id"),
                                          quantity=quantity, increment=kind == "2")
        if refused is not None:
            sub = {"not_found": "isv.item-not-exist"}.get(refused.reason, "isv.invalid-parameter")
            return 200, error(41, "Invalid arguments", sub, str(refused))
        return 200, {STOCK_RESPONSE_KEY: {
            "item": {"num_iid": int(params["num_iid"]), "num": done.after,
                     "modified": _t(self.clock())},
            "request_id": uuid.uuid4().hex[:13]}}

    def bills(self, shop_id: str, params: dict[str, str]):
        """taobao.bill.bills.get: the shop's bill rows booked in [start_time, end_time)."""
        try:
            start, end = parse_local(params["start_time"]), parse_local(params["end_time"])
            if start is None or end is None:
                raise ValueError("start_time/end_time: yyyy-MM-dd HH:mm:ss")
            page_no = int(params.get("page_no", 1))
            page_size = int(params.get("page_size", 40))
        except (KeyError, ValueError) as exc:
            return 200, error(41, "Invalid arguments", "isv.invalid-parameter", str(exc))
        if not 0 < end - start <= MAX_WINDOW:
            return 200, error(41, "Invalid arguments", "isv.invalid-parameter:start_time",
                              "start_time与end_time间隔不能超过1天")
        if not 1 <= page_size <= 100 or page_no < 1:
            return 200, error(41, "Invalid arguments", "isv.invalid-parameter:page_size",
                              "page_size必须在1到100之间")
        rows = [row for line in self.settlement_lines(shop_id, start, end) for row in bill_rows(line)]
        chosen = rows[(page_no - 1) * page_size:page_no * page_size]
        return 200, {BILL_RESPONSE_KEY: {"bills": {"bill": chosen}, "total_results": len(rows),
                                         "request_id": uuid.uuid4().hex[:13]}}

    # -- push: TMC over a long connection ------------------------------------------
    push_transport = "websocket"
    channel_path = "/tmc/"
    channel_hello = True

    def push_item(self, order: w.Order, version: int) -> tuple[str, dict[str, Any]]:
        kind = order.kind(version)
        msg_id = f"{order.order_id}{version:02d}"
        content = {"tid": int(order.order_id), "oid": int(order.order_id) + 1,
                   "status": STATUS[kind], "payment": yuan(order.paid_amount), "type": "fixed"}
        return msg_id, {"kind": "data", "id": msg_id, "topic": TOPIC[kind],
                        "user_id": order.shop_id, "user_nick": order.shop_id,
                        "pub_time": _t(order.modified(version)),
                        "content": json.dumps(content, separators=(",", ":"))}

    def push_forged(self, item: dict[str, Any]) -> dict[str, Any]:
        return dict(item, id="F" + item["id"], user_id="not-" + item["user_id"])

    def push_malformed(self, msg_id: str, half: bool) -> bytes:
        content = "{not json" if half else "{}"
        return json.dumps({"kind": "data", "id": "M" + msg_id, "topic": TOPIC[w.PAID],
                           "user_id": "x", "content": content}).encode()

    def push_frame(self, item: dict[str, Any]) -> str:
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False)

    def channel_open(self, path: str, hello) -> tuple[bool, str | None]:
        """The connect frame: this app's key, signed, a timestamp (wall-clock
        ms) within 10 minutes."""
        try:
            frame = json.loads(hello())
            ok = (frame.get("kind") == "connect"
                  and frame.get("app_key") == self.credentials.app_key
                  and abs(int(frame["timestamp"]) / 1000 - time.time()) <= CLOCK_TOLERANCE
                  and frame.get("sign") == tmc_sign(frame["app_key"], frame.get("group_name", ""),
                                                    frame["timestamp"], self.credentials.app_secret))
        except (ValueError, TypeError, KeyError):
            ok = False
        answer = {"kind": "connect_ok"} if ok else {"kind": "connect_failed",
                                                    "msg": "invalid app_key, timestamp or sign"}
        return ok, json.dumps(answer)

    def channel_read(self, text: str) -> tuple[str | None, str | None]:
        try:
            frame = json.loads(text)
        except ValueError:
            return None, None
        if frame.get("kind") == "confirm":
            return str(frame.get("id")), None
        if frame.get("kind") == "heartbeat":
            return None, '{"kind":"heartbeat"}'
        return None, None

    def token(self, query, form):
        return {**query, **form}.get("session")

    def request_time(self, query, form):
        return parse_local({**query, **form}.get("timestamp"))

    def throttled(self, ban_seconds):
        return error(7, "App Call Limited", "accesscontrol.limited-by-app-access-count",
                     f"This ban will last {ban_seconds} more seconds")

    def clock_refused(self):
        # UNCONFIRMED code; TOP refuses timestamps more than 10 minutes off.
        return error(41, "Invalid arguments", "isv.invalid-timestamp",
                     "timestamp与服务器时间相差超过10分钟")

    def render(self, order: w.Order, version: int) -> dict[str, Any]:
        kind = order.kind(version)
        status = STATUS[kind]
        if self.unmapped_status and kind == w.PAID and int(order.order_id) % 5 == 0:
            status = UNMAPPED  # a real TOP status that config/seeds do not map
        refund = REFUND.get(kind, "NO_REFUND")
        discounts = allocate(order.discount_amount, [line.amount for line in order.lines])
        promotions = [
            {"id": int(order.order_id[-9:]) * 10 + n, "promotion_name": name,
             "promotion_id": f"{pid}-{order.shop_id}", "discount_fee": yuan(amount)}
            for n, (name, pid, amount) in enumerate([
                ("店铺优惠券", "shopbonus", order.merchant_discount),
                ("天猫购物券", "tmallcoupon", order.platform_discount),
            ]) if amount
        ]
        return {
            "tid": int(order.order_id),
            "tid_str": order.order_id,
            "status": status,
            "created": _t(order.created_time),
            "pay_time": _t(order.event_time(w.PAID, version)),
            "modified": _t(order.modified(version)),
            "consign_time": _t(order.event_time(w.SHIPPED, version)),
            "end_time": _t(order.closed_time(version)),
            "buyer_nick": order.buyer_name[0] + "**",
            "receiver_name": order.buyer_name,
            "receiver_mobile": order.buyer_phone,
            "receiver_phone": "",
            "receiver_state": order.province,
            "receiver_city": order.city,
            "receiver_district": order.district,
            "receiver_address": order.street,
            "receiver_zip": "000000",
            "total_fee": yuan(order.goods_amount),
            "payment": yuan(order.paid_amount),
            "discount_fee": yuan(order.discount_amount),
            "adjust_fee": "0.00",
            "post_fee": yuan(order.shipping_fee),
            "coupon_fee": yuan(order.merchant_discount),
            "platform_subsidy_fee": yuan(order.platform_discount),
            "promotion_details": {"promotion_detail": promotions},
            "orders": {"order": [
                {
                    "oid": int(order.order_id) + line.line_no,
                    "oid_str": str(int(order.order_id) + line.line_no),
                    "num_iid": int(line.sku.product_id),
                    "sku_id": line.sku.sku_id,
                    "outer_iid": line.sku.outer_sku_id,
                    "outer_sku_id": line.sku.outer_sku_id,
                    "title": line.sku.title,
                    "num": line.quantity,
                    "price": yuan(line.sku.price),
                    "total_fee": yuan(line.amount),
                    "discount_fee": yuan(share),
                    "divide_order_fee": yuan(line.amount - share),
                    "payment": yuan(line.amount - share),
                    "adjust_fee": "0.00",
                    "status": status,
                    "refund_status": refund,
                }
                for line, share in zip(order.lines, discounts, strict=True)
            ]},
        }

