"""Sandbox PDD gateway: ``POST /pdd/api/router``, ``pdd.order.number.list.increment.get``."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import time
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlencode

from orderhub.platforms.base import local_time
from orderhub.platforms.pdd import (
    BILL_METHOD,
    BILL_RESPONSE_KEY,
    DETAIL_METHOD,
    LISTING_METHOD,
    LISTING_RESPONSE_KEY,
    METHOD,
    RESPONSE_KEY,
    STOCK_METHOD,
    STOCK_RESPONSE_KEY,
    push_url_sign,
    sign,
)
from orderhub_tools.sandbox import world as w
from orderhub_tools.sandbox.gateway import CLOCK_TOLERANCE, Gateway, parse_local, yuan_number

ORDER_STATUS = {  # 1 awaiting shipment, 2 shipped, 3 received
    w.PAID: 1, w.REFUND_REQUESTED: 1, w.REFUNDED: 1, w.SHIPPED: 2, w.COMPLETED: 3,
    w.AFTERSALE_REQUESTED: 3, w.AFTERSALE_REFUNDED: 3,
}
REFUND_STATUS = {  # 1 none, 2 in progress, 4 refunded
    w.REFUND_REQUESTED: 2, w.REFUNDED: 4, w.AFTERSALE_REQUESTED: 2, w.AFTERSALE_REFUNDED: 4,
}
MAX_WINDOW = 30 * 60
# Message types (UNCONFIRMED which type PDD sends for which refund step).
TOPIC = {
    w.PAID: "pdd_trade_TradeConfirmed", w.SHIPPED: "pdd_trade_TradeSellerShip",
    w.COMPLETED: "pdd_trade_TradeSuccess", w.REFUND_REQUESTED: "pdd_refund_RefundCreated",
    w.REFUNDED: "pdd_refund_RefundAgreed", w.AFTERSALE_REQUESTED: "pdd_refund_RefundCreated",
    w.AFTERSALE_REFUNDED: "pdd_refund_RefundAgreed",
}


def _t(ts: int | None) -> str:
    return "" if ts is None else local_time(datetime.fromtimestamp(ts).astimezone())


def error(code: int, msg: str, sub_msg: str = "") -> dict[str, Any]:
    return {"error_response": {"error_code": code, "error_msg": msg, "sub_code": str(code),
                               "sub_msg": sub_msg, "request_id": uuid.uuid4().hex}}


# Bill file rows of one settlement line: (账务类型, component, income or expense).
BILL_ITEMS = [
    ("交易收入", "gross", "收入"), ("平台补贴", "platform_subsidy", "收入"),
    ("技术服务费", "commission", "支出"), ("服务费", "service_fee", "支出"),
    ("其他费用", "other_fee", "支出"), ("退款", "refund", "支出"),
]
BILL_COLUMNS = ["订单号", "流水号", "账务时间", "账务类型", "收入金额(元)", "支出金额(元)", "备注"]


def bill_file(day: str, lines: list) -> bytes:
    out = io.StringIO()
    out.write(f"#拼多多商家账户日账单\n#账单日期:{day}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(BILL_COLUMNS)
    for line in lines:
        for n, (kind, component, side) in enumerate(BILL_ITEMS):
            amount = getattr(line, component)
            if amount:
                writer.writerow([line.order_id, f"{line.line_id}{n}", _t(line.settled_at), kind,
                                 f"{amount:.2f}" if side == "收入" else "0.00",
                                 f"{amount:.2f}" if side == "支出" else "0.00", ""])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


class PddGateway(Gateway):
    platform = "pdd"
    prefix = "/pdd/api/router"
    base_rate = 70.0
    shows_unpaid = False  # the order APIs list paid orders only
    stock_reduced_on = "paid"  # 付款减库存

    @staticmethod
    def order_id(digits: str, hour: int) -> str:
        from orderhub_tools.sandbox.world import local_datetime

        return local_datetime(hour).strftime("%y%m%d") + "-" + digits[:15]
    first_page = 1

    extra_prefixes = ("/pdd/bill/",)

    def handle(self, path, query, form, body):
        if path == "/pdd/bill/download":
            return self.bill_file(query)
        params = {**query, **form}
        for name in ("type", "client_id", "timestamp", "sign", "access_token"):
            if not params.get(name):
                return 200, error(10000, "参数错误", f"缺少参数 {name}")
        if params["client_id"] != self.credentials.app_key:
            return 200, error(10016, "client_id不存在")
        if sign(params, self.credentials.app_secret) != params["sign"]:
            return 200, error(20004, "签名校验失败", "sign error")
        shop_id = self.shop_for(params["access_token"])
        if shop_id is None:
            return 200, error(10019, "access_token已过期", "access_token expired")
        if params["type"] == BILL_METHOD:
            return self.bill_url(shop_id, params)
        if params["type"] == STOCK_METHOD:
            return self.quantity_update(shop_id, params)
        if params["type"] == LISTING_METHOD:
            return self.goods_list(shop_id, params)
        if params["type"] == DETAIL_METHOD:
            found = self.current(shop_id, params.get("order_sn", ""))
            if found is None:  # UNCONFIRMED code
                return 200, error(10000, "参数错误", f"订单 {params.get('order_sn')} 不存在")
            return 200, {"order_info_get_response": {"order_info": self.render(*found),
                                                     "request_id": uuid.uuid4().hex}}
        if params["type"] != METHOD:
            return 200, error(10001, "接口不存在")
        try:
            start = int(params["start_updated_at"])
            end = int(params["end_updated_at"])
            page = int(params.get("page", 1))
            page_size = int(params.get("page_size", 100))
        except (KeyError, ValueError) as exc:
            return 200, error(10000, "参数错误", str(exc))
        if not 0 < end - start <= MAX_WINDOW:
            return 200, error(10000, "参数错误", "start_updated_at与end_updated_at间隔不能超过30分钟")
        if not 1 <= page_size <= 100 or page < 1:
            return 200, error(10000, "参数错误", "page_size必须在1到100之间")
        orders, total = self.page(shop_id, start, end, page, page_size)
        result: dict[str, Any] = {"total_count": total, "order_sn_list": orders,
                                  "request_id": uuid.uuid4().hex}
        if params.get("use_has_next") == "true":
            result["has_next"] = page * page_size < total
        return 200, {RESPONSE_KEY: result}

    def goods_list(self, shop_id: str, params: dict[str, str]):
        """pdd.goods.list.get: the mall's goods with their SKUs and stock."""
        try:
            page, size = int(params.get("page", 1)), int(params.get("page_size", 100))
            if page < 1 or not 1 <= size <= 100:
                raise ValueError("page from 1, page_size 1..100")
        except ValueError as exc:
            return 200, error(10000, "参数错误", str(exc))
        products, total = self.listing_page(shop_id, page, size)
        goods = [{"goods_id": int(sku.product_id), "goods_name": sku.title,
                  "goods_quantity": quantity,
                  "sku_list": [{"sku_id": int(sku.sku_id), "outer_id": sku.outer_sku_id,
                                "sku_quantity": quantity}]} for sku, quantity in products]
        return 200, {LISTING_RESPONSE_KEY: {"goods_list": goods, "total_count": total,
                                            "request_id": uuid.uuid4().hex}}

    def quantity_update(self, shop_id: str, params: dict[str, str]):
        """pdd.goods.quantity.update (its business error codes are UNCONFIRMED)."""
        try:
            quantity = int(params["quantity"])
            kind = params.get("update_type", "1")
            if kind not in ("1", "2") or not params.get("goods_id"):
                raise ValueError("goods_id required; update_type is 1 (full) or 2 (increment)")
        except (KeyError, ValueError) as exc:
            return 200, error(10000, "参数错误", str(exc))
        _, refused = self.stock_update(shop_id, product_id=params["goods_id"],
                                       sku_id=params.get("sku_id"),
                                       outer_id=params.get("outer_id"),
                                       quantity=quantity, increment=kind == "2")
        if refused is not None and refused.reason == "promotion":
            return 200, error(50001, "商品在活动中,不能减少库存", str(refused))
        if refused is not None:
            return 200, error(10000, "参数错误", str(refused))
        return 200, {STOCK_RESPONSE_KEY: {"is_success": True, "request_id": uuid.uuid4().hex}}

    def _bill_key(self, shop_id: str, day: str) -> str:
        return hashlib.sha256(f"{self.credentials.app_secret}|{shop_id}|{day}".encode()).hexdigest()[:32]

    def bill_url(self, shop_id: str, params: dict[str, str]):
        """pdd.finance.balance.daily.bill.url.get: where to download one day's bill."""
        day = params.get("bill_date", "")
        start = parse_local(f"{day} 00:00:00")
        if start is None:
            return 200, error(10000, "参数错误", "bill_date: yyyy-MM-dd")
        if self.clock() < start + 24 * 3600:
            return 200, error(10000, "账单未生成", f"{day}的账单尚未生成")
        query = urlencode({"shop": shop_id, "bill_date": day, "key": self._bill_key(shop_id, day)})
        return 200, {BILL_RESPONSE_KEY: {"url": f"/pdd/bill/download?{query}",
                                         "request_id": uuid.uuid4().hex}}

    def bill_file(self, query: dict[str, str]):
        shop_id, day = query.get("shop", ""), query.get("bill_date", "")
        start = parse_local(f"{day} 00:00:00")
        if start is None or not hmac.compare_digest(query.get("key", ""), self._bill_key(shop_id, day)):
            return 403, {"error": "invalid or expired bill url"}
        return 200, bill_file(day, self.settlement_lines(shop_id, start, start + 24 * 3600))

    # -- push: the message service over a long connection ----------------------------
    push_transport = "websocket"
    channel_path = "/pdd/message/"

    def push_item(self, order: w.Order, version: int) -> tuple[str, dict[str, Any]]:
        kind = order.kind(version)
        msg_id = f"{order.order_id.replace('-', '')}{version:02d}"
        content = {"mall_id": order.shop_id, "tid": order.order_id}
        return msg_id, {"id": msg_id, "commandType": "Common",
                        "sendTime": order.modified(version) * 1000,
                        "message": {"type": TOPIC.get(kind, "pdd_trade_TradeModified"),
                                    "mallID": order.shop_id,
                                    "content": json.dumps(content, separators=(",", ":"))}}

    def push_forged(self, item: dict[str, Any]) -> dict[str, Any]:
        return dict(item, id="F" + item["id"],
                    message=dict(item["message"], mallID="not-" + item["message"]["mallID"]))

    def push_malformed(self, msg_id: str, half: bool) -> bytes:
        content = "{not json" if half else "{}"
        return json.dumps({"id": "M" + msg_id, "commandType": "Common", "sendTime": 0,
                           "message": {"type": TOPIC[w.PAID], "mallID": "x",
                                       "content": content}}).encode()

    def push_frame(self, item: dict[str, Any]) -> str:
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False)

    def channel_open(self, path: str, hello) -> tuple[bool, str | None]:
        """/pdd/message/{client_id}/{ts_ms}/{sign}: this app, signed, a
        timestamp (wall-clock ms) within 10 minutes."""
        parts = path[len(self.channel_path):].split("/")
        if len(parts) != 3 or not parts[1].isdigit():
            return False, None
        client_id, ts, signature = parts[0], parts[1], unquote(parts[2])
        ok = (client_id == self.credentials.app_key
              and abs(int(ts) / 1000 - time.time()) <= CLOCK_TOLERANCE
              and signature == push_url_sign(client_id, ts, self.credentials.app_secret))
        return ok, None

    def channel_read(self, text: str) -> tuple[str | None, str | None]:
        try:
            frame = json.loads(text)
        except ValueError:
            return None, None
        if frame.get("commandType") == "Ack":
            return str(frame.get("id")), None
        if frame.get("commandType") == "HeartBeat":
            return None, '{"commandType":"HeartBeat"}'
        return None, None

    def token(self, query, form):
        return {**query, **form}.get("access_token")

    def request_time(self, query, form):
        value = {**query, **form}.get("timestamp")
        return float(value) if value and value.isdigit() else None

    def throttled(self, ban_seconds):
        return error(52101, "当前接口已被限流", f"请{ban_seconds}秒后重试")

    def clock_refused(self):
        return error(10012, "timestamp已过期", "timestamp与服务器时间相差超过10分钟")  # UNCONFIRMED code

    def render(self, order: w.Order, version: int) -> dict[str, Any]:
        kind = order.kind(version)
        status = ORDER_STATUS[kind]
        paid = order.event_time(w.PAID, version)
        return {
            "order_sn": order.order_id,
            "order_status": status,
            "refund_status": REFUND_STATUS.get(kind, 1),
            "after_sales_status": 0 if kind not in REFUND_STATUS else 1,
            "confirm_status": 1,
            "created_time": _t(order.created_time),
            "confirm_time": _t(paid),
            "pay_time": _t(paid),
            "shipping_time": _t(order.event_time(w.SHIPPED, version)),
            "receive_time": _t(order.event_time(w.COMPLETED, version)),
            "updated_at": _t(order.modified(version)),
            "goods_amount": yuan_number(order.goods_amount),
            "discount_amount": yuan_number(order.discount_amount),
            "platform_discount": yuan_number(order.platform_discount),
            "seller_discount": yuan_number(order.merchant_discount),
            "capital_free_discount": 0,
            "pay_amount": yuan_number(order.paid_amount),
            "postage": yuan_number(order.shipping_fee),
            "pay_type": "WEIXIN",
            "receiver_name": order.buyer_name,
            "receiver_phone": order.buyer_phone,
            # Only returned while the order awaits shipment (PDD privacy rule).
            "receiver_address": order.street if status == 1 else "",
            "province": order.province,
            "city": order.city,
            "town": order.district,
            "item_list": [
                {"goods_id": int(line.sku.product_id), "sku_id": line.sku.sku_id,
                 "goods_count": line.quantity, "goods_price": yuan_number(line.sku.price),
                 "goods_name": line.sku.title, "outer_id": line.sku.outer_sku_id}
                for line in order.lines
            ],
        }
