"""Tmall / Taobao Open Platform (TOP): ``taobao.trades.sold.increment.get``.

Gateway ``POST https://eco.taobao.com/router/rest``; all parameters signed,
sent as a form. Money: yuan strings. Times: ``yyyy-MM-dd HH:mm:ss`` UTC+8.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime, timedelta
from typing import Any

from orderhub.platforms.base import (
    HttpRequest,
    ListedSku,
    Page,
    PlatformClient,
    PlatformError,
    SettlementPage,
    StockListing,
    local_time,
    parse_local_time,
)
from orderhub.push.messages import Frame, order_frame

METHOD = "taobao.trades.sold.increment.get"
RESPONSE_KEY = "trades_sold_increment_get_response"
# Settlement: the shop's bills (账单), one row per money movement of an order:
# account_id 1 virtual (platform subsidies), 2 trade (payment in, refunds out),
# 3 commission, 4 service fee, 6 other fees; amounts in fen, negative when
# money leaves the shop (amount unit UNCONFIRMED, probably fen).
BILL_METHOD = "taobao.bill.bills.get"
BILL_RESPONSE_KEY = "bill_bills_get_response"
BILL_PAGE_SIZE = 100
TRADE_FIELDS = ",".join([
    "tid", "tid_str", "status", "created", "pay_time", "modified", "consign_time", "end_time",
    "buyer_nick", "receiver_name", "receiver_mobile", "receiver_phone", "receiver_state",
    "receiver_city", "receiver_district", "receiver_address", "receiver_zip", "total_fee",
    "payment", "discount_fee", "adjust_fee", "post_fee", "coupon_fee", "platform_subsidy_fee",
    "promotion_details", "orders",
])
# Push (issue 17): TMC (淘宝消息服务), one long connection per app and group,
# signed once at connect; each message names a trade (tid) and its new status,
# and is confirmed by id. The detail API fetches the trade it names.
DETAIL_METHOD = "taobao.trade.fullinfo.get"
# Stock (issue 18): the listed quantity of an item's SKU (by sku_id or
# outer_id), type 1 = set it, 2 = change it by a delta (never below 0).
STOCK_METHOD = "taobao.item.quantity.update"
STOCK_RESPONSE_KEY = "item_quantity_update_response"
# The shop's items on sale with their SKUs and quantities (that the answer
# carries the SKUs is UNCONFIRMED: TOP may need taobao.item.skus.get per item).
LISTING_METHOD = "taobao.items.onsale.get"
LISTING_RESPONSE_KEY = "items_onsale_get_response"
TMC_URL = "ws://mc.api.taobao.com/"
TMC_GROUP = "default"
# The trade and refund topics: each means "this trade changed".
TMC_TOPICS = {"taobao_trade_TradeCreate", "taobao_trade_TradeBuyerPay",
              "taobao_trade_TradeSellerShip", "taobao_trade_TradeSuccess",
              "taobao_trade_TradeClose", "taobao_trade_TradeChanged",
              "taobao_refund_RefundCreated", "taobao_refund_RefundSuccess",
              "taobao_refund_RefundClosed"}


def tmc_sign(app_key: str, group: str, timestamp_ms: int | str, secret: str) -> str:
    """The connect signature: upper(md5(secret + "app_key"+key + "group_name"+group
    + "timestamp"+ms + secret))."""
    text = f"{secret}app_key{app_key}group_name{group}timestamp{timestamp_ms}{secret}"
    return hashlib.md5(text.encode()).hexdigest().upper()


def sign(params: dict[str, str], secret: str, sign_method: str = "md5") -> str:
    """TOP signature: sorted ``key+value`` of every non-empty parameter but
    ``sign``; md5 wraps the secret on both sides, hmac (HMAC-MD5) and
    hmac-sha256 key the HMAC with it. Uppercase hex."""
    text = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")
    if sign_method == "md5":
        return hashlib.md5(f"{secret}{text}{secret}".encode()).hexdigest().upper()
    digest = {"hmac": hashlib.md5, "hmac-sha256": hashlib.sha256}[sign_method]
    return hmac.new(secret.encode(), text.encode(), digest).hexdigest().upper()


# TOP error codes (see docs/platforms.md): 7 throttled, 15 remote service error,
# 25 invalid signature, 27 invalid session, 11 permission, 40/41 arguments.
_BAN = re.compile(r"ban will last (\d+) more seconds", re.I)


def error_from(body: dict[str, Any]) -> PlatformError:
    code = str(body.get("code"))
    message = f"{body.get('msg', '')} {body.get('sub_code', '')} {body.get('sub_msg', '')}".strip()
    if code == "7":
        ban = _BAN.search(message)
        return PlatformError("tmall", code, message, retryable=True, kind="throttled",
                             retry_after=float(ban.group(1)) if ban else 1.0)
    if "timestamp" in str(body.get("sub_code", "")):
        return PlatformError("tmall", code, message, retryable=True, kind="clock", retry_after=0)
    if code == "15":
        return PlatformError("tmall", code, message, retryable=True, kind="server")
    kind = {"25": "signature", "27": "auth", "11": "auth"}.get(code, "api")
    return PlatformError("tmall", code, message, kind=kind)


class TmallClient(PlatformClient):
    platform = "tmall"
    title = "Tmall / Taobao"
    title_zh = "天猫/淘宝"
    money_unit = "yuan string"
    time_format = "Beijing-time string"
    colour = "#ff5000"
    position = 1
    max_window = timedelta(minutes=30)  # TOP allows 1 day, recommends 30 minutes or less
    first_page = 1

    def _request(self, method: str, business: dict[str, str]) -> HttpRequest:
        """A signed TOP call: system parameters plus the method's own, as a form."""
        c = self.credentials
        params = {
            "method": method,
            "app_key": c.app_key,
            "session": c.access_token,
            "timestamp": local_time(datetime.fromtimestamp(self.now()).astimezone()),
            "v": "2.0",
            "format": "json",
            "sign_method": c.sign_method or "md5",
            **business,
        }
        params["sign"] = sign(params, c.app_secret, params["sign_method"])
        return HttpRequest("POST", c.gateway_url, data=params)

    def _result(self, text: str, key: str) -> dict[str, Any]:
        body = self.parse_json(text)
        if "error_response" in body:
            raise error_from(body["error_response"])
        try:
            return body[key]
        except (KeyError, TypeError):
            raise PlatformError("tmall", "malformed", f"no {key} in response",
                                retryable=True, kind="malformed") from None

    def order_search_request(self, start: datetime, end: datetime, page: int,
                             page_size: int) -> HttpRequest:
        return self._request(METHOD, {
            "fields": TRADE_FIELDS,
            "start_modified": local_time(start),
            "end_modified": local_time(end),
            "page_no": str(page),
            "page_size": str(page_size),
            "use_has_next": "false",
        })

    def parse_order_search(self, text: str) -> Page:
        result = self._result(text, RESPONSE_KEY)
        trades = (result.get("trades") or {}).get("trade") or []
        return Page(orders=trades, total=int(result.get("total_results", 0)))

    # -- push: TMC over a WebSocket, then taobao.trade.fullinfo.get -------------
    # The frames are modelled as JSON text (UNCONFIRMED: the real TMC frames
    # are a binary encoding of the same fields; docs/push.md).
    push_transport = "websocket"
    push_url = TMC_URL
    detail_endpoint = DETAIL_METHOD

    def order_detail_request(self, order_id: str) -> HttpRequest:
        return self._request(DETAIL_METHOD, {"fields": TRADE_FIELDS, "tid": order_id})

    @classmethod
    def push_connect(cls, app, now_ms: int) -> tuple[str, list[str]]:
        frame = {"kind": "connect", "app_key": app.app_key, "group_name": TMC_GROUP,
                 "timestamp": now_ms,
                 "sign": tmc_sign(app.app_key, TMC_GROUP, now_ms, app.app_secret)}
        return app.push_url or TMC_URL, [json.dumps(frame)]

    @classmethod
    def push_heartbeat(cls) -> str:
        return '{"kind":"heartbeat"}'

    @classmethod
    def push_read(cls, text: str) -> Frame:
        try:
            frame = json.loads(text)
            kind = frame["kind"]
        except (ValueError, TypeError, KeyError) as exc:
            return Frame("other", detail=f"tmall push: unreadable frame ({exc})")
        if kind == "connect_ok":
            return Frame("connected")
        if kind == "connect_failed":
            return Frame("refused", detail=f"tmall push: connect refused: {frame.get('msg')}")
        if kind == "heartbeat":
            return Frame("heartbeat")
        if kind != "data" or "id" not in frame:
            return Frame("other", detail=f"tmall push: frame kind {kind!r}")
        ack = json.dumps({"kind": "confirm", "id": frame["id"]})
        if frame.get("topic") not in TMC_TOPICS:
            return Frame("other", ack=ack, detail=f"tmall push: topic {frame.get('topic')!r}")
        return order_frame("tmall", text, ack, frame["id"], frame["topic"],
                           lambda: (frame["user_id"], json.loads(frame["content"])["tid"]),
                           "user_id or content.tid")

    # -- stock: taobao.item.quantity.update -------------------------------------
    stock_endpoint = STOCK_METHOD
    stock_reduced_on = "created"
    stock_increments = True
    stock_answer_counts = True  # item.num after the change (one SKU per item: UNCONFIRMED for more)

    def stock_update_request(self, listing: StockListing, quantity: int, *, increment: bool,
                             request_id: str) -> HttpRequest:
        return self._request(STOCK_METHOD, {
            "num_iid": listing.product_id, **listing.sku_param(), "quantity": str(quantity),
            "type": "2" if increment else "1"})

    def parse_stock_update(self, text: str) -> int | None:
        item = self._result(text, STOCK_RESPONSE_KEY).get("item") or {}
        return int(item["num"]) if "num" in item else None

    listing_endpoint = LISTING_METHOD

    def listing_request(self, page: int, page_size: int) -> HttpRequest:
        return self._request(LISTING_METHOD, {"fields": "num_iid,title,num,outer_id,skus",
                                              "page_no": str(page), "page_size": str(page_size)})

    def parse_listings(self, text: str) -> tuple[list[ListedSku], int]:
        result = self._result(text, LISTING_RESPONSE_KEY)
        skus = []
        for item in (result.get("items") or {}).get("item") or []:
            for sku in (item.get("skus") or {}).get("sku") or []:
                skus.append(ListedSku(StockListing(str(item["num_iid"]), str(sku["sku_id"]),
                                                   sku.get("outer_id") or ""),
                                      int(sku["quantity"]), item.get("title", "")))
        return skus, int(result.get("total_results", 0))

    order_endpoint = METHOD
    # The payload fields order_identity reads (the raw table's key columns).
    identity_paths = ("$.tid", "$.tid_str", "$.modified")
    order_responses = (f"{RESPONSE_KEY}.trades.trade",  # taobao.trades.sold.increment.get
                       "trades_sold_get_response.trades.trade",  # taobao.trades.sold.get
                       "trade_fullinfo_get_response.trade")  # taobao.trade.fullinfo.get

    def raise_for_error(self, body: Any) -> None:
        if isinstance(body, dict) and "error_response" in body:
            raise error_from(body["error_response"])

    def order_identity(self, order: dict[str, Any]) -> tuple[str, datetime]:
        order_id = order.get("tid_str") or order["tid"]
        return str(order_id), parse_local_time(order["modified"])

    # -- settlements: taobao.bill.bills.get, paged by page_no ------------------
    settlement_endpoint = BILL_METHOD
    settlement_max_window = timedelta(days=1)
    settlement_identity_paths = ("$.trade_id", "$.book_time")

    def settlement_request(self, start: datetime, end: datetime, cursor: Any) -> HttpRequest:
        return self._request(BILL_METHOD, {
            "fields": "bid,account_id,trade_id,order_id,total_amount,amount,book_time,biz_time,"
                      "pay_time,alipay_outno,alipay_notice,status",
            "start_time": local_time(start),
            "end_time": local_time(end),
            "time_type": "1",  # by booking time
            "page_no": str(cursor or 1),
            "page_size": str(BILL_PAGE_SIZE),
        })

    def parse_settlements(self, text: str, cursor: Any) -> SettlementPage:
        result = self._result(text, BILL_RESPONSE_KEY)
        bills = (result.get("bills") or {}).get("bill") or []
        total = int(result.get("total_results", 0))
        page = cursor or 1
        return SettlementPage(lines=bills, total=total,
                              next_cursor=page + 1 if page * BILL_PAGE_SIZE < total else None)

    def line_identity(self, line: dict[str, Any]) -> tuple[str, datetime]:
        return str(line["trade_id"]), parse_local_time(line["book_time"])
