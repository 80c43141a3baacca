"""What every platform client shares: credentials, requests, errors, pages.

A platform module (``tmall.py``, ``jd.py``, ...) only knows its own dialect:
how to sign, how to ask for one page of orders modified in a window, how to
read the envelope and where an order keeps its id and modified time. Windows,
retries, paging order, the ledger and landing are written once, in
:mod:`orderhub.extract`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from orderhub.config import PLATFORM_TZ


@dataclass(frozen=True)
class Credentials:
    """One shop's access: from one Airflow connection (login = app key,
    password = app secret, extra = {gateway_url, access_token, sign_method})."""

    gateway_url: str
    app_key: str
    app_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    sign_method: str | None = None
    push_url: str | None = None  # a long-connection message service (default: the platform's)

    @classmethod
    def from_connection(cls, conn) -> Credentials:
        extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else json.loads(conn.extra or "{}")
        return cls(
            gateway_url=extra.get("gateway_url") or conn.host,
            app_key=conn.login,
            app_secret=conn.password,
            access_token=extra.get("access_token", ""),
            sign_method=extra.get("sign_method"),
            push_url=extra.get("push_url"),
        )

    @classmethod
    def from_airflow(cls, conn_id: str) -> Credentials:
        """Looks the connection up through Airflow (metadata DB, secrets
        backend or ``AIRFLOW_CONN_<ID>``), inside a task or from the CLI."""
        from airflow.sdk import BaseHook

        return cls.from_connection(BaseHook.get_connection(conn_id))


class GatewaySession(requests.Session):
    """A requests session that reads the environment's proxy and CA settings
    once per gateway host instead of on every request (requests walks all of
    ``os.environ`` per request: a seventh of a detail call's CPU at push rates).
    Settings given per request still win."""

    def __init__(self):
        super().__init__()
        self._environment: dict[tuple, dict] = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        if proxies or not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        key = (*urlsplit(url)[:2], stream, verify, cert)
        if key not in self._environment:
            self._environment[key] = super().merge_environment_settings(url, {}, stream, verify,
                                                                        cert)
        settings = self._environment[key]
        return {**settings, "proxies": dict(settings["proxies"])}


class PlatformError(Exception):
    """An error answer from a platform gateway, parsed from its envelope."""

    def __init__(self, platform: str, code: str, message: str, *, retryable: bool = False,
                 retry_after: float | None = None, kind: str = "api"):
        super().__init__(f"{platform} error {code}: {message}")
        self.platform = platform
        self.code = str(code)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.kind = kind  # api | throttled | auth | signature | server | transport | malformed


@dataclass
class ApiCall:
    """One API call, for the platform SLA figures (ops.api_calls)."""
    endpoint: str
    called_at: float  # Unix seconds on the platform's clock (its Date header)
    seconds: float
    outcome: str  # "ok" or the PlatformError kind
    error_code: str | None = None
    backoff_seconds: float = 0.0  # how long we then waited before retrying


@dataclass
class Page:
    orders: list[dict[str, Any]]
    total: int | None


@dataclass
class SettlementPage:
    """One answer of a settlement API: lines, and where to continue (None: done)."""
    lines: list[dict[str, Any]]
    next_cursor: Any = None
    total: int | None = None

    @classmethod
    def by_offset(cls, lines: list[dict[str, Any]], offset: int | None,
                  total: int) -> SettlementPage:
        """A page of an offset-paged API: the next offset while lines remain."""
        following = (offset or 0) + len(lines)
        return cls(lines, following if lines and following < total else None, total)


@dataclass(frozen=True)
class Verified:
    """A push whose signature verified: the app it came from, and the
    answer the platform expects once the messages are safe."""

    app_key: str
    answer: dict[str, Any]


@dataclass(frozen=True)
class StockListing:
    """One merchant SKU as one platform lists it: the platform's product and
    SKU ids, and the outer id the merchant gave it (its own code)."""

    product_id: str
    sku_id: str = ""
    outer_id: str = ""

    def sku_param(self, outer_name: str = "outer_id") -> dict[str, str]:
        """How a stock call names the SKU: by its SKU id, else by its outer id
        (under the platform's parameter name)."""
        return {"sku_id": self.sku_id} if self.sku_id else {outer_name: self.outer_id}


@dataclass(frozen=True)
class ListedSku:
    """One SKU a shop lists, as its listing API shows it now."""

    listing: StockListing
    quantity: int  # what the platform offers now
    title: str = ""


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)  # query string
    data: dict[str, str] | str | None = None  # form fields, or a raw body
    headers: dict[str, str] = field(default_factory=dict)


def loads(text: str) -> Any:
    """JSON with every non-integer number as Decimal: money never passes a float."""
    return json.loads(text, parse_float=Decimal)


def local_time(value: datetime) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in Beijing time, as TOP, JOS and PDD responses use."""
    return value.astimezone(PLATFORM_TZ).strftime("%Y-%m-%d %H:%M:%S")


def parse_local_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=PLATFORM_TZ)


class PlatformClient:
    """One shop on one platform. Subclasses fill in the dialect, and describe
    their platform for the registry (:mod:`orderhub.platforms`): a subclass
    with a ``platform`` name in a module of this package *is* a platform."""

    platform: ClassVar[str]
    # What the registry knows of the platform (ops.platforms, dim_platforms, the report).
    title: ClassVar[str] = ""  # "Tmall / Taobao"
    title_zh: ClassVar[str] = ""
    money_unit: ClassVar[str] = ""  # how its order API writes money
    time_format: ClassVar[str] = ""
    lists_unpaid_orders: ClassVar[bool] = True  # does its order API show unpaid orders?
    number_unit: ClassVar[str] = "yuan"  # the unit of a bare JSON number amount (mapping check)
    colour: ClassVar[str] = "#7f7f7f"  # the report draws it in this colour
    position: ClassVar[int] = 100  # where it is listed among the platforms

    max_window: ClassVar[timedelta]  # longest modified-time window the API accepts
    max_page_size: ClassVar[int] = 100
    first_page: ClassVar[int] = 1  # page numbering base
    identity_paths: ClassVar[tuple[str, ...]] = ()  # payload fields order_identity reads
    order_endpoint: ClassVar[str] = ""  # the order search API's method name
    # Every order answer the platform's APIs give (search, list, increment,
    # detail): dotted paths from the body to a list of orders or to one order,
    # tried in turn (orderhub replay reads saved answers through them).
    order_responses: ClassVar[tuple[str, ...]] = ()
    # Settlements (issue 5): the settlement API's method name, its longest
    # window, and the payload fields line_identity reads.
    settlement_endpoint: ClassVar[str] = ""
    settlement_max_window: ClassVar[timedelta] = timedelta(days=1)
    settlement_identity_paths: ClassVar[tuple[str, ...]] = ()
    # Push (issue 17): how the platform pushes order messages ("webhook",
    # "websocket", or "" for a poll-only platform), and the detail API that
    # fetches the order a message names (messages carry ids and status only).
    push_transport: ClassVar[str] = ""
    push_refusal: ClassVar[dict[str, Any]] = {}  # its answer to a push that does not verify
    push_url: ClassVar[str] = ""  # its long-connection message service (websocket)
    detail_endpoint: ClassVar[str] = ""
    # Stock (issue 18): the API that sets a listed SKU's quantity; whether it
    # can also change it by a delta, and whether a delta carries a key that
    # makes a retried call change nothing (Doudian's idempotent_id).
    stock_endpoint: ClassVar[str] = ""
    # When a sale takes units off the platform's listed quantity: "created"
    # (it holds stock for unpaid orders) or "paid".
    stock_reduced_on: ClassVar[str] = ""
    stock_increments: ClassVar[bool] = False
    stock_idempotent: ClassVar[bool] = False
    # Whether a stock change's answer says the count it left (Taobao's
    # item.num): a delta that lowered a SKU and left units proves exactly that
    # many left it (a delta never takes a count below 0), so they may be
    # offered elsewhere during a sale (orderhub.stock, rebalancing).
    stock_answer_counts: ClassVar[bool] = False
    listing_endpoint: ClassVar[str] = ""  # the API listing the shop's SKUs and quantities
    listing_page_size: ClassVar[int] = 50
    listing_first_page: ClassVar[int] = 1

    def __init__(self, credentials: Credentials, *, session: requests.Session | None = None,
                 timeout: float = 30.0, clock=time.time):
        self.credentials = credentials
        self.session = session or GatewaySession()
        self.timeout = timeout
        self.clock = clock  # for request timestamps; the platform's clock is its own
        self.clock_offset = 0.0  # learned from the gateway's Date header when it refuses ours
        self.server_clock_offset: float | None = None  # last seen Date header minus our clock
        self.api_calls: list[ApiCall] = []  # drained by the extractor after each window
        self.last_status = 0  # the last answer's HTTP status and headers, for parsers
        self.last_headers: dict[str, str] = {}

    # -- push over a long connection (push_transport "websocket") -------------
    @classmethod
    def push_connect(cls, app: Credentials, now_ms: int) -> tuple[str, list[str]]:
        """Where to open the app's long connection, and the frames to send
        first (a signed connect); the platform answers with a ``connected``
        or ``refused`` frame when it has a connect frame."""
        raise NotImplementedError(f"{cls.platform}: no long-connection push")

    @classmethod
    def push_read(cls, text: str) -> Any:
        """One frame the connection brought, read (orderhub.push.messages.Frame)."""
        raise NotImplementedError(f"{cls.platform}: no long-connection push")

    @classmethod
    def push_heartbeat(cls) -> str:
        """The frame that keeps the connection open."""
        raise NotImplementedError(f"{cls.platform}: no long-connection push")

    @classmethod
    def has_settlements(cls) -> bool:
        """Whether the platform has a settlement API this client speaks."""
        return bool(cls.settlement_endpoint)

    def now(self) -> float:
        """Our clock, corrected by what the gateway told us of its own."""
        return self.clock() + self.clock_offset

    def platform_now(self) -> float:
        """The platform's clock as its last Date header showed it (ours before any)."""
        return self.clock() + (self.server_clock_offset or 0.0)

    # -- the dialect ---------------------------------------------------------
    def order_search_request(self, start: datetime, end: datetime, page: int,
                             page_size: int) -> HttpRequest:
        raise NotImplementedError

    def parse_order_search(self, text: str) -> Page:
        raise NotImplementedError

    def raise_for_error(self, body: Any) -> None:
        """Raise the platform's error (a PlatformError with its code and
        message) if ``body`` is the platform's error answer."""

    def parse_order_response(self, text: str) -> list[dict[str, Any]]:
        """The orders of any order answer of the platform's APIs
        (``order_responses``): a list, or one order; its error answer raises."""
        body = self.parse_json(text)
        self.raise_for_error(body)
        for path in self.order_responses:
            node: Any = body
            for step in path.split("."):
                node = node.get(step) if isinstance(node, dict) else None
            if isinstance(node, list):
                return node
            if isinstance(node, dict):
                return [node]
        known = ", ".join(path.split(".")[0] for path in self.order_responses) or "none"
        raise PlatformError(self.platform, "malformed",
                            f"not an order answer of {self.platform}'s APIs (known: {known})",
                            kind="malformed")

    def order_identity(self, order: dict[str, Any]) -> tuple[str, datetime]:
        """(order id, modified time) of one order payload; KeyError/ValueError
        when the payload lacks them (the loader quarantines such rows)."""
        raise NotImplementedError

    def settlement_request(self, start: datetime, end: datetime, cursor: Any) -> HttpRequest:
        """One call of the settlement API for lines booked in [start, end);
        ``cursor`` is None first, then the previous page's ``next_cursor``."""
        raise NotImplementedError(f"{self.platform}: no settlement API")

    def parse_settlements(self, text: str, cursor: Any) -> SettlementPage:
        raise NotImplementedError

    def line_identity(self, line: dict[str, Any]) -> tuple[str, datetime]:
        """(order id, settle time) of one settlement line payload."""
        raise NotImplementedError

    def identity(self, entity: str, payload: dict[str, Any]) -> tuple[str, datetime]:
        """The raw table's key columns of one payload of ``entity``."""
        return self.line_identity(payload) if entity == "settlements" else self.order_identity(payload)

    def stock_update_request(self, listing: StockListing, quantity: int, *, increment: bool,
                             request_id: str) -> HttpRequest:
        """One call of the stock API: list ``quantity`` units of the SKU, or
        (``increment``) change its listed quantity by ``quantity``."""
        raise NotImplementedError(f"{self.platform}: no stock API")

    def parse_stock_update(self, text: str) -> int | None:
        """The quantity the platform lists now, where its answer says (else
        None); its error answer raises."""
        raise NotImplementedError

    def listing_request(self, page: int, page_size: int) -> HttpRequest:
        """One page of the shop's listed SKUs (pages count from ``listing_first_page``)."""
        raise NotImplementedError(f"{self.platform}: no listing API")

    def parse_listings(self, text: str) -> tuple[list[ListedSku], int]:
        """The SKUs of one page, and how many products (the unit of paging)
        the shop lists in all."""
        raise NotImplementedError

    # -- one call --------------------------------------------------------------
    def listed_skus(self) -> list[ListedSku]:
        """Every SKU the shop lists, with the quantity it offers now (every page)."""
        found, page = [], self.listing_first_page
        while True:
            request = self.listing_request(page, self.listing_page_size)
            skus, total = self.call(self.listing_endpoint, request, self.parse_listings)
            found += skus
            if not skus or (page - self.listing_first_page + 1) * self.listing_page_size >= total:
                return found
            page += 1

    def set_stock(self, listing: StockListing, quantity: int, *, increment: bool = False,
                  request_id: str = "") -> int | None:
        """Set a listed SKU's quantity (or change it by a delta) with one call.
        ``request_id``: the caller's key for this change; a platform that
        takes one (``stock_idempotent``) applies a retried delta once."""
        if not self.stock_endpoint:
            raise NotImplementedError(f"{self.platform}: no stock API")
        if increment and not self.stock_increments:
            raise ValueError(f"{self.platform}: its stock API only sets a quantity")
        if increment and self.stock_idempotent and not request_id:
            raise ValueError(f"{self.platform}: a delta needs a request_id (its idempotency key)")
        request = self.stock_update_request(listing, quantity, increment=increment,
                                            request_id=request_id)
        return self.call(self.stock_endpoint, request, self.parse_stock_update)

    def search_orders(self, start: datetime, end: datetime, page: int, page_size: int) -> Page:
        request = self.order_search_request(start, end, page, page_size)
        return self.call(self.order_endpoint, request, self.parse_order_search)

    def order_detail_request(self, order_id: str) -> HttpRequest:
        raise NotImplementedError(f"{self.platform}: no order detail API")

    def order_detail(self, order_id: str) -> dict[str, Any]:
        """The order as the platform's detail API shows it now (one call)."""
        request = self.order_detail_request(order_id)
        return self.call(self.detail_endpoint, request, lambda text: self._one_order(text, order_id))

    def _one_order(self, text: str, order_id: str) -> dict[str, Any]:
        orders = self.parse_order_response(text)
        if len(orders) != 1:
            raise PlatformError(self.platform, "malformed",
                                f"detail of {order_id}: {len(orders)} orders", kind="malformed")
        return orders[0]

    def search_settlements(self, start: datetime, end: datetime, cursor: Any = None) -> SettlementPage:
        request = self.settlement_request(start, end, cursor)
        return self.call(self.settlement_endpoint, request, lambda text: self.parse_settlements(text, cursor))

    def call(self, endpoint: str, request: HttpRequest, parse):
        """Send one request and parse the answer, recording the call (ops.api_calls)."""
        began = time.monotonic()
        call = ApiCall(endpoint or self.platform, self.platform_now(), 0.0, "ok")
        try:
            return parse(self.send(request))
        except PlatformError as error:
            call.outcome, call.error_code = error.kind, error.code
            if error.kind == "clock" and self.server_clock_offset is not None:
                # The gateway's clock differs from ours: stamp the next requests
                # with its time (the retry loop sends the request again).
                self.clock_offset = self.server_clock_offset
            raise
        finally:
            call.seconds = time.monotonic() - began
            call.called_at = self.platform_now()  # the Date header of this very answer
            self.api_calls.append(call)

    def send(self, request: HttpRequest) -> str:
        """One HTTP exchange. Transport failures and 5xx become retryable
        PlatformErrors; the body of any other answer is returned for parsing."""
        try:
            response = self.session.request(
                request.method, request.url, params=request.params or None,
                data=request.data, headers=request.headers or None, timeout=self.timeout,
            )
        except requests.RequestException as exc:
            # Never str(exc): requests puts the URL, query string included, in
            # its messages, and Doudian's query string carries the access token.
            code = "timeout" if isinstance(exc, requests.Timeout) else "connection"
            host = urlsplit(request.url).netloc
            raise PlatformError(self.platform, code, f"{type(exc).__name__} talking to {host}",
                                retryable=True, kind="transport") from None
        self.last_status, self.last_headers = response.status_code, dict(response.headers)
        server_date = response.headers.get("Date")
        if server_date:
            try:
                self.server_clock_offset = (parsedate_to_datetime(server_date).timestamp()
                                            - self.clock())
            except (TypeError, ValueError):
                pass
        if response.status_code >= 500:
            raise PlatformError(self.platform, f"http-{response.status_code}",
                                response.text[:200], retryable=True, kind="server")
        response.encoding = "utf-8"
        return response.text

    def parse_json(self, text: str) -> Any:
        try:
            return loads(text)
        except ValueError as exc:
            # A cut-off or garbled body: worth another try.
            raise PlatformError(self.platform, "malformed", f"unparseable response: {exc}",
                                retryable=True, kind="malformed") from exc
