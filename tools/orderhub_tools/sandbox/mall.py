"""Sandbox of a brand's own shop (自营商城): a plain JSON REST API, no signing.

    GET /mall/api/v1/orders?updated_from=ISO&updated_to=ISO&page=N&page_size=M
    Authorization: Bearer <the shop's token>

    {"total": 37, "page": 1, "page_size": 50, "orders": [...]}
    errors: HTTP 400/401/429 with {"error": {"code": "...", "message": "..."}}

OrderHub reads it without any code of its own for it: config/sources/mall.yml
describes it to the generic client (orderhub.platforms.rest). Money is yuan
as strings with two decimals, times ISO 8601 with the +08:00 offset; the mall
does not settle through a platform (no contract terms: not reconciled).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orderhub.config import PLATFORM_TZ
from orderhub_tools.sandbox import world as w
from orderhub_tools.sandbox.gateway import Gateway, allocate, yuan

STATUS = {  # event -> (status, after_sale)
    w.CREATED: ("pending_payment", "none"), w.CANCELLED: ("cancelled", "none"),
    w.PAID: ("paid", "none"), w.REFUND_REQUESTED: ("paid", "requested"),
    w.REFUNDED: ("closed", "refunded"), w.SHIPPED: ("shipped", "none"),
    w.COMPLETED: ("completed", "none"), w.AFTERSALE_REQUESTED: ("completed", "requested"),
    w.AFTERSALE_REFUNDED: ("completed", "refunded"),
}
MAX_WINDOW = 24 * 3600
MAX_PAGE_SIZE = 100


def _t(ts: int | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, PLATFORM_TZ).isoformat()


def error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class MallGateway(Gateway):
    platform = "mall"
    prefix = "/mall/"
    connection_path = "/mall"  # the API's base URL; the source file names the path
    base_rate = 20.0
    first_page = 1
    throttle_status = 429

    @staticmethod
    def order_id(digits: str, hour: int) -> str:
        return "M" + datetime.fromtimestamp(hour, PLATFORM_TZ).strftime("%Y%m%d") + digits[:8]

    def token(self, query, form):
        return None  # in the Authorization header: see serve()

    def request_time(self, query, form):
        return None  # a plain API: no signed timestamp

    def shop_for_request(self, query, form, headers):
        auth = headers.get("authorization", "")
        return self.shop_for(auth[7:] if auth.lower().startswith("bearer ") else None)

    def handle(self, path, query, form, body):
        if path != "/mall/api/v1/orders":
            return 404, error("NOT_FOUND", f"no such path {path}")
        shop_id = self._request_shop
        if shop_id is None:
            return 401, error("UNAUTHORIZED", "missing or unknown bearer token")
        try:
            start = int(datetime.fromisoformat(query["updated_from"]).timestamp())
            end = int(datetime.fromisoformat(query["updated_to"]).timestamp())
            page = int(query.get("page", 1))
            size = int(query.get("page_size", 20))
        except (KeyError, ValueError) as exc:
            return 400, error("BAD_REQUEST", f"updated_from/updated_to (ISO 8601), page: {exc}")
        if not 0 < end - start <= MAX_WINDOW:
            return 400, error("BAD_REQUEST", "updated_from..updated_to: at most 24 hours")
        if not 1 <= size <= MAX_PAGE_SIZE or page < 1:
            return 400, error("BAD_REQUEST", f"page from 1, page_size 1..{MAX_PAGE_SIZE}")
        orders, total = self.page(shop_id, start, end, page, size)
        return 200, {"total": total, "page": page, "page_size": size, "orders": orders}

    def throttled(self, ban_seconds):
        return error("TOO_MANY_REQUESTS", f"slow down: retry after {ban_seconds} s")

    def clock_refused(self):
        return error("BAD_REQUEST", "clock")  # never: the mall signs nothing

    def render(self, order: w.Order, version: int) -> dict[str, Any]:
        status, after_sale = STATUS[order.kind(version)]
        shares = allocate(order.discount_amount, [line.amount for line in order.lines])
        discounts = [{"funder": funder, "amount": yuan(amount)} for funder, amount in
                     (("merchant", order.merchant_discount), ("platform", order.platform_discount))
                     if amount]
        return {
            "order_no": order.order_id,
            "status": status,
            "after_sale": after_sale,
            "created_at": _t(order.created_time),
            "paid_at": _t(order.event_time(w.PAID, version)),
            "shipped_at": _t(order.event_time(w.SHIPPED, version)),
            "closed_at": _t(order.closed_time(version)),
            "updated_at": _t(order.modified(version)),
            "amounts": {"goods": yuan(order.goods_amount), "discount": yuan(order.discount_amount),
                        "shipping": yuan(order.shipping_fee), "paid": yuan(order.paid_amount)},
            "discounts": discounts,
            "buyer": {"name": order.buyer_name, "phone": order.buyer_phone,
                      "province": order.province, "city": order.city,
                      "district": order.district, "address": order.street},
            "items": [
                {"line_no": line.line_no, "sku": line.sku.outer_sku_id,
                 "product_id": line.sku.product_id, "title": line.sku.title, "qty": line.quantity,
                 "unit_price": yuan(line.sku.price), "amount": yuan(line.amount),
                 "discount": yuan(share)}
                for line, share in zip(order.lines, shares, strict=True)
            ],
        }
