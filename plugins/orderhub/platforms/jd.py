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
    Page,
    PlatformClient,
    PlatformError,
    local_time,
    parse_local_time,
)

METHOD = "jingdong.pop.order.search"
RESPONSE_KEY = "jingdong_pop_order_search_responce"  # sic: the official spelling
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
    max_window = timedelta(days=1)  # JOS allows a month; a day keeps pages few
    first_page = 1

    def order_search_request(self, start: datetime, end: datetime, page: int,
                             page_size: int) -> HttpRequest:
        c = self.credentials
        business = {
            "start_date": local_time(start),
            "end_date": local_time(end),
            "order_state": ORDER_STATES,
            "optional_fields": OPTIONAL_FIELDS,
            "page": str(page),
            "page_size": str(page_size),
            "sortType": "1",
            # no dateType: the default filters by modification time (incremental)
        }
        params = {
            "method": METHOD,
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

    def parse_order_search(self, text: str) -> Page:
        body = self.parse_json(text)
        if "error_response" in body:
            raise error_from(body["error_response"])
        try:
            result = body[RESPONSE_KEY]["searchorderinfo_result"]
        except (KeyError, TypeError):
            raise PlatformError("jd", "malformed", f"no {RESPONSE_KEY} in response",
                                retryable=True, kind="malformed") from None
        api = result.get("apiResult") or {}
        if api.get("success") is False:
            raise PlatformError("jd", str(api.get("englishErrCode", "api")),
                                str(api.get("chineseErrCode", "")))
        return Page(orders=result.get("orderInfoList") or [],
                    total=int(result.get("orderTotal", 0)))

    order_endpoint = METHOD
    # The payload fields order_identity reads (the raw table's key columns).
    identity_paths = ("$.orderId", "$.modified")

    def order_identity(self, order: dict[str, Any]) -> tuple[str, datetime]:
        return str(order["orderId"]), parse_local_time(order["modified"])
