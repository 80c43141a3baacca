"""Pinduoduo open platform: ``pdd.order.number.list.increment.get``.

Gateway ``POST https://gw-api.pinduoduo.com/api/router``. Request times are
Unix seconds, response times local strings, money yuan as JSON numbers. The
increment API answers at most 30 minutes per call.
"""

from __future__ import annotations

import csv
import hashlib
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin

from orderhub.config import PLATFORM_TZ
from orderhub.platforms.base import (
    HttpRequest,
    Page,
    PlatformClient,
    PlatformError,
    SettlementPage,
    parse_local_time,
)

METHOD = "pdd.order.number.list.increment.get"
RESPONSE_KEY = "order_sn_increment_get_response"
# Settlement: a daily bill. The API answers a download URL for one Beijing
# day's bill; the file is a CSV (UTF-8 with BOM, "#" comment lines) with one
# row per money movement. Its columns are UNCONFIRMED; the sandbox and this
# client agree on 订单号, 流水号, 账务时间, 账务类型, 收入金额(元), 支出金额(元), 备注.
BILL_METHOD = "pdd.finance.balance.daily.bill.url.get"
BILL_RESPONSE_KEY = "balance_daily_bill_url_get_response"


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
    colour = "#f4b400"
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
