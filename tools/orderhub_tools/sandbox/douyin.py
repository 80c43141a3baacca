"""Sandbox Doudian gateway: ``POST /douyin/order/searchList``."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from orderhub.platforms.base import local_time
from orderhub.platforms.douyin import (
    DETAIL_METHOD,
    LISTING_METHOD,
    METHOD,
    PUSH_OK,
    SETTLE_METHOD,
    STOCK_METHOD,
    param_json,
    push_sign,
    sign,
)
from orderhub_tools.sandbox import world as w
from orderhub_tools.sandbox.gateway import Gateway, allocate, fen, parse_local

STATUS = {
    w.CREATED: (1, "待支付"), w.CANCELLED: (4, "已取消"), w.PAID: (2, "备货中"),
    w.REFUND_REQUESTED: (2, "备货中"), w.REFUNDED: (4, "已取消"), w.SHIPPED: (3, "已发货"),
    w.COMPLETED: (5, "已完成"), w.AFTERSALE_REQUESTED: (5, "已完成"),
    w.AFTERSALE_REFUNDED: (5, "已完成"),
}
REFUND = {  # after_sale_info.refund_status: 0 none (UNCONFIRMED), 1 awaiting refund, 3 refunded
    w.REFUND_REQUESTED: 1, w.REFUNDED: 3, w.AFTERSALE_REQUESTED: 1, w.AFTERSALE_REFUNDED: 3,
}
MAX_WINDOW = 24 * 3600  # UNCONFIRMED; the client uses the same limit


# Push tags (UNCONFIRMED which tag Doudian sends for which refund step).
PUSH_TAG = {
    w.CREATED: 100, w.PAID: 101, w.SHIPPED: 102, w.COMPLETED: 103, w.CANCELLED: 106,
    w.REFUND_REQUESTED: 200, w.REFUNDED: 206, w.AFTERSALE_REQUESTED: 200,
    w.AFTERSALE_REFUNDED: 206,
}


def envelope(code: int, msg: str, data: Any = None, sub_code: str = "",
             sub_msg: str = "") -> dict[str, Any]:
    return {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg,
            "log_id": uuid.uuid4().hex, "data": data if data is not None else {}}


def _t(ts: int) -> str:
    return local_time(datetime.fromtimestamp(ts).astimezone())


def settle_line(line) -> dict[str, Any]:
    """One order.getSettleBillDetailV3 line (fen)."""
    refund_after = line.line_type == "refund"
    income = line.gross + line.platform_subsidy + line.influencer_subsidy
    outcome = line.commission + line.service_fee + line.other_fee + line.refund
    return {
        "request_no": line.line_id,
        "shop_order_id": line.order_id,
        "order_id": str(int(line.order_id) + 1),  # the first sku order
        "settle_time": _t(line.settled_at),
        "order_time": _t(line.order_time),
        "trade_type": 1 if refund_after else 0,
        "real_pay_amount": fen(line.gross),
        "platform_coupon": fen(line.platform_subsidy),
        "author_coupon": fen(line.influencer_subsidy),
        "commission": fen(line.commission),
        "platform_service_fee": fen(line.service_fee),
        "channel_promotion_fee": fen(line.other_fee),
        "colonel_service_fee": 0,
        "other_sharing_amount": 0,
        "refund_before_settle": 0 if refund_after else fen(line.refund),
        "total_income": fen(income),
        "total_outcome": fen(outcome),
        "settle_amount": fen(line.settle_amount),
    }


class DouyinGateway(Gateway):
    platform = "douyin"
    prefix = "/douyin/"
    connection_path = "/douyin"  # Doudian: the base URL; paths are method names
    base_rate = 55.0
    influencer_discounts = True
    stock_reduced_on = "created"  # 下单减库存

    @staticmethod
    def order_id(digits: str, hour: int) -> str:
        return "6" + digits[:18]
    first_page = 0

    def handle(self, path, query, form, body):
        method = path[len(self.prefix):].replace("/", ".")
        for name in ("app_key", "method", "timestamp", "sign", "access_token"):
            if not query.get(name):
                return 200, envelope(30001, "参数错误", sub_code="isv.parameter-invalid",
                                     sub_msg=f"缺少参数 {name}")
        if query["app_key"] != self.credentials.app_key:
            return 200, envelope(30002, "app_key无效", sub_code="isv.app-key-invalid")
        raw = body.decode("utf-8") if body else "{}"
        try:
            business = json.loads(raw)
        except ValueError:
            return 200, envelope(30001, "参数错误", sub_code="isv.parameter-invalid",
                                 sub_msg="param_json不是合法JSON")
        expected = sign(query["app_key"], query["method"], param_json(business),
                        query["timestamp"], self.credentials.app_secret,
                        query.get("sign_method", "md5"))
        if expected != query["sign"]:
            return 200, envelope(40004, "签名校验失败", sub_code="isv.signature-invalid",
                                 sub_msg="sign校验失败")
        shop_id = self.shop_for(query["access_token"])
        if shop_id is None:
            return 200, envelope(30002, "access_token无效", sub_code="isv.access-token-invalid")
        if method == SETTLE_METHOD and query["method"] == SETTLE_METHOD:
            return self.settle_bill(shop_id, business)
        if method == DETAIL_METHOD and query["method"] == DETAIL_METHOD:
            return self.detail(shop_id, str(business.get("shop_order_id", "")))
        if method == STOCK_METHOD and query["method"] == STOCK_METHOD:
            return self.sync_stock(shop_id, business)
        if method == LISTING_METHOD and query["method"] == LISTING_METHOD:
            return self.product_list(shop_id, business)
        if method != METHOD or query["method"] != METHOD:
            return 200, envelope(30001, "方法不存在", sub_code="isv.method-not-exist")
        try:
            start = int(business["update_time_start"])
            end = int(business["update_time_end"])
            page = int(business.get("page", 0))
            size = int(business.get("size", 10))
        except (KeyError, ValueError) as exc:
            return 200, envelope(30001, "参数错误", sub_code="isv.parameter-invalid", sub_msg=str(exc))
        if not 0 < end - start <= MAX_WINDOW:
            return 200, envelope(30001, "参数错误", sub_code="isv.parameter-invalid",
                                 sub_msg="更新时间范围不能超过1天")
        if not 1 <= size <= 100 or page < 0:
            return 200, envelope(30001, "参数错误", sub_code="isv.parameter-invalid",
                                 sub_msg="size必须在1到100之间, page从0开始")
        orders, total = self.page(shop_id, start, end, page, size)
        return 200, envelope(10000, "success",
                             {"page": page, "size": size, "total": total, "shop_order_list": orders})

    def product_list(self, shop_id: str, business: dict[str, Any]):
        """product.listV2, with each product's SKUs (UNCONFIRMED, see the client)."""
        try:
            page, size = int(business.get("page", 1)), int(business.get("size", 10))
            if page < 1 or not 1 <= size <= 100:
                raise ValueError("page from 1, size 1..100")
        except (TypeError, ValueError) as exc:
            return 200, envelope(30001, "参数错误", sub_code="isv.parameter-invalid",
                                 sub_msg=str(exc))
        products, total = self.listing_page(shop_id, page, size)
        data = [{"product_id": int(sku.product_id), "name": sku.title,
                 "sku_list": [{"id": int(sku.sku_id), "code": sku.outer_sku_id,
                               "stock_num": quantity}]} for sku, quantity in products]
        return 200, envelope(10000, "success", {"data": data, "total": total})

    def sync_stock(self, shop_id: str, business: dict[str, Any]):
        """sku.syncStock: by sku_id, code (the outer id) or out_sku_id; an
        incremental call needs an idempotent_id (business codes UNCONFIRMED)."""
        def invalid(why: str):
            return 200, envelope(30001, "参数错误", sub_code="isv.parameter-invalid", sub_msg=why)

        try:
            quantity = int(business["stock_num"])
            product_id = str(business["product_id"])
        except (KeyError, TypeError, ValueError) as exc:
            return invalid(f"stock_num, product_id: {exc}")
        incremental = business.get("incremental") in (True, "true")
        idempotent_id = str(business.get("idempotent_id") or "")
        if incremental and not idempotent_id:
            return invalid("incremental为true时idempotent_id必填")
        outer = business.get("code") or business.get("out_sku_id")
        _, refused = self.stock_update(shop_id, product_id=product_id,
                                       sku_id=str(business.get("sku_id") or "") or None,
                                       outer_id=str(outer) if outer else None,
                                       quantity=quantity, increment=incremental,
                                       idempotent_id=idempotent_id or None)
        if refused is not None:
            return 200, envelope(50001, "业务处理失败", sub_code=f"isv.stock-{refused.reason}",
                                 sub_msg=str(refused))
        return 200, envelope(10000, "success", {})

    def detail(self, shop_id: str, order_id: str):
        """order.orderDetail: the order as it stands now."""
        found = self.current(shop_id, order_id)
        if found is None:
            return 200, envelope(30001, "订单不存在", sub_code="isv.order-not-exist",  # UNCONFIRMED
                                 sub_msg=f"shop_order_id {order_id}")
        return 200, envelope(10000, "success", {"shop_order_detail": self.render(*found)})

    # -- push: webhooks (sandbox/push.py decides when) --------------------------------
    push_transport = "webhook"

    def push_item(self, order: w.Order, version: int) -> tuple[str, dict[str, Any]]:
        """One webhook message for one version: ids and status, not the order."""
        kind = order.kind(version)
        tag = PUSH_TAG[kind]
        data = {"p_id": int(order.order_id),
                "s_ids": [int(order.order_id) + line.line_no for line in order.lines],
                "shop_id": int(order.shop_id) if order.shop_id.isdigit() else order.shop_id,
                "order_status": STATUS[kind][0], "order_type": 0, "biz": 2,
                "update_time": order.modified(version)}
        msg_id = f"{order.order_id}{tag}{version:02d}"
        return msg_id, {"tag": str(tag), "msg_id": msg_id,
                        "data": json.dumps(data, separators=(",", ":"))}

    def push_forged(self, item: dict[str, Any]) -> dict[str, Any]:
        """Signed with a wrong secret (push_request), naming no real order."""
        return dict(item, msg_id="F" + item["msg_id"],
                    data=item["data"].replace('"p_id":', '"p_id":9'))

    def push_malformed(self, msg_id: str, half: bool) -> bytes:
        return (b'[{"tag":"101","msg_id":"M' + msg_id.encode() + b'","data":"{not json'
                if half else
                b'[{"tag":"101","msg_id":"M' + msg_id.encode() + b'","data":"{}"}]')

    def push_request(self, items: list[dict[str, Any]], *, forge: bool = False,
                     raw: bytes | None = None, url: str = "") -> tuple[dict[str, str], bytes]:
        """One POST: a JSON array, headers app-id and event-sign (a forged
        one signs with a wrong secret)."""
        body = raw if raw is not None else json.dumps(items, separators=(",", ":")).encode()
        secret = "not-the-secret" if forge else self.credentials.app_secret
        return ({"Content-Type": "application/json", "app-id": self.credentials.app_key,
                 "event-sign": push_sign(self.credentials.app_key, body, secret)}, body)

    @staticmethod
    def push_acked(status: int, text: str) -> bool:
        try:
            return status == 200 and json.loads(text).get("code") == PUSH_OK["code"]
        except (ValueError, AttributeError):
            return False

    def settle_bill(self, shop_id: str, business: dict[str, Any]):
        """order.getSettleBillDetailV3: lines by settle time, a keyset cursor
        (start_time, start_index) = the next line's (settle time, request_no)."""
        begin, end = parse_local(business.get("start_time")), parse_local(business.get("end_time"))
        size = int(business.get("size", 100))
        if begin is None or end is None or not 0 < end - begin <= 7 * 24 * 3600 or not 1 <= size <= 100:
            return 200, envelope(30001, "参数错误", sub_code="isv.parameter-invalid",
                                 sub_msg="start_time/end_time: yyyy-MM-dd HH:mm:ss, 7天内; size 1..100")
        index = str(business.get("start_index") or "")
        lines = [line for line in self.settlement_lines(shop_id, begin, end)
                 if (line.settled_at, line.line_id) >= (begin, index)]
        chosen, rest = lines[:size], lines[size:]
        data = {"data": [settle_line(line) for line in chosen], "size": len(chosen),
                "is_end": 0 if rest else 1,
                "next_start_index": rest[0].line_id if rest else "",
                "next_start_time": _t(rest[0].settled_at) if rest else ""}
        return 200, envelope(10000, "success", data)

    def token(self, query, form):
        return query.get("access_token")

    def request_time(self, query, form):
        value = query.get("timestamp")
        return float(value) if value and value.isdigit() else None

    def throttled(self, ban_seconds):
        return envelope(50002, "请求过于频繁", sub_code="isv.frequency-limited",
                        sub_msg=f"请{ban_seconds}秒后重试")

    def clock_refused(self):
        return envelope(30001, "参数错误", sub_code="isv.timestamp-invalid",  # UNCONFIRMED
                        sub_msg="timestamp与服务器时间相差超过10分钟")

    def render(self, order: w.Order, version: int) -> dict[str, Any]:
        kind = order.kind(version)
        status, desc = STATUS[kind]
        refund = REFUND.get(kind, 0)
        shares = allocate(order.discount_amount, [line.amount for line in order.lines])
        address = {
            "province": {"name": order.province, "id": "33"},
            "city": {"name": order.city, "id": "3301"},
            "town": {"name": order.district, "id": "330106"},
            "street": {"name": "", "id": ""},
            "detail": order.street,
        }
        return {
            "order_id": order.order_id,
            "shop_id": int(order.shop_id) if order.shop_id.isdigit() else order.shop_id,
            "order_status": status,
            "order_status_desc": desc,
            "main_status": status,
            "create_time": order.created_time,
            "pay_time": order.event_time(w.PAID, version) or 0,
            "update_time": order.modified(version),
            "finish_time": order.closed_time(version) or 0,
            "ship_time": order.event_time(w.SHIPPED, version) or 0,
            "order_amount": fen(order.goods_amount),
            "pay_amount": fen(order.paid_amount),
            "post_amount": fen(order.shipping_fee),
            "promotion_amount": fen(order.discount_amount),
            "promotion_shop_amount": fen(order.merchant_discount),
            "promotion_platform_amount": fen(order.platform_discount),
            "promotion_talent_amount": fen(order.influencer_discount),
            "post_receiver": order.buyer_name,
            "post_tel": order.buyer_phone,
            "post_addr": address,
            "doudian_open_id": "1@#" + order.buyer_phone[-6:],
            "sku_order_list": [
                {
                    "order_id": str(int(order.order_id) + line.line_no),
                    "parent_order_id": order.order_id,
                    "product_id": line.sku.product_id,
                    "sku_id": int(line.sku.sku_id),
                    "out_sku_id": line.sku.outer_sku_id,
                    "product_name": line.sku.title,
                    "item_num": line.quantity,
                    "origin_amount": fen(line.amount),
                    "sum_amount": fen(line.amount),
                    "pay_amount": fen(line.amount - share),
                    "after_sale_info": {"after_sale_status": 0 if not refund else 6,
                                        "refund_status": refund},
                }
                for line, share in zip(order.lines, shares, strict=True)
            ],
        }
