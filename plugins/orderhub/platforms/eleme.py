"""Ele.me (饿了么) open platform: a shop (``shopId``) is a shop.

Every call is ``POST {gateway}`` with a JSON-RPC-style body::

    {"nop": "1.0.0", "id": <request id>, "action": "eleme.order.getOrder",
     "token": <the shop's token>, "metas": {"app_key", "timestamp"},
     "params": {...}, "signature": ...}

``signature = upper(md5(action + token + concat(sorted "k=" + json(v) over
metas ∪ params) + secret))``; the answer is ``{"id", "result", "error"}`` with
``error`` ``{"code", "message"}`` (``INVALID_SIGNATURE``, ``UNAUTHORIZED``,
``VALIDATION_FAILED``, ``EXCEED_LIMIT``, ``SERVER_ERROR``).

The dialect: text statuses (``pending``, ``unprocessed``, ``refunding``,
``valid``, ``invalid``, ``settled``) with a separate ``refundStatus``; money in
yuan as JSON numbers, with the discounts and their shares **negative**
(``activityTotal``, ``shopPart``, ``elemePart``); lines inside groups
(``groups[*].items[*]``); times as ``yyyy-MM-ddTHH:mm:ss`` in Beijing time
without an offset (the unit and format are UNCONFIRMED, docs/platforms.md).

Push: a POST of one JSON message ``{requestId, type, appId, message (a JSON
string), shopId, timestamp, userId, signature}``, verified with
``upper(md5(concat(sorted "k=v") + secret))``; answered ``{"message": "ok"}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from orderhub.config import PLATFORM_TZ
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

DETAIL_ACTION = "eleme.order.getOrder"
# The poll's net: a shop's orders modified in a window, paged. Ele.me's
# documented list (eleme.order.getAllOrders) lists one day's orders by
# creation; a list by modification time is UNCONFIRMED (the sandbox and this
# client agree on it).
LIST_ACTION = "eleme.order.getOrdersByUpdateTime"
# Settlements: a shop's order-level finance records booked in a window,
# offset-paged (≤ 50). The action is from the reference; its parameters and
# the record's fields (yuan, outgo negative) are UNCONFIRMED.
FINANCE_ACTION = "eleme.finance.queryBranchOrders"
FINANCE_PAGE_SIZE = 50
PUSH_OK = {"message": "ok"}
PUSH_SIGN_ERROR = {"message": "invalid signature"}  # UNCONFIRMED body
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


def sign(action: str, token: str, metas: dict[str, Any], params: dict[str, Any],
         secret: str) -> str:
    """upper(md5(action + token + sorted "k=" + json(v) over metas and params + secret))."""
    values = {**metas, **params}
    text = "".join(f"{k}={json.dumps(values[k], separators=(',', ':'), ensure_ascii=False)}"
                   for k in sorted(values))
    return hashlib.md5(f"{action}{token}{text}{secret}".encode()).hexdigest().upper()


def push_sign(message: dict[str, Any], secret: str) -> str:
    """upper(md5(concat(sorted "k=v" over the message but its signature) + secret))."""
    text = "".join(f"{k}={message[k]}" for k in sorted(message) if k != "signature")
    return hashlib.md5(f"{text}{secret}".encode()).hexdigest().upper()


def local(value: datetime) -> str:
    return value.astimezone(PLATFORM_TZ).strftime(TIME_FORMAT)


def parse_local(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=PLATFORM_TZ)


RETRYABLE = {"EXCEED_LIMIT": "throttled", "SERVER_ERROR": "server"}


def error_from(error: dict[str, Any]) -> PlatformError:
    code, message = str(error.get("code")), str(error.get("message", ""))
    if code == "INVALID_TIMESTAMP":  # UNCONFIRMED code
        return PlatformError("eleme", code, message, retryable=True, kind="clock", retry_after=0)
    if code in RETRYABLE:
        return PlatformError("eleme", code, message, retryable=True, kind=RETRYABLE[code],
                             retry_after=1.0 if RETRYABLE[code] == "throttled" else None)
    kind = {"INVALID_SIGNATURE": "signature", "UNAUTHORIZED": "auth",
            "ACCESS_DENIED": "auth"}.get(code, "api")
    return PlatformError("eleme", code, message, kind=kind)


class ElemeClient(PlatformClient):
    platform = "eleme"
    title = "Ele.me"
    title_zh = "饿了么"
    money_unit = "yuan numbers (discounts negative)"
    time_format = "yyyy-MM-ddTHH:mm:ss, Beijing"
    lists_unpaid_orders = False
    colour = "#0097ff"
    position = 6
    max_window = timedelta(days=1)  # UNCONFIRMED; the sandbox enforces the same
    max_page_size = 50
    order_endpoint = LIST_ACTION
    detail_endpoint = DETAIL_ACTION
    identity_paths = ("$.id", "$.updatedAt")
    order_responses = ("result.list",  # the list
                       "result")  # eleme.order.getOrder: the order itself

    def _request(self, action: str, params: dict[str, Any]) -> HttpRequest:
        c = self.credentials
        metas = {"app_key": c.app_key, "timestamp": int(self.now())}
        body = {"nop": "1.0.0", "id": uuid.uuid4().hex, "action": action,
                "token": c.access_token, "metas": metas, "params": params,
                "signature": sign(action, c.access_token, metas, params, c.app_secret)}
        return HttpRequest("POST", c.gateway_url,
                           data=json.dumps(body, ensure_ascii=False).encode(),
                           headers={"Content-Type": "application/json; charset=utf-8"})

    def order_search_request(self, start: datetime, end: datetime, page: int,
                             page_size: int) -> HttpRequest:
        return self._request(LIST_ACTION, {"startTime": local(start), "endTime": local(end),
                                           "pageNo": page, "pageSize": page_size})

    def order_detail_request(self, order_id: str) -> HttpRequest:
        return self._request(DETAIL_ACTION, {"orderId": order_id})

    def raise_for_error(self, body: Any) -> None:
        if isinstance(body, dict) and body.get("error"):
            raise error_from(body["error"])

    def _result(self, text: str) -> dict[str, Any]:
        """The answer's result (a dict), or its error raised."""
        body = self.parse_json(text)
        if not isinstance(body, dict) or "result" not in body and "error" not in body:
            raise PlatformError("eleme", "malformed", "no result in response", retryable=True,
                                kind="malformed")
        self.raise_for_error(body)
        return body["result"] or {}

    def parse_order_search(self, text: str) -> Page:
        result = self._result(text)
        return Page(orders=result.get("list") or [], total=int(result.get("total", 0)))

    def parse_order_response(self, text: str) -> list[dict[str, Any]]:
        body = self.parse_json(text)
        self.raise_for_error(body)
        result = body.get("result") if isinstance(body, dict) else None
        if isinstance(result, dict) and "list" not in result and "id" not in result:
            raise PlatformError("eleme", "malformed", "not an order answer of eleme's APIs"
                                " (known: result.list, result)", kind="malformed")
        return super().parse_order_response(text)

    def order_identity(self, order: dict[str, Any]) -> tuple[str, datetime]:
        return str(order["id"]), parse_local(order["updatedAt"])

    # -- settlements: finance records, offset paging -----------------------------------
    settlement_endpoint = FINANCE_ACTION
    settlement_identity_paths = ("$.orderId", "$.settleTime")

    def settlement_request(self, start: datetime, end: datetime, cursor: Any) -> HttpRequest:
        return self._request(FINANCE_ACTION, {"query": {
            "beginTime": local(start), "endTime": local(end), "offset": cursor or 0,
            "limit": FINANCE_PAGE_SIZE}})

    def parse_settlements(self, text: str, cursor: Any) -> SettlementPage:
        result = self._result(text)
        return SettlementPage.by_offset(result.get("list") or [], cursor,
                                        int(result.get("total", 0)))

    def line_identity(self, line: dict[str, Any]) -> tuple[str, datetime]:
        return str(line["orderId"]), parse_local(line["settleTime"])

    # -- push: one signed JSON message per POST --------------------------------------
    push_transport = "webhook"
    push_refusal = PUSH_SIGN_ERROR

    @classmethod
    def verify_push(cls, headers: dict[str, str], body: bytes,
                    apps: list[Credentials]) -> Verified:
        try:
            message = json.loads(body)
            app_id, given = str(message["appId"]), str(message["signature"])
        except (ValueError, KeyError, TypeError):
            raise PushRejected("eleme: not a signed message") from None
        for app in apps:
            if app.app_key == app_id and hmac.compare_digest(push_sign(message, app.app_secret),
                                                             given):
                return Verified(app_id, PUSH_OK)
        raise PushRejected("eleme: signature missing or wrong")

    @classmethod
    def push_messages(cls, body: bytes) -> tuple[list[PushMessage], list[Malformed]]:
        """An order message names the order (``message.orderId``) of a shop."""
        text = body.decode("utf-8", errors="replace")
        try:
            message = json.loads(text)
            content = json.loads(message["message"])
            return [PushMessage("eleme", str(message["shopId"]), str(content["orderId"]),
                                str(message["requestId"]), str(message["type"]))], []
        except (KeyError, TypeError, ValueError) as exc:
            return [], [Malformed(text, f"eleme push: message lacks a usable requestId, type,"
                                        f" shopId or message.orderId"
                                        f" ({type(exc).__name__}: {exc})")]
