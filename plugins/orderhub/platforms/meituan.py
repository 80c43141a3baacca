"""Meituan waimai (美团外卖) open platform: a store (``app_poi_code``) is a shop.

``GET {gateway}/{path}?app_id=…&timestamp=…&…&sig=…`` with
``sig = md5_hex(url + "?" + sorted "k=v" joined by "&" + app_secret)`` (the
URL without its query; values as sent, before URL encoding). Every answer is
``{"data": …}``; an error adds ``"error": {"code", "msg"}`` with ``data`` "ng".

The dialect, where mistakes hide (docs/platforms.md):

* money in **yuan as JSON floats** (``total``, ``original_price``,
  ``shipping_fee``; read as Decimal, never float, and rounded to the cent in
  staging: ``59.699999999999996`` is 59.70), the bag fee ``package_bag_money``
  in **fen**;
* ``detail`` (the lines), ``extras`` (the discounts, with who funds them:
  ``mt_charge`` Meituan, ``poi_charge`` the store) and
  ``poi_receive_detail`` are **JSON strings inside the JSON** (the mapping
  seed's ``decode`` rows parse them in staging);
* times are Unix seconds (``ctime`` created, ``utime`` modified);
* status 1 submitted, 2 pushed to the store (paid), 4 store confirmed,
  6 delivering, 8 completed, 9 cancelled.

Orders mostly arrive by push: the paid-order push is a form POST carrying the
whole order, every value a string. :func:`order_from_form` gives such a body
the types the order APIs answer with, so an order lands as the same raw
payload whichever way it came (``orderhub replay`` reads both).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from orderhub.platforms.base import (
    Credentials,
    HttpRequest,
    Page,
    PlatformClient,
    PlatformError,
    SettlementPage,
    Verified,
)
from orderhub.push.messages import Malformed, PushMessage, PushRejected

# The order detail API (documented), and the list the poll uses as the net
# under push: orders of one store modified in a window, paged. No public
# list-by-modified-time API was found: its name and parameters are
# UNCONFIRMED (the real platform offers order ids by day sequence); the
# sandbox and this client agree on them.
DETAIL_PATH = "order/getOrderDetail"
LIST_PATH = "order/getOrderListByUtime"
# Bills: a store's bill rows booked in a window (Unix seconds), offset-paged,
# at most 200 a page (path and parameters from the reference; the row's
# fields, in fen, are UNCONFIRMED: modelled on poi_receive_detail).
BILL_PATH = "wm/bill/list"
BILL_PAGE_SIZE = 200
# The order fields a form push carries as text, and their types in the APIs' JSON.
INTEGER_FIELDS = ("order_id", "wm_order_id_view", "status", "ctime", "utime", "delivery_time",
                  "pay_type", "day_seq", "package_bag_money", "order_confirm_time",
                  "order_completed_time", "order_cancel_time", "pay_time", "refund_status",
                  "city_id", "has_invoiced", "is_third_shipping", "pick_type")
DECIMAL_FIELDS = ("total", "original_price", "shipping_fee", "latitude", "longitude")
# Push: a form POST to the app's callback URL, signed like a call (the URL is
# the callback's, as Meituan called it); Meituan waits for {"data": "ok"}.
PUSH_OK = {"data": "ok"}
PUSH_SIGN_ERROR = {"data": "ng", "error": {"code": 703, "msg": "签名验证错误"}}
SYSTEM_FIELDS = ("sig", "app_id", "timestamp")


def callback_url(headers: dict[str, str]) -> str:
    """The URL Meituan called, from the request's headers (lower-case; the
    intake adds the path as ``:path``): behind a proxy, the forwarded scheme
    and host, else http and Host."""
    scheme = headers.get("x-forwarded-proto", "http").split(",")[0].strip()
    host = headers.get("x-forwarded-host") or headers.get("host", "")
    return f"{scheme}://{host.split(',')[0].strip()}{headers.get(':path', '')}"


def sign(url: str, params: dict[str, str], secret: str) -> str:
    """md5_hex(url + "?" + sorted k=v joined by & + secret); ``sig`` itself left out."""
    query = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sig")
    return hashlib.md5(f"{url}?{query}{secret}".encode()).hexdigest()


# Error codes: 701 missing parameter, 702 unknown app_id, 703 signature, 600
# internal (from a public SDK); the token, timestamp and throttling codes are
# UNCONFIRMED (docs/platforms.md).
RETRYABLE = {"721": "throttled", "600": "server"}


def error_from(body: dict[str, Any]) -> PlatformError:
    error = body.get("error") or {}
    code, message = str(error.get("code")), str(error.get("msg", ""))
    if code == "711":  # the request's timestamp is too far from Meituan's clock
        return PlatformError("meituan", code, message, retryable=True, kind="clock",
                             retry_after=0)
    if code in RETRYABLE:
        return PlatformError("meituan", code, message, retryable=True, kind=RETRYABLE[code],
                             retry_after=1.0 if RETRYABLE[code] == "throttled" else None)
    kind = {"703": "signature", "702": "auth", "705": "auth"}.get(code, "api")
    return PlatformError("meituan", code, message, kind=kind)


def _typed(name: str, value: str) -> Any:
    if value == "":
        return value
    if name in INTEGER_FIELDS:
        return int(value)
    if name in DECIMAL_FIELDS:
        return Decimal(value)
    return value


def order_from_form(text: str) -> dict[str, Any]:
    """A paid-order push body (``application/x-www-form-urlencoded``) as the
    order APIs show the order: numbers as numbers, the JSON strings kept as
    strings. ValueError when it is not such a body."""
    fields = dict(parse_qsl(text.strip(), keep_blank_values=True, strict_parsing=True))
    if "order_id" not in fields or "app_poi_code" not in fields:
        raise ValueError("not a Meituan order push (no order_id and app_poi_code)")
    for name in SYSTEM_FIELDS:  # the push's signature and its app, not the order's
        fields.pop(name, None)
    try:
        return {name: _typed(name, value) for name, value in fields.items()}
    except (ValueError, InvalidOperation) as exc:
        raise ValueError(f"a Meituan order push with an unreadable number: {exc}") from None


class MeituanClient(PlatformClient):
    platform = "meituan"
    title = "Meituan waimai"
    title_zh = "美团外卖"
    money_unit = "yuan floats (bag fee in fen)"
    time_format = "Unix seconds"
    lists_unpaid_orders = False  # stores see an order once it is paid (status 2)
    colour = "#ffc300"
    position = 5
    max_window = timedelta(days=1)  # UNCONFIRMED; the sandbox enforces the same
    max_page_size = 100
    order_endpoint = LIST_PATH
    detail_endpoint = DETAIL_PATH
    identity_paths = ("$.order_id", "$.utime")
    # getOrderDetail answers {"data": order}, the list {"data": [orders]}.
    order_responses = ("data",)

    def _request(self, path: str, business: dict[str, Any]) -> HttpRequest:
        c = self.credentials
        url = c.gateway_url.rstrip("/") + "/" + path
        params = {"app_id": c.app_key, "timestamp": str(int(self.now())),
                  **{k: str(v) for k, v in business.items()}}
        if c.access_token:
            params["access_token"] = c.access_token
        params["sig"] = sign(url, params, c.app_secret)
        return HttpRequest("GET", url, params=params)

    def order_search_request(self, start: datetime, end: datetime, page: int,
                             page_size: int) -> HttpRequest:
        return self._request(LIST_PATH, {"start_time": int(start.timestamp()),
                                         "end_time": int(end.timestamp()),
                                         "page": page, "page_size": page_size})

    def order_detail_request(self, order_id: str) -> HttpRequest:
        return self._request(DETAIL_PATH, {"order_id": order_id})

    def raise_for_error(self, body: Any) -> None:
        if isinstance(body, dict) and body.get("error"):
            raise error_from(body)

    def _data(self, text: str) -> Any:
        body = self.parse_json(text)
        if not isinstance(body, dict) or "data" not in body:
            raise PlatformError("meituan", "malformed", "no data in response", retryable=True,
                                kind="malformed")
        self.raise_for_error(body)
        return body["data"]

    def parse_order_search(self, text: str) -> Page:
        data = self._data(text)
        total = (self.parse_json(text).get("extra_info") or {}).get("total")
        return Page(orders=data if isinstance(data, list) else [],
                    total=None if total is None else int(total))

    def parse_order_response(self, text: str) -> list[dict[str, Any]]:
        """An order API's answer, or a paid-order push body (a form)."""
        if not text.lstrip().startswith("{"):
            try:
                return [order_from_form(text)]
            except ValueError as exc:
                raise PlatformError("meituan", "malformed",
                                    f"neither an order answer ({{\"data\": …}}) nor an order"
                                    f" push: {exc}", kind="malformed") from None
        return super().parse_order_response(text)

    def order_identity(self, order: dict[str, Any]) -> tuple[str, datetime]:
        """(order_id, utime). (A JSON-string field that does not parse is
        refused at landing: the mapping seed's decode rows, extract.to_rows.)"""
        return str(order["order_id"]), datetime.fromtimestamp(int(order["utime"]), UTC)

    # -- settlements: the bill list, offset paging ------------------------------------
    settlement_endpoint = BILL_PATH
    settlement_identity_paths = ("$.order_id", "$.bill_time")

    def settlement_request(self, start: datetime, end: datetime, cursor: Any) -> HttpRequest:
        # the store is the access token's (a store-level authorization), as in every call here
        return self._request(BILL_PATH, {"start_date": int(start.timestamp()),
                                         "end_date": int(end.timestamp()),
                                         "offset": cursor or 0, "limit": BILL_PAGE_SIZE})

    def parse_settlements(self, text: str, cursor: Any) -> SettlementPage:
        data = self._data(text)
        total = int((self.parse_json(text).get("extra_info") or {}).get("total", 0))
        return SettlementPage.by_offset(data if isinstance(data, list) else [], cursor, total)

    def line_identity(self, line: dict[str, Any]) -> tuple[str, datetime]:
        return str(line["order_id"]), datetime.fromtimestamp(int(line["bill_time"]), UTC)

    # -- push: the paid-order (and status) push, a form POST with the whole order --
    push_transport = "webhook"
    push_refusal = PUSH_SIGN_ERROR

    @classmethod
    def verify_push(cls, headers: dict[str, str], body: bytes,
                    apps: list[Credentials]) -> Verified:
        """The app whose id is the form's ``app_id`` and whose secret signs
        the form with the callback URL; PushRejected otherwise."""
        fields = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        given, url = fields.get("sig", ""), callback_url(headers)
        for app in apps:
            if app.app_key == fields.get("app_id") and hmac.compare_digest(
                    sign(url, fields, app.app_secret), given):
                return Verified(app.app_key, PUSH_OK)
        raise PushRejected("meituan: sig missing or wrong" if given else "meituan: no sig")

    @classmethod
    def push_messages(cls, body: bytes) -> tuple[list[PushMessage], list[Malformed]]:
        """One verified push names one order of one store. Meituan gives a
        push no id: the order, its modified time and its status are one."""
        text = body.decode("utf-8", errors="replace")
        try:
            order = order_from_form(text)
            order_id, store = str(order["order_id"]), str(order["app_poi_code"])
            utime, status = int(order["utime"]), int(order["status"])
        except (KeyError, TypeError, ValueError) as exc:
            return [], [Malformed(text, f"meituan push: no usable order_id, app_poi_code,"
                                        f" utime or status ({type(exc).__name__}: {exc})")]
        return [PushMessage("meituan", store, order_id, f"{order_id}-{utime}-{status}",
                            str(status))], []
