"""Sandbox Ele.me gateway: ``POST /eleme/api/v1/`` (JSON-RPC style)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from orderhub.platforms.eleme import (
    DETAIL_ACTION,
    FINANCE_ACTION,
    FINANCE_PAGE_SIZE,
    LIST_ACTION,
    PUSH_OK,
    local,
    parse_local,
    push_sign,
    sign,
)
from orderhub_tools.sandbox import world as w
from orderhub_tools.sandbox.gateway import Gateway, yuan_number

# (status, refundStatus)
STATUS = {
    w.PAID: ("unprocessed", "noRefund"), w.REFUND_REQUESTED: ("refunding", "applied"),
    w.REFUNDED: ("invalid", "successful"), w.SHIPPED: ("valid", "noRefund"),
    w.COMPLETED: ("settled", "noRefund"), w.AFTERSALE_REQUESTED: ("settled", "applied"),
    w.AFTERSALE_REFUNDED: ("settled", "successful"),
}
# Push message types (UNCONFIRMED which type Ele.me sends for which step).
PUSH_TYPE = {
    w.PAID: 10, w.REFUND_REQUESTED: 20, w.REFUNDED: 24, w.SHIPPED: 12, w.COMPLETED: 18,
    w.AFTERSALE_REQUESTED: 30, w.AFTERSALE_REFUNDED: 34,
}
MAX_WINDOW = 24 * 3600  # UNCONFIRMED; the client uses the same limit


def _t(ts: int | None) -> str | None:
    return None if ts is None else local(datetime.fromtimestamp(ts).astimezone())


def answer(request_id: str, result: Any = None, error: dict | None = None) -> dict[str, Any]:
    return {"id": request_id, "result": result, "error": error}


def error(request_id: str, code: str, message: str) -> dict[str, Any]:
    return answer(request_id, None, {"code": code, "message": message})


def shop_number(shop_id: str) -> int | str:
    """Ele.me's shop ids are numbers; a test's made-up id stays text."""
    return int(shop_id) if shop_id.isdigit() else shop_id


def negative(amount: Decimal) -> Decimal:
    return -yuan_number(amount) if amount else Decimal(0)


def finance_row(line) -> dict[str, Any]:
    """One order-level finance record (yuan, outgo negative; fields UNCONFIRMED)."""
    return {
        "id": line.line_id,
        "orderId": line.order_id,
        "shopId": shop_number(line.shop_id),
        "type": "REFUND" if line.line_type == "refund" else "PAYOUT",
        "settleTime": _t(line.settled_at),
        "payTime": _t(line.order_time),
        "totalPrice": yuan_number(line.gross),
        "elemeSubsidy": yuan_number(line.platform_subsidy),
        "commission": negative(line.commission),
        "serviceFee": negative(line.service_fee),
        "otherFee": negative(line.other_fee),
        "refund": negative(line.refund),
        "income": yuan_number(line.settle_amount),
    }


class ElemeGateway(Gateway):
    platform = "eleme"
    prefix = "/eleme/api/v1/"
    connection_path = "/eleme/api/v1/"
    base_rate = 10.0
    shows_unpaid = False
    shows_ship_time = False  # a rider's pick-up is not an order field
    food_delivery = True
    first_page = 1

    @staticmethod
    def order_id(digits: str, hour: int) -> str:
        return "30" + digits[:17]

    def _body(self, body: bytes) -> dict[str, Any]:
        try:
            parsed = json.loads(body or b"{}")
            return parsed if isinstance(parsed, dict) else {}
        except ValueError:
            return {}

    def token(self, query, form):
        return getattr(self._request, "token", None)

    def request_time(self, query, form):
        return getattr(self._request, "timestamp", None)

    def shop_for_request(self, query, form, headers):
        # the token and timestamp are in the JSON body: serve() reads them through here
        body = getattr(self._request, "body", b"")
        call = self._body(body)
        self._request.token = call.get("token")
        try:
            self._request.timestamp = int((call.get("metas") or {}).get("timestamp"))
        except (TypeError, ValueError):
            self._request.timestamp = None
        return self.shop_for(self._request.token)

    def serve(self, path, query, form, body, headers=None):
        self._request.body = body
        return super().serve(path, query, form, body, headers)

    def throttled(self, ban_seconds):
        return error(uuid.uuid4().hex, "EXCEED_LIMIT", f"调用频率超限，请{ban_seconds}秒后重试")

    def clock_refused(self):
        return error(uuid.uuid4().hex, "INVALID_TIMESTAMP", "timestamp已过期")  # UNCONFIRMED

    def handle(self, path, query, form, body):
        call = self._body(body)
        request_id = str(call.get("id") or uuid.uuid4().hex)
        metas, params = call.get("metas"), call.get("params")
        action, token = call.get("action"), call.get("token")
        if not isinstance(metas, dict) or not isinstance(params, dict) or not action:
            return 200, error(request_id, "VALIDATION_FAILED", "缺少 action, metas 或 params")
        if metas.get("app_key") != self.credentials.app_key:
            return 200, error(request_id, "ACCESS_DENIED", "app_key 不存在")
        if sign(action, token or "", metas, params, self.credentials.app_secret) \
                != call.get("signature"):
            return 200, error(request_id, "INVALID_SIGNATURE", "签名错误")
        shop_id = self._request_shop
        if shop_id is None:
            return 200, error(request_id, "UNAUTHORIZED", "token 无效或已过期")
        if action == FINANCE_ACTION:
            return self.finance(request_id, shop_id, params)
        if action == DETAIL_ACTION:
            found = self.current(shop_id, str(params.get("orderId", "")))
            if found is None:  # UNCONFIRMED code
                return 200, error(request_id, "ORDER_NOT_FOUND", f"订单{params.get('orderId')}不存在")
            return 200, answer(request_id, self.render(*found))
        if action != LIST_ACTION:
            return 200, error(request_id, "METHOD_NOT_ALLOWED", f"无此接口 {action}")
        try:
            start = int(parse_local(params["startTime"]).timestamp())
            end = int(parse_local(params["endTime"]).timestamp())
            page, size = int(params.get("pageNo", 1)), int(params.get("pageSize", 20))
        except (KeyError, TypeError, ValueError) as exc:
            return 200, error(request_id, "VALIDATION_FAILED", f"参数错误: {exc}")
        if not 0 < end - start <= MAX_WINDOW:
            return 200, error(request_id, "VALIDATION_FAILED", "startTime与endTime间隔不能超过1天")
        if not 1 <= size <= 50 or page < 1:
            return 200, error(request_id, "VALIDATION_FAILED", "pageSize必须在1到50之间")
        orders, total = self.page(shop_id, start, end, page, size)
        return 200, answer(request_id, {"total": total, "list": orders})

    def finance(self, request_id: str, shop_id: str, params: dict[str, Any]):
        try:
            query = params["query"]
            start = int(parse_local(query["beginTime"]).timestamp())
            end = int(parse_local(query["endTime"]).timestamp())
            offset, limit = int(query.get("offset", 0)), int(query.get("limit", 20))
        except (KeyError, TypeError, ValueError) as exc:
            return 200, error(request_id, "VALIDATION_FAILED", f"参数错误: {exc}")
        if not 0 < end - start <= 31 * 24 * 3600 or not 1 <= limit <= FINANCE_PAGE_SIZE \
                or offset < 0:
            return 200, error(request_id, "VALIDATION_FAILED", "时间跨度不超过31天, limit 1..50")
        lines = self.settlement_lines(shop_id, start, end)
        return 200, answer(request_id, {"total": len(lines), "list": [
            finance_row(line) for line in lines[offset:offset + limit]]})

    def render(self, order: w.Order, version: int) -> dict[str, Any]:
        status, refund = STATUS[order.kind(version)]
        baskets: list[list[dict[str, Any]]] = [[], []]
        for i, line in enumerate(order.lines):  # the buyer's two baskets (口袋), alternately
            baskets[i % 2].append({
                "id": int(line.sku.product_id), "skuId": int(line.sku.sku_id),
                "name": line.sku.title, "categoryId": 1, "price": yuan_number(line.sku.price),
                "quantity": line.quantity, "total": yuan_number(line.amount),
                "extendCode": line.sku.outer_sku_id, "barCode": ""})
        return {
            "id": order.order_id,
            "shopId": shop_number(order.shop_id),
            "status": status,
            "refundStatus": refund,
            "createdAt": _t(order.created_time),
            "activeAt": _t(order.event_time(w.PAID, version)),
            "finishedAt": _t(order.closed_time(version)),
            "updatedAt": _t(order.modified(version)),
            "originalPrice": yuan_number(order.goods_amount + order.shipping_fee),
            "totalPrice": yuan_number(order.paid_amount),
            "deliverFee": yuan_number(order.shipping_fee),
            "packageFee": 0,
            "activityTotal": negative(order.merchant_discount + order.platform_discount),
            "shopPart": negative(order.merchant_discount),
            "elemePart": negative(order.platform_discount),
            "hongbao": 0,
            "consignee": order.buyer_name,
            "phoneList": [order.buyer_phone],
            "deliveryPoiAddress": f"{order.province}{order.city}{order.district}{order.street}",
            "groups": [{"name": f"{n + 1}号篮子", "type": "normal", "items": items}
                       for n, items in enumerate(baskets) if items],
        }

    # -- push: one signed JSON message per POST -----------------------------------------
    push_transport = "webhook"
    push_batch = 1

    def push_item(self, order: w.Order, version: int) -> tuple[str, dict[str, Any]]:
        kind = order.kind(version)
        request_id = f"{order.order_id}-{version:02d}"
        content = {"orderId": order.order_id, "state": STATUS[kind][0],
                   "updateTime": order.modified(version)}
        return request_id, {"requestId": request_id, "type": PUSH_TYPE[kind],
                            "appId": self.credentials.app_key,
                            "message": json.dumps(content, separators=(",", ":")),
                            "shopId": shop_number(order.shop_id), "timestamp": order.modified(version),
                            "userId": 0}

    def push_forged(self, item: dict[str, Any]) -> dict[str, Any]:
        return dict(item, requestId="F" + item["requestId"],
                    message=item["message"].replace('"orderId":"', '"orderId":"9'))

    def push_malformed(self, msg_id: str, half: bool) -> bytes:
        message = {"requestId": f"M{msg_id}", "type": 10, "appId": self.credentials.app_key,
                   "message": '{"orderId' if half else "{}", "shopId": 0,
                   "timestamp": 0, "userId": 0}
        return json.dumps(message).encode()

    def push_request(self, items: list[dict[str, Any]], *, forge: bool = False,
                     raw: bytes | None = None, url: str = "") -> tuple[dict[str, str], bytes]:
        """One POST of one message, signed (a forged one with a wrong secret)."""
        message = json.loads(raw) if raw is not None else dict(items[0])
        secret = "not-the-secret" if forge else self.credentials.app_secret
        message["signature"] = push_sign(message, secret)
        return ({"Content-Type": "application/json"},
                json.dumps(message, ensure_ascii=False).encode())

    @staticmethod
    def push_acked(status: int, text: str) -> bool:
        try:
            return status == 200 and json.loads(text).get("message") == PUSH_OK["message"]
        except (ValueError, AttributeError):
            return False
