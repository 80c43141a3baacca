"""Pinduoduo open platform: ``pdd.order.number.list.increment.get``.

Gateway ``POST https://gw-api.pinduoduo.com/api/router``. Request times are
Unix seconds, response times local strings, money yuan as JSON numbers. The
increment API answers at most 30 minutes per call.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urljoin

from orderhub.config import PLATFORM_TZ
from orderhub.platforms.base import (
    HttpRequest,
    ListedSku,
    Page,
    PlatformClient,
    PlatformError,
    SettlementPage,
    StockListing,
    parse_local_time,
)
from orderhub.push.messages import Frame, order_frame

METHOD = "pdd.order.number.list.increment.get"
RESPONSE_KEY = "order_sn_increment_get_response"
# Settlement: a daily bill. The API answers a download URL for one Beijing
# day's bill; the file is a CSV (UTF-8 with BOM, "#" comment lines) with one
# row per money movement. Its columns are UNCONFIRMED; the sandbox and this
# client agree on 订单号, 流水号, 账务时间, 账务类型, 收入金额(元), 支出金额(元), 备注.
BILL_METHOD = "pdd.finance.balance.daily.bill.url.get"
BILL_RESPONSE_KEY = "balance_daily_bill_url_get_response"
# Push (issue 17): 多多消息服务, one WebSocket per app (client id), signed in
# its URL; a Common frame names an order (tid) of a mall, an Ack frame confirms
# it. The detail API fetches the order it names.
DETAIL_METHOD = "pdd.order.information.get"
# Stock (issue 18): a goods' SKU stock (by sku_id or outer_id), update_type
# 1 = set, 2 = change by a delta; goods in a promotion slot cannot be reduced.
STOCK_METHOD = "pdd.goods.quantity.update"
STOCK_RESPONSE_KEY = "goods_quantity_update_response"
LISTING_METHOD = "pdd.goods.list.get"
LISTING_RESPONSE_KEY = "goods_list_get_response"
PUSH_URL = "wss://message-api.pinduoduo.com/message"


def push_url_sign(client_id: str, timestamp_ms: int | str, secret: str) -> str:
    """base64 of the md5 hex digest (a string) of client_id + ts_ms + secret."""
    digest = hashlib.md5(f"{client_id}{timestamp_ms}{secret}".encode()).hexdigest()
    return base64.b64encode(digest.encode()).decode()


def sign(params: dict[str, str], secret: str) -> str:
    """PDD signature: client_secret + sorted ``key+value`` + client_secret, MD5, uppercase hex."""
    text = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")
    return hashlib.md5(f"{secret}{text}{secret}".encode()).hexdigest().upper()


RETRYABLE = {"52101": "throttled", "70031": "throttled", "52102": "server", "52103": "server"}


def error_from(body: dict[str, Any]) -> PlatformError:
    code = str(body.get("error_code"))
    message = f"{body.get('error_msg', '')} {body.get('sub_msg', '')}".strip()
    if code == "10012":  # timestamp expired (UNCONFIRMED)
        return PlatformError("pdd", code, message, retryable=True, kind="clock", retry_after=0)
    if code in RETRYABLE:
        return PlatformError("pdd", code, message, retryable=True, kind=RETRYABLE[code],
                             retry_after=1.0 if RETRYABLE[code] == "throttled" else None)
    kind = {"20004": "signature", "10019": "auth"}.get(code, "api")
    return PlatformError("pdd", code, message, kind=kind)


class PddClient(PlatformClient):
    platform = "pdd"
    title = "Pinduoduo"
    title_zh = "拼多多"
    money_unit = "yuan number"
    time_format = "Beijing-time string"
    lists_unpaid_orders = False
    colour = "#8e24aa"  # not its red (JD has red) nor a yellow (Meituan has that)
    position = 3
    max_window = timedelta(minutes=30)
    first_page = 1

    def _request(self, method: str, business: dict[str, str]) -> HttpRequest:
        """A signed PDD call: system and business parameters in one form."""
        c = self.credentials
        params = {
            "type": method,
            "client_id": c.app_key,
            "access_token": c.access_token,
            "timestamp": str(int(self.now())),
            "data_type": "JSON",
            "version": "V1",
            **business,
        }
        params["sign"] = sign(params, c.app_secret)
        return HttpRequest("POST", c.gateway_url, data=params)

    def _result(self, text: str, key: str) -> dict[str, Any]:
        body = self.parse_json(text)
        if "error_response" in body:
            raise error_from(body["error_response"])
        try:
            return body[key]
        except (KeyError, TypeError):
            raise PlatformError("pdd", "malformed", f"no {key} in response",
                                retryable=True, kind="malformed") from None

    def order_search_request(self, start: datetime, end: datetime, page: int,
                             page_size: int) -> HttpRequest:
        return self._request(METHOD, {
            "start_updated_at": str(int(start.timestamp())),
            "end_updated_at": str(int(end.timestamp())),
            "order_status": "5",  # all
            "refund_status": "5",  # all
            "page": str(page),
            "page_size": str(page_size),
            "use_has_next": "false",
        })

    def parse_order_search(self, text: str) -> Page:
        result = self._result(text, RESPONSE_KEY)
        return Page(orders=result.get("order_sn_list") or [],
                    total=int(result.get("total_count", 0)))

    # -- push: the message service over a WebSocket, then pdd.order.information.get
    push_transport = "websocket"
    push_url = PUSH_URL
    detail_endpoint = DETAIL_METHOD

    def order_detail_request(self, order_id: str) -> HttpRequest:
        return self._request(DETAIL_METHOD, {"order_sn": order_id})

    @classmethod
    def push_connect(cls, app, now_ms: int) -> tuple[str, list[str]]:
        # The sign is base64 and may hold "/" or "+": quoted as one path
        # segment (UNCONFIRMED how the real service wants it).
        signature = quote(push_url_sign(app.app_key, now_ms, app.app_secret), safe="")
        base = (app.push_url or PUSH_URL).rstrip("/")
        return f"{base}/{app.app_key}/{now_ms}/{signature}", []

    @classmethod
    def push_heartbeat(cls) -> str:
        return '{"commandType":"HeartBeat"}'

    @classmethod
    def push_read(cls, text: str) -> Frame:
        try:
            frame = json.loads(text)
            command = frame["commandType"]
        except (ValueError, TypeError, KeyError) as exc:
            return Frame("other", detail=f"pdd push: unreadable frame ({exc})")
        if command == "HeartBeat":
            return Frame("heartbeat")
        if command != "Common" or "id" not in frame:
            return Frame("other", detail=f"pdd push: commandType {command!r}")
        body = frame.get("message") if isinstance(frame.get("message"), dict) else {}
        ack = json.dumps({"id": frame["id"], "commandType": "Ack",
                          "time": int(time.time() * 1000), "sendTime": frame.get("sendTime"),
                          "type": body.get("type"), "mallID": body.get("mallID")})
        topic = str(body.get("type", ""))
        if not topic.startswith(("pdd_trade_", "pdd_refund_")):
            return Frame("other", ack=ack, detail=f"pdd push: type {topic!r}")
        return order_frame("pdd", text, ack, frame["id"], topic,
                           lambda: (body["mallID"], json.loads(body["content"])["tid"]),
                           "mallID or content.tid")

    # -- stock: pdd.goods.quantity.update ------------------------------------------
    stock_endpoint = STOCK_METHOD
    stock_reduced_on = "paid"
    stock_increments = True

    def stock_update_request(self, listing: StockListing, quantity: int, *, increment: bool,
                             request_id: str) -> HttpRequest:
        return self._request(STOCK_METHOD, {
            "goods_id": listing.product_id, **listing.sku_param(), "quantity": str(quantity),
            "update_type": "2" if increment else "1"})

    def parse_stock_update(self, text: str) -> int | None:
        result = self._result(text, STOCK_RESPONSE_KEY)
        if not result.get("is_success"):
            raise PlatformError("pdd", "api", f"{STOCK_METHOD}: is_success is not true")
        return None  # PDD answers only whether it worked

    listing_endpoint = LISTING_METHOD

    def listing_request(self, page: int, page_size: int) -> HttpRequest:
        return self._request(LISTING_METHOD, {"page": str(page), "page_size": str(page_size)})

    def parse_listings(self, text: str) -> tuple[list[ListedSku], int]:
        result = self._result(text, LISTING_RESPONSE_KEY)
        skus = [ListedSku(StockListing(str(goods["goods_id"]), str(sku["sku_id"]),
                                       sku.get("outer_id") or ""),
                          int(sku["sku_quantity"]), goods.get("goods_name", ""))
                for goods in result.get("goods_list") or [] for sku in goods.get("sku_list") or []]
        return skus, int(result.get("total_count", 0))

    order_endpoint = METHOD
    # The payload fields order_identity reads (the raw table's key columns).
    identity_paths = ("$.order_sn", "$.updated_at")
    order_responses = (f"{RESPONSE_KEY}.order_sn_list",  # pdd.order.number.list.increment.get
                       "order_list_get_response.order_list",  # pdd.order.list.get
                       "order_info_get_response.order_info")  # pdd.order.information.get

    def raise_for_error(self, body: Any) -> None:
        if isinstance(body, dict) and "error_response" in body:
            raise error_from(body["error_response"])

    def order_identity(self, order: dict[str, Any]) -> tuple[str, datetime]:
        return str(order["order_sn"]), parse_local_time(order["updated_at"])

    # -- settlements: a daily bill file ------------------------------------------
    settlement_endpoint = BILL_METHOD
    settlement_max_window = timedelta(days=1)
    settlement_identity_paths = ('$."订单号"', '$."账务时间"')

    def settlement_request(self, start: datetime, end: datetime, cursor: Any) -> HttpRequest:
        if cursor is not None:  # the bill file itself (a pre-signed URL: no signature of ours)
            return HttpRequest("GET", urljoin(self.credentials.gateway_url, cursor))
        day = start.astimezone(PLATFORM_TZ)
        if (day.hour, day.minute, day.second) != (0, 0, 0) or end - start != timedelta(days=1):
            raise PlatformError("pdd", "bill-day", "PDD bills are per Beijing day: the window "
                                f"must be one whole day, not [{start}, {end})")
        return self._request(BILL_METHOD, {"bill_date": day.strftime("%Y-%m-%d")})

    def parse_settlements(self, text: str, cursor: Any) -> SettlementPage:
        if cursor is None:
            url = self._result(text, BILL_RESPONSE_KEY).get("url")
            if not url:
                raise PlatformError("pdd", "malformed", "no bill url", retryable=True,
                                    kind="malformed")
            return SettlementPage(lines=[], next_cursor=url)
        rows = list(csv.DictReader(line for line in text.lstrip("\ufeff").splitlines()
                                   if line and not line.startswith("#")))
        return SettlementPage(lines=rows, total=len(rows))

    def line_identity(self, line: dict[str, Any]) -> tuple[str, datetime]:
        return str(line["订单号"]), parse_local_time(line["账务时间"])
