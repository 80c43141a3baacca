"""Pinduoduo open platform: ``pdd.order.number.list.increment.get``.

Gateway ``POST https://gw-api.pinduoduo.com/api/router``. Request times are
Unix seconds, response times local strings, money yuan as JSON numbers. The
increment API answers at most 30 minutes per call.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from orderhub.platforms.base import (
    HttpRequest,
    Page,
    PlatformClient,
    PlatformError,
    parse_local_time,
)

METHOD = "pdd.order.number.list.increment.get"
RESPONSE_KEY = "order_sn_increment_get_response"


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
    max_window = timedelta(minutes=30)
    first_page = 1

    def order_search_request(self, start: datetime, end: datetime, page: int,
                             page_size: int) -> HttpRequest:
        c = self.credentials
        params = {
            "type": METHOD,
            "client_id": c.app_key,
            "access_token": c.access_token,
            "timestamp": str(int(self.now())),
            "data_type": "JSON",
            "version": "V1",
            "start_updated_at": str(int(start.timestamp())),
            "end_updated_at": str(int(end.timestamp())),
            "order_status": "5",  # all
            "refund_status": "5",  # all
            "page": str(page),
            "page_size": str(page_size),
            "use_has_next": "false",
        }
        params["sign"] = sign(params, c.app_secret)
        return HttpRequest("POST", c.gateway_url, data=params)

    def parse_order_search(self, text: str) -> Page:
        body = self.parse_json(text)
        if "error_response" in body:
            raise error_from(body["error_response"])
        try:
            result = body[RESPONSE_KEY]
        except (KeyError, TypeError):
            raise PlatformError("pdd", "malformed", f"no {RESPONSE_KEY} in response",
                                retryable=True, kind="malformed") from None
        return Page(orders=result.get("order_sn_list") or [],
                    total=int(result.get("total_count", 0)), has_next=result.get("has_next"))

    order_endpoint = METHOD
    # The payload fields order_identity reads (the raw table's key columns).
    identity_paths = ("$.order_sn", "$.updated_at")

    def order_identity(self, order: dict[str, Any]) -> tuple[str, datetime]:
        return str(order["order_sn"]), parse_local_time(order["updated_at"])
