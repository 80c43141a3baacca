"""JD Open Service (JOS), POP orders: ``jingdong.pop.order.search``.

Gateway ``https://api.jd.com/routerjson``; business parameters travel as one
JSON string, ``360buy_param_json``. Money: yuan strings. Times: local strings;
``0001-01-01 00:00:00`` / ``1970-01-01 ...`` mean "no value".
"""

from __future__ import annotations

import hashlib
import json
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

METHOD = "jingdong.pop.order.search"
RESPONSE_KEY = "jingdong_pop_order_search_responce"  # sic: the official spelling
# Settlement: JOS's settlement APIs are UNCONFIRMED. This one is modelled on the
# others (docs/platforms.md): settle lines per order with order id, buyer
# payment, platform subsidy, commission, service and other fees, refund, net
# settle amount (yuan strings) and settle time, paged by page number.
SETTLE_METHOD = "jingdong.finance.settle.detail.query"
SETTLE_RESPONSE_KEY = "jingdong_finance_settle_detail_query_responce"
SETTLE_PAGE_SIZE = 100
# Stock (issue 18): set a SKU's stock (full only); possibly replaced by
# jingdong.ware.stock.sku.set (UNCONFIRMED).
STOCK_METHOD = "jingdong.stock.write.updateSkuStock"
STOCK_RESPONSE_KEY = "jingdong_stock_write_updateSkuStock_responce"
# The shop's SKUs with their stock (the stock field in this answer is UNCONFIRMED).
LISTING_METHOD = "jingdong.sku.read.searchSkuList"
LISTING_RESPONSE_KEY = "jingdong_sku_read_searchSkuList_responce"
ORDER_STATES = ",".join([
    "WAIT_SELLER_STOCK_OUT", "WAIT_GOODS_RECEIVE_CONFIRM", "WAIT_SELLER_DELIVERY", "PAUSE",
    "FINISHED_L", "TRADE_CANCELED", "LOCKED", "WAIT_SEND_CODE",
])
OPTIONAL_FIELDS = ",".join([
    "orderId", "venderId", "orderType", "payType", "orderTotalPrice", "orderSellerPrice",
    "orderPayment", "freightPrice", "sellerDiscount", "orderState", "orderStateRemark",
    "orderStartTime", "paymentConfirmTime", "orderEndTime", "modified", "consigneeInfo",
    "itemInfoList", "couponDetailList", "pin", "waybill",
])


def sign(params: dict[str, str], secret: str) -> str:
    """JOS signature: secret + sorted ``key+value`` (system parameters and
    ``360buy_param_json``) + secret, MD5, uppercase hex."""
    text = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")
    return hashlib.md5(f"{secret}{text}{secret}".encode()).hexdigest().upper()


def error_from(body: dict[str, Any]) -> PlatformError:
    code = str(body.get("code"))
    message = body.get("en_desc") or body.get("zh_desc") or ""
    # JOS throttling codes are UNCONFIRMED; the sandbox answers "throttled" with
    # code 70 and "retry after N seconds" (docs/platforms.md). Kept here only.
    if code == "70":
        return PlatformError("jd", code, message, retryable=True, kind="throttled", retry_after=1.0)
    if code == "20":  # invalid timestamp (UNCONFIRMED)
        return PlatformError("jd", code, message, retryable=True, kind="clock", retry_after=0)
    if code in ("66", "67"):  # platform-side system errors (UNCONFIRMED)
        return PlatformError("jd", code, message, retryable=True, kind="server")
    kind = {"19": "signature", "18": "auth", "21": "auth"}.get(code, "api")
    return PlatformError("jd", code, message, kind=kind)


class JdClient(PlatformClient):
    platform = "jd"
    title = "JD"
    title_zh = "京东"
    money_unit = "yuan string"
    time_format = "Beijing-time string"
    lists_unpaid_orders = False  # unpaid orders: jingdong.pop.order.notPayOrderInfo
    colour = "#e1251b"
    position = 2
    max_window = timedelta(days=1)  # JOS allows a month; a day keeps pages few
    first_page = 1

    def order_search_request(self, start: datetime, end: datetime, page: int,
                             page_size: int) -> HttpRequest:
        return self._request(METHOD, {
            "start_date": local_time(start),
            "end_date": local_time(end),
            "order_state": ORDER_STATES,
            "optional_fields": OPTIONAL_FIELDS,
            "page": str(page),
            "page_size": str(page_size),
            "sortType": "1",
            # no dateType: the default filters by modification time (incremental)
        })

    def _request(self, method: str, business: dict[str, str]) -> HttpRequest:
        """A signed JOS call: the business parameters as one JSON string."""
        c = self.credentials
        params = {
            "method": method,
            "app_key": c.app_key,
            "access_token": c.access_token,
            "timestamp": local_time(datetime.fromtimestamp(self.now()).astimezone()),
            "v": "2.0",
            "format": "json",
            "sign_method": "md5",
            "360buy_param_json": json.dumps(business, separators=(",", ":"), sort_keys=True),
        }
        params["sign"] = sign(params, c.app_secret)
        return HttpRequest("POST", c.gateway_url, data=params)

    def _result(self, text: str, key: str, inner: str) -> dict[str, Any]:
        body = self.parse_json(text)
        if "error_response" in body:
            raise error_from(body["error_response"])
        try:
            return body[key][inner]
        except (KeyError, TypeError):
            raise PlatformError("jd", "malformed", f"no {key}.{inner} in response",
                                retryable=True, kind="malformed") from None

    def parse_order_search(self, text: str) -> Page:
        result = self._result(text, RESPONSE_KEY, "searchorderinfo_result")
        api = result.get("apiResult") or {}
        if api.get("success") is False:
            raise PlatformError("jd", str(api.get("englishErrCode", "api")),
                                str(api.get("chineseErrCode", "")))
        return Page(orders=result.get("orderInfoList") or [],
                    total=int(result.get("orderTotal", 0)))

    # -- stock: jingdong.stock.write.updateSkuStock (sets, never a delta) --------
    stock_endpoint = STOCK_METHOD
    stock_reduced_on = "created"

    def stock_update_request(self, listing: StockListing, quantity: int, *, increment: bool,
                             request_id: str) -> HttpRequest:
        return self._request(STOCK_METHOD, {"skuId": listing.sku_id, "stockNum": str(quantity)})

    def parse_stock_update(self, text: str) -> int | None:
        body = self.parse_json(text)
        if "error_response" in body:
            raise error_from(body["error_response"])
        result = body.get(STOCK_RESPONSE_KEY) if isinstance(body, dict) else None
        if not isinstance(result, dict) or "success" not in result:
            raise PlatformError("jd", "malformed", f"no {STOCK_RESPONSE_KEY} in response",
                                retryable=True, kind="malformed")
        if not result["success"]:
            raise PlatformError("jd", str(result.get("errorCode") or "api"), str(result.get("msg", "")))
        return int(result["stockNum"]) if "stockNum" in result else None

    listing_endpoint = LISTING_METHOD

    def listing_request(self, page: int, page_size: int) -> HttpRequest:
        return self._request(LISTING_METHOD, {"page": str(page), "pageSize": str(page_size)})

    def parse_listings(self, text: str) -> tuple[list[ListedSku], int]:
        page = self._result(text, LISTING_RESPONSE_KEY, "page")
        skus = [ListedSku(StockListing(str(sku["wareId"]), str(sku["skuId"]),
                                       sku.get("outerId") or ""),
                          int(sku["stockNum"]), sku.get("skuName", ""))
                for sku in page.get("data") or []]
        return skus, int(page.get("totalItem", 0))

    order_endpoint = METHOD
    # The payload fields order_identity reads (the raw table's key columns).
    identity_paths = ("$.orderId", "$.modified")
    # jingdong.pop.order.search / .enSearch; the detail API's shape is UNCONFIRMED
    order_responses = (f"{RESPONSE_KEY}.searchorderinfo_result.orderInfoList",
                       "jingdong_pop_order_enSearch_responce.searchorderinfo_result.orderInfoList",
                       "jingdong_pop_order_get_responce.orderDetailInfo.orderInfo")

    def raise_for_error(self, body: Any) -> None:
        if isinstance(body, dict) and "error_response" in body:
            raise error_from(body["error_response"])

    def order_identity(self, order: dict[str, Any]) -> tuple[str, datetime]:
        return str(order["orderId"]), parse_local_time(order["modified"])

    # -- settlements (modelled, see SETTLE_METHOD) -------------------------------
    settlement_endpoint = SETTLE_METHOD
    settlement_max_window = timedelta(days=1)
    settlement_identity_paths = ("$.orderId", "$.settleTime")

    def settlement_request(self, start: datetime, end: datetime, cursor: Any) -> HttpRequest:
        return self._request(SETTLE_METHOD, {
            "settle_time_start": local_time(start),
            "settle_time_end": local_time(end),
            "page": str(cursor or 1),
            "page_size": str(SETTLE_PAGE_SIZE),
        })

    def parse_settlements(self, text: str, cursor: Any) -> SettlementPage:
        result = self._result(text, SETTLE_RESPONSE_KEY, "result")
        total, page = int(result.get("totalCount", 0)), cursor or 1
        return SettlementPage(lines=result.get("settleDetailList") or [], total=total,
                              next_cursor=page + 1 if page * SETTLE_PAGE_SIZE < total else None)

    def line_identity(self, line: dict[str, Any]) -> tuple[str, datetime]:
        return str(line["orderId"]), parse_local_time(line["settleTime"])
