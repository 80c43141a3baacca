"""Douyin shop (Doudian) open platform: ``order.searchList``.

``POST {gateway}/order/searchList`` (the method name with ``.`` -> ``/``);
system parameters in the query string, ``param_json`` as the body. Money:
integer fen. Times: Unix seconds. Pages count from 0.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from orderhub.platforms.base import (
    Credentials,
    HttpRequest,
    ListedSku,
    Page,
    PlatformClient,
    PlatformError,
    SettlementPage,
    StockListing,
    Verified,
    local_time,
    parse_local_time,
)
from orderhub.push.messages import Malformed, PushMessage, PushRejected

METHOD = "order.searchList"
# Settlement lines (fen), cursor-paged: start_index/start_time from the previous
# answer's next_start_index/next_start_time until is_end = 1.
SETTLE_METHOD = "order.getSettleBillDetailV3"
SETTLE_PAGE_SIZE = 100
# Push (issue 17): webhooks, one JSON array of {tag, msg_id, data} per POST,
# signed with event-sign; the detail API fetches the order a message names.
DETAIL_METHOD = "order.orderDetail"
# Stock (issue 18): a SKU's stock (by sku_id, code or out_sku_id);
# incremental = true changes it by stock_num and needs an idempotent_id, with
# which a retried call changes nothing.
STOCK_METHOD = "sku.syncStock"
# The shop's products with their SKUs and stock (the SKU list in this answer
# is UNCONFIRMED: Doudian may need sku.list per product).
LISTING_METHOD = "product.listV2"
PUSH_OK = {"code": 0, "msg": "success"}
PUSH_SIGN_ERROR = {"code": 40041, "msg": "event-sign verification failed"}  # UNCONFIRMED body
# The order tags (100 created ... 113 remark) and after-sale tags (200-227):
# each means "this order changed"; product tags (400) are not orders.
ORDER_TAGS = {str(t) for t in (*range(100, 114), *range(200, 228))}


def push_sign(app_key: str, body: bytes, secret: str) -> str:
    """event-sign = md5_hex(app_key + raw body + app_secret)."""
    return hashlib.md5(app_key.encode() + body + secret.encode()).hexdigest()


def param_json(business: dict[str, Any]) -> str:
    """Doudian signs the compact JSON of the business parameters, keys sorted."""
    return json.dumps(business, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def sign(app_key: str, method: str, param: str, timestamp: str, secret: str,
         sign_method: str = "hmac-sha256") -> str:
    """secret + app_key… + method… + param_json… + timestamp… + v2 + secret;
    HMAC-SHA256 keyed with the secret, or MD5; lowercase hex."""
    text = (f"{secret}app_key{app_key}method{method}param_json{param}"
            f"timestamp{timestamp}v2{secret}")
    if sign_method == "md5":
        return hashlib.md5(text.encode()).hexdigest()
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


# Doudian error codes are UNCONFIRMED beyond "10000 = success"; the sandbox and
# this client agree on the ones in docs/platforms.md.
RETRYABLE = {"50002": "throttled", "20000": "server"}


def error_from(body: dict[str, Any]) -> PlatformError:
    code = str(body.get("code"))
    message = f"{body.get('msg', '')} {body.get('sub_code', '')} {body.get('sub_msg', '')}".strip()
    if "timestamp" in str(body.get("sub_code", "")):
        return PlatformError("douyin", code, message, retryable=True, kind="clock", retry_after=0)
    if code in RETRYABLE:
        return PlatformError("douyin", code, message, retryable=True, kind=RETRYABLE[code],
                             retry_after=1.0 if RETRYABLE[code] == "throttled" else None)
    kind = {"40004": "signature", "30002": "auth"}.get(code, "api")
    return PlatformError("douyin", code, message, kind=kind)


class DouyinClient(PlatformClient):
    platform = "douyin"
    title = "Douyin shop"
    title_zh = "抖店"
    money_unit = "integer fen"
    time_format = "Unix seconds"
    number_unit = "fen"
    colour = "#161823"
    position = 4
    max_window = timedelta(days=1)  # UNCONFIRMED limit; the sandbox enforces the same
    first_page = 0

    def order_search_request(self, start: datetime, end: datetime, page: int,
                             page_size: int) -> HttpRequest:
        return self._request(METHOD, {
            "update_time_start": int(start.timestamp()),
            "update_time_end": int(end.timestamp()),
            "order_by": "update_time",
            "order_asc": False,
            "page": page,
            "size": page_size,
        })

    def _request(self, method: str, business: dict[str, Any]) -> HttpRequest:
        """A signed Doudian call: the method as the path, param_json as the body."""
        c = self.credentials
        body = param_json(business)
        timestamp = str(int(self.now()))
        sign_method = c.sign_method or "hmac-sha256"
        params = {
            "app_key": c.app_key,
            "method": method,
            "timestamp": timestamp,
            "v": "2",
            "sign_method": sign_method,
            "access_token": c.access_token,
            "sign": sign(c.app_key, method, body, timestamp, c.app_secret, sign_method),
        }
        url = c.gateway_url.rstrip("/") + "/" + method.replace(".", "/")
        return HttpRequest("POST", url, params=params, data=body.encode(),
                           headers={"Content-Type": "application/json"})

    def _data(self, text: str) -> dict[str, Any]:
        body = self.parse_json(text)
        if not isinstance(body, dict) or "code" not in body:
            raise PlatformError("douyin", "malformed", "no code in response", retryable=True,
                                kind="malformed")
        if body["code"] != 10000:
            raise error_from(body)
        return body.get("data") or {}

    def parse_order_search(self, text: str) -> Page:
        data = self._data(text)
        return Page(orders=data.get("shop_order_list") or [], total=int(data.get("total", 0)))

    # -- push: webhooks + the detail API ------------------------------------------
    push_transport = "webhook"
    push_refusal = PUSH_SIGN_ERROR
    detail_endpoint = DETAIL_METHOD

    def order_detail_request(self, order_id: str) -> HttpRequest:
        return self._request(DETAIL_METHOD, {"shop_order_id": order_id})

    @classmethod
    def verify_push(cls, headers: dict[str, str], body: bytes,
                    apps: list[Credentials]) -> Verified:
        """The app whose key is the ``app-id`` header and whose secret signs
        the body; PushRejected (forged or unsigned) otherwise."""
        app_id, given = headers.get("app-id", ""), headers.get("event-sign", "")
        for app in apps:
            if app.app_key == app_id and hmac.compare_digest(
                    push_sign(app.app_key, body, app.app_secret), given):
                return Verified(app_id, PUSH_OK)
        raise PushRejected("douyin: event-sign missing or wrong" if given else
                           "douyin: no event-sign header")

    @classmethod
    def push_messages(cls, body: bytes) -> tuple[list[PushMessage], list[Malformed]]:
        """The order messages of one verified POST (other tags are skipped)."""
        text = body.decode("utf-8", errors="replace")
        try:
            items = json.loads(text)
        except ValueError as exc:
            return [], [Malformed(text, f"douyin push: body is not JSON ({exc})")]
        if not isinstance(items, list):
            return [], [Malformed(text, "douyin push: body is not a JSON array")]
        messages, malformed = [], []
        for item in items:
            try:
                tag = str(item["tag"])
                if tag not in ORDER_TAGS:
                    continue
                data = json.loads(item["data"])
                messages.append(PushMessage("douyin", str(data["shop_id"]), str(data["p_id"]),
                                            str(item["msg_id"]), tag))
            except (KeyError, TypeError, ValueError) as exc:
                malformed.append(Malformed(json.dumps(item, ensure_ascii=False)
                                           if not isinstance(item, str) else item,
                                           f"douyin push: message lacks a usable"
                                           f" tag, msg_id, shop_id or p_id"
                                           f" ({type(exc).__name__}: {exc})"))
        return messages, malformed

    # -- stock: sku.syncStock --------------------------------------------------------
    stock_endpoint = STOCK_METHOD
    stock_reduced_on = "created"
    stock_increments = True
    stock_idempotent = True

    def stock_update_request(self, listing: StockListing, quantity: int, *, increment: bool,
                             request_id: str) -> HttpRequest:
        business: dict[str, Any] = {"product_id": listing.product_id, "stock_num": quantity,
                                    "incremental": increment, **listing.sku_param("code")}
        if request_id:
            business["idempotent_id"] = request_id
        return self._request(STOCK_METHOD, business)

    def parse_stock_update(self, text: str) -> int | None:
        data = self._data(text)
        return int(data["stock_num"]) if "stock_num" in data else None

    listing_endpoint = LISTING_METHOD

    def listing_request(self, page: int, page_size: int) -> HttpRequest:
        return self._request(LISTING_METHOD, {"page": page, "size": page_size})

    def parse_listings(self, text: str) -> tuple[list[ListedSku], int]:
        data = self._data(text)
        skus = [ListedSku(StockListing(str(product["product_id"]), str(sku["id"]),
                                       sku.get("code") or ""),
                          int(sku["stock_num"]), product.get("name", ""))
                for product in data.get("data") or [] for sku in product.get("sku_list") or []]
        return skus, int(data.get("total", 0))

    order_endpoint = METHOD
    # The payload fields order_identity reads (the raw table's key columns).
    identity_paths = ("$.order_id", "$.update_time")
    order_responses = ("data.shop_order_list",  # order.searchList
                       "data.shop_order_detail")  # order.orderDetail

    def raise_for_error(self, body: Any) -> None:
        if isinstance(body, dict) and "code" in body and body["code"] != 10000:
            raise error_from(body)

    def order_identity(self, order: dict[str, Any]) -> tuple[str, datetime]:
        return str(order["order_id"]), datetime.fromtimestamp(int(order["update_time"]), UTC)

    # -- settlements: order.getSettleBillDetailV3, cursor paging -------------------
    settlement_endpoint = SETTLE_METHOD
    settlement_max_window = timedelta(days=1)  # the API allows 7; daily runs need one
    settlement_identity_paths = ("$.shop_order_id", "$.settle_time")

    def settlement_request(self, start: datetime, end: datetime, cursor: Any) -> HttpRequest:
        begin, index = cursor or (local_time(start), "")
        return self._request(SETTLE_METHOD, {
            "start_time": begin,
            "end_time": local_time(end),
            "time_type": "0",  # by settle time
            "size": str(SETTLE_PAGE_SIZE),
            "start_index": index,
        })

    def parse_settlements(self, text: str, cursor: Any) -> SettlementPage:
        data = self._data(text)
        done = str(data.get("is_end", "1")) == "1"
        return SettlementPage(
            lines=data.get("data") or [],
            next_cursor=None if done else (data["next_start_time"], data["next_start_index"]))

    def line_identity(self, line: dict[str, Any]) -> tuple[str, datetime]:
        return str(line["shop_order_id"]), parse_local_time(line["settle_time"])
