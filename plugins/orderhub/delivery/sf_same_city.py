"""SF same-city (顺丰同城): a delivery service for a shop's own orders.

``POST {gateway}/open/api/external/{api}?sign=…`` with a JSON body that
carries ``dev_id`` and ``push_time`` (Unix seconds), and
``sign = base64(md5_hex(body + "&" + dev_id + "&" + dev_key))``: the base64
of the *hex string*, over the body's exact text. Every answer is
``{"error_code": 0, "error_msg": "success", "result": …}``; any other code is
an error. The connection: login = dev_id, password = dev_key, extra
``gateway_url`` (https://openic.sf-express.com in production).

OrderHub asks about the shop's orders by the shop's own order id
(``order_type = 2``, ``shop_type = 2``: the shop as the developer's system
names it) and lands, per delivery, two answers side by side:

* ``getorderstatus``: the delivery now: ``sf_order_id``, ``order_status``,
  the rider, ``delivery_distance_meter`` and the fee in **fen**
  (``total_pay_money`` before, ``real_pay_money`` after SF's coupons);
* ``listorderfeed``: every status it passed, each with its time
  (``create_time``, ``yyyy-MM-dd HH:mm:ss`` Beijing time).

Status codes: 1 created, 2 cancelled, 10 accepted, 12 at the store,
15 delivering, 17 delivered, 22 rider withdrew, 31 cancelling, 91 exception
(the reference marks them unconfirmed). The error codes below, the fee and
distance fields in ``getorderstatus`` and the feed's time format are
UNCONFIRMED: public SDKs show the URLs and the signature only; the sandbox
and this client agree on them (docs/delivery.md).

SF also calls back on every status change: a JSON body (``sf_order_id``,
``shop_id``, ``shop_order_id``, ``order_status``, ``push_time``, ...) POSTed to
the developer's URL with ``?sign=`` computed the same way. ``orderhub
intake`` verifies one (:func:`verify_callback`) and puts it on the push
stream; ``orderhub stream`` asks SF about the delivery and lands it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from orderhub.delivery import DeliveryClient
from orderhub.platforms.base import Credentials, HttpRequest, PlatformError, parse_local_time
from orderhub.push.messages import PushRejected

API_PATH = "/open/api/external/"
STATUS_API = "getorderstatus"
FEED_API = "listorderfeed"
SHOP_ORDER_ID = 2  # order_type: the id is the shop's; shop_type: the shop id is the developer's
# Error codes (UNCONFIRMED, see above): what each means to the retry loop.
NO_SUCH_ORDER = "2003"
ERRORS = {
    "1001": ("signature", False),
    "1002": ("auth", False),
    "1003": ("clock", True),
    "1004": ("throttled", True),
    "1500": ("server", True),
}


def body_text(body: dict[str, Any]) -> str:
    """The body as sent, and signed: compact JSON, Chinese as itself."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def sign(text: str, dev_id: str, dev_key: str) -> str:
    """base64(md5_hex(body + "&" + dev_id + "&" + dev_key))."""
    digest = hashlib.md5(f"{text}&{dev_id}&{dev_key}".encode()).hexdigest()
    return base64.b64encode(digest.encode()).decode()


def verify_callback(text: str, signature: str, dev_id: str, dev_key: str) -> bool:
    """Whether a callback body (its exact text) carries SF's signature (the
    ``sign`` query parameter of the callback URL)."""
    return hmac.compare_digest(sign(text, dev_id, dev_key), signature or "")


def callback_id(callback: dict[str, Any]) -> str:
    """A status callback's id: the delivery, the status and when SF sent it
    (a rider who withdrew makes status 10 happen twice; SF's redelivery of one
    callback keeps its push_time)."""
    return f"{callback['sf_order_id']}-{callback['order_status']}-{callback['push_time']}"


def error_from(code: str, message: str) -> PlatformError:
    kind, retryable = ERRORS.get(code, ("api", False))
    return PlatformError("sf_same_city", code, message, retryable=retryable, kind=kind,
                         retry_after=0 if kind == "clock" else 1.0 if kind == "throttled" else None)


class SfSameCityClient(DeliveryClient):
    service = "sf_same_city"
    platform = "sf_same_city"  # in errors, ops.api_calls and the breaker's row
    title = "SF same-city"
    title_zh = "顺丰同城"

    def _request(self, api: str, business: dict[str, Any]) -> HttpRequest:
        c = self.credentials
        text = body_text({**business, "dev_id": int(c.app_key) if c.app_key.isdigit()
                          else c.app_key, "push_time": int(self.now())})
        return HttpRequest("POST", c.gateway_url.rstrip("/") + API_PATH + api,
                           params={"sign": sign(text, c.app_key, c.app_secret)},
                           data=text.encode(), headers={"Content-Type": "application/json"})

    def _about(self, order_id: str) -> dict[str, Any]:
        return {"order_id": order_id, "order_type": SHOP_ORDER_ID, "shop_id": self.shop_id,
                "shop_type": SHOP_ORDER_ID}

    def _result(self, text: str) -> dict[str, Any] | None:
        """The answer's result; None when SF has no such order; its error raises."""
        body = self.parse_json(text)
        if not isinstance(body, dict) or "error_code" not in body:
            raise PlatformError("sf_same_city", "malformed", "no error_code in response",
                                retryable=True, kind="malformed")
        code = str(body["error_code"])
        if code == "0":
            result = body.get("result")
            if not isinstance(result, dict):
                raise PlatformError("sf_same_city", "malformed", "no result in response",
                                    retryable=True, kind="malformed")
            return result
        if code == NO_SUCH_ORDER:
            return None
        raise error_from(code, str(body.get("error_msg", "")))

    apis = (STATUS_API, FEED_API)
    callback_ok = {"error_code": 0, "error_msg": "success"}
    callback_refusal = {"error_code": 1001, "error_msg": "签名错误"}

    @classmethod
    def verify_callback_request(cls, query: dict[str, str], body: bytes,
                                apps: list[Credentials]) -> Credentials:
        text = body.decode("utf-8", errors="replace")
        for app in apps:
            if verify_callback(text, query.get("sign", ""), app.app_key, app.app_secret):
                return app
        raise PushRejected("sf_same_city callback: the sign verifies with no configured"
                           " dev_id" if query.get("sign") else
                           "sf_same_city callback: no sign")

    @classmethod
    def read_callback(cls, text: str) -> tuple[str, str, str]:
        callback = json.loads(text)
        if not isinstance(callback, dict):
            raise TypeError("not a JSON object")
        return str(callback["shop_id"]), str(callback["shop_order_id"]), callback_id(callback)

    def ask(self, api: str, order_id: str) -> dict[str, Any] | None:
        return self.call(api, self._request(api, self._about(order_id)), self._result)

    def identity(self, entity: str, payload: dict[str, Any]) -> tuple[str, datetime]:
        order_id = str(payload[STATUS_API]["shop_order_id"])
        times = [parse_local_time(step["create_time"]) for step in payload[FEED_API]["feed"]]
        return order_id, max(times)
