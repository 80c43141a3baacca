"""Sandbox Meituan waimai gateway: ``GET /meituan/api/v1/order/…``.

Renders the world's orders the way Meituan's order APIs answer them: money in
yuan as floats computed the way a float-based system computes them (so a
total can read ``59.699999999999996``), the bag fee in fen, the lines and the
discounts as JSON strings inside the JSON, times in Unix seconds.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode

from orderhub.platforms.meituan import (
    BILL_PAGE_SIZE,
    BILL_PATH,
    DETAIL_PATH,
    LIST_PATH,
    PUSH_OK,
    sign,
)
from orderhub_tools.sandbox import world as w
from orderhub_tools.sandbox.gateway import Gateway, fen

PREFIX = "/meituan/api/v1/"
# (status, refund_status); refund_status is UNCONFIRMED (docs/platforms.md):
# 0 none, 1 applied for, 2 refunded.
STATUS = {
    w.PAID: (2, 0), w.REFUND_REQUESTED: (2, 1), w.REFUNDED: (9, 2), w.SHIPPED: (6, 0),
    w.COMPLETED: (8, 0), w.AFTERSALE_REQUESTED: (8, 1), w.AFTERSALE_REFUNDED: (8, 2),
}
MAX_WINDOW = 24 * 3600  # UNCONFIRMED; the client uses the same limit


def error(code: int, msg: str) -> dict[str, Any]:
    return {"data": "ng", "error": {"code": code, "msg": msg}}


def bill_row(line) -> dict[str, Any]:
    """One bill row (fen; field names UNCONFIRMED, after poi_receive_detail)."""
    return {
        "bill_id": line.line_id,
        "order_id": int(line.order_id),
        "app_poi_code": line.shop_id,
        "bill_type": 2 if line.line_type == "refund" else 1,
        "bill_time": line.settled_at,
        "order_time": line.order_time,
        "online_payment": fen(line.gross),
        "act_charge_by_mt": fen(line.platform_subsidy),
        "food_share_fee_charge_by_poi": fen(line.commission),
        "logistics_fee": fen(line.service_fee),
        "other_fee": fen(line.other_fee),
        "refund_amount": fen(line.refund),
        "wm_poi_receive_cent": fen(line.settle_amount),
    }


def as_float(value: float) -> Decimal:
    """What a JSON float written by the platform reads as: its shortest repr."""
    return Decimal(repr(value))


class MeituanGateway(Gateway):
    platform = "meituan"
    prefix = PREFIX
    connection_path = PREFIX.rstrip("/")
    base_rate = 12.0  # a store's orders per hour at scale 1
    shows_unpaid = False  # a store sees an order once it is paid (status 2)
    shows_ship_time = False  # a rider's pick-up is not an order field
    food_delivery = True
    first_page = 1

    @staticmethod
    def order_id(digits: str, hour: int) -> str:
        return "2" + digits[:17]

    def token(self, query, form):
        return query.get("access_token")

    def request_time(self, query, form):
        try:
            return int(query["timestamp"])
        except (KeyError, ValueError):
            return None

    def shop_for_request(self, query, form, headers):
        # the signature covers the URL the caller used: keep its host for handle()
        self._request.host = headers.get("host", "")
        return super().shop_for_request(query, form, headers)

    def throttled(self, ban_seconds):
        return error(721, f"调用频率超限，请{ban_seconds}秒后重试")  # UNCONFIRMED code

    def clock_refused(self):
        return error(711, "timestamp已过期")  # UNCONFIRMED code

    def handle(self, path, query, form, body):
        for name in ("app_id", "timestamp", "sig"):
            if not query.get(name):
                return 200, error(701, f"缺少参数{name}，数据不完整")
        if query["app_id"] != self.credentials.app_key:
            return 200, error(702, "app_id不存在")
        url = f"http://{getattr(self._request, 'host', '')}{path}"
        if sign(url, query, self.credentials.app_secret) != query["sig"]:
            return 200, error(703, "签名验证错误")
        shop_id = self._request_shop
        if shop_id is None:
            return 200, error(705, "access_token无效")  # UNCONFIRMED code
        method = path[len(PREFIX):]
        if method == BILL_PATH:
            return self.bills(shop_id, query)
        if method == DETAIL_PATH:
            found = self.current(shop_id, query.get("order_id", ""))
            if found is None:
                return 200, error(808, f"订单{query.get('order_id')}不存在")  # UNCONFIRMED
            return 200, {"data": self.render(*found)}
        if method != LIST_PATH:
            return 404, error(404, f"no such API {method}")
        try:
            start, end = int(query["start_time"]), int(query["end_time"])
            page, page_size = int(query.get("page", 1)), int(query.get("page_size", 20))
        except (KeyError, ValueError) as exc:
            return 200, error(700, f"参数错误: {exc}")
        if not 0 < end - start <= MAX_WINDOW:
            return 200, error(700, "参数错误: start_time与end_time间隔不能超过1天")
        if not 1 <= page_size <= 100 or page < 1:
            return 200, error(700, "参数错误: page_size必须在1到100之间")
        orders, total = self.page(shop_id, start, end, page, page_size)
        return 200, {"data": orders, "extra_info": {"total": total}}

    def bills(self, shop_id: str, query: dict[str, str]):
        try:
            start, end = int(query["start_date"]), int(query["end_date"])
            offset, limit = int(query.get("offset", 0)), int(query.get("limit", 20))
        except (KeyError, ValueError) as exc:
            return 200, error(700, f"参数错误: {exc}")
        if not 0 < end - start <= 31 * 24 * 3600 or not 1 <= limit <= BILL_PAGE_SIZE \
                or offset < 0:
            return 200, error(700, "参数错误: 时间跨度不超过31天, limit 1..200")
        lines = self.settlement_lines(shop_id, start, end)
        return 200, {"data": [bill_row(line) for line in lines[offset:offset + limit]],
                     "extra_info": {"total": len(lines)}}

    def render(self, order: w.Order, version: int) -> dict[str, Any]:
        status, refund = STATUS[order.kind(version)]
        goods, ship = float(order.goods_amount), float(order.shipping_fee)
        merchant, platform = float(order.merchant_discount), float(order.platform_discount)
        extras = []
        if merchant or platform:
            extras.append({"act_detail_id": 1, "reduce_fee": merchant + platform,
                           "mt_charge": platform, "poi_charge": merchant,
                           "remark": f"满减 {merchant + platform:g} 元", "type": 2})
        detail = [{"app_food_code": line.sku.outer_sku_id, "food_name": line.sku.title,
                   "sku_id": line.sku.sku_id, "quantity": line.quantity,
                   "price": float(line.sku.price), "box_num": 0, "box_price": 0,
                   "unit": "份", "food_discount": 1, "spec": ""} for line in order.lines]
        return {
            "order_id": int(order.order_id),
            "wm_order_id_view": int(order.order_id[-12:]) + 10 ** 14,
            "app_poi_code": order.shop_id,
            "wm_poi_name": order.shop_id,
            "recipient_name": order.buyer_name,
            "recipient_phone": order.buyer_phone,
            "recipient_address": f"{order.province}{order.city}{order.district}{order.street}",
            # floats, computed as float: the platform's own arithmetic
            "original_price": as_float(goods + ship),
            "total": as_float(goods - merchant - platform + ship),
            "shipping_fee": as_float(ship),
            "package_bag_money": 0,  # fen; 0 when Meituan provides the bag
            "status": status,
            "refund_status": refund,
            "ctime": order.created_time,
            "utime": order.modified(version),
            "pay_time": order.event_time(w.PAID, version) or 0,
            "order_completed_time": order.closed_time(version) or 0,
            "delivery_time": 0,
            "pay_type": 2,
            "logistics_code": "1001",
            "detail": json.dumps(detail, ensure_ascii=False),
            "extras": json.dumps(extras, ensure_ascii=False),
        }

    # -- push: one order per form POST, signed with the callback URL -------------------
    push_transport = "webhook"
    push_batch = 1

    def push_item(self, order: w.Order, version: int) -> tuple[str, dict[str, Any]]:
        """The whole order as form fields (every value a string)."""
        fields = {name: str(value) for name, value in self.render(order, version).items()}
        return f"{order.order_id}-{version:02d}", fields

    def push_forged(self, item: dict[str, Any]) -> dict[str, Any]:
        """Signed with a wrong secret (push_request), naming no real order."""
        return dict(item, order_id="9" + item["order_id"][1:])

    def push_malformed(self, msg_id: str, half: bool) -> bytes:
        """Signed right (push_request), unreadable: no order id, or a time that is not one."""
        fields = {"app_poi_code": "mt-unknown", "status": "2", "utime": "1794381612",
                  "note": f"M{msg_id}"}
        if half:
            fields["order_id"] = msg_id.split("-")[0]
            fields["utime"] = "not-a-time"
        return urlencode(fields).encode()

    def push_request(self, items: list[dict[str, Any]], *, forge: bool = False,
                     raw: bytes | None = None, url: str = "") -> tuple[dict[str, str], bytes]:
        """One POST: a form of one order with app_id, timestamp and sig (over
        the callback URL); a forged one signs with a wrong secret."""
        fields = dict(parse_qsl(raw.decode())) if raw is not None else dict(items[0])
        fields.update(app_id=self.credentials.app_key, timestamp=str(int(self.clock())))
        secret = "not-the-secret" if forge else self.credentials.app_secret
        fields["sig"] = sign(url, fields, secret)
        return ({"Content-Type": "application/x-www-form-urlencoded"},
                urlencode(fields).encode())

    @staticmethod
    def push_acked(status: int, text: str) -> bool:
        try:
            return status == 200 and json.loads(text).get("data") == PUSH_OK["data"]
        except (ValueError, AttributeError):
            return False
