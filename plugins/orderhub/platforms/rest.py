"""Config-only sources: a plain JSON REST order API described by a file.

A brand's own shop (a mini-program or web mall) usually has a plain API: a
token in a header, a page number, a list of orders with an id and a modified
time. Such an API needs no code, only ``config/sources/<name>.yml`` (the file
name is the platform's name), in the spirit of dlt's ``rest_api`` source::

    title: Self-built mall
    orders:
      path: /api/v1/orders          # appended to the connection's gateway URL
      params: {status: all}         # sent with every call
      incremental:                  # the modified-time window [start, end)
        start_param: updated_from
        end_param: updated_to
        format: iso                 # iso | unix | unix_ms | local
        max_window_minutes: 60
      paginator:
        type: page_number           # page_number | offset
        page_param: page            # (offset: offset_param)
        size_param: page_size
        first_page: 1
        max_page_size: 100
        total_path: $.total         # the count of the whole window
      records_path: $.orders        # where the list of orders is
      id_path: $.order_no
      modified_path: $.updated_at
      modified_format: iso
    auth: {type: bearer}            # bearer | header (name: X-Token) | query (name: token)
    errors:
      code_path: $.error.code
      message_path: $.error.message
      throttled_codes: [TOO_MANY_REQUESTS]   # HTTP 429 is throttling too

Credentials come from the shop's Airflow connection like every platform's:
``extra.gateway_url`` (or the host) is the base URL, ``extra.access_token`` the
token. The client gets the same windows, paging (last page first), retries,
breaker, ledger, quarantine and repair as every coded platform. Settlements
are not part of a config source. Paths here are plain member paths
(``$.a.b``, ``$.a[0].b``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import yaml

from orderhub.config import PLATFORM_TZ
from orderhub.platforms.base import HttpRequest, Page, PlatformClient, PlatformError

_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def path_value(document: Any, path: str) -> Any:
    """The value at a plain member path (``$.a.b[0].c``); None where it is missing."""
    if not path.startswith("$"):
        raise ValueError(f"a path starts with $: {path!r}")
    value, rest = document, path[1:]
    while rest:
        match = _STEP.match(rest)
        if not match:
            raise ValueError(f"unsupported path {path!r}: only $.member and [index] steps")
        name, index = match.groups()
        if name is not None:
            value = value.get(name) if isinstance(value, dict) else None
        else:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
        rest = rest[match.end():]
    return value


def format_time(value: datetime, fmt: str) -> str:
    if fmt == "unix":
        return str(int(value.timestamp()))
    if fmt == "unix_ms":
        return str(int(value.timestamp() * 1000))
    if fmt == "local":
        return value.astimezone(PLATFORM_TZ).strftime("%Y-%m-%d %H:%M:%S")
    if fmt == "iso":
        return value.astimezone(PLATFORM_TZ).isoformat()
    raise ValueError(f"unknown time format {fmt!r}: iso, unix, unix_ms or local")


def parse_time(value: Any, fmt: str) -> datetime:
    if fmt == "unix":
        return datetime.fromtimestamp(int(value), UTC)
    if fmt == "unix_ms":
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    if fmt == "local":
        return datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=PLATFORM_TZ)
    if fmt == "iso":
        parsed = datetime.fromisoformat(str(value))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=PLATFORM_TZ)
    raise ValueError(f"unknown time format {fmt!r}: iso, unix, unix_ms or local")


class RestSourceClient(PlatformClient):
    """A shop behind a plain JSON API, described by its source file."""

    source: ClassVar[dict[str, Any]]
    source_file: ClassVar[Path]
    position = 50

    @property
    def _orders(self) -> dict[str, Any]:
        return self.source["orders"]

    def _auth(self, params: dict[str, str], headers: dict[str, str]) -> None:
        auth = self.source.get("auth") or {"type": "bearer"}
        token = self.credentials.access_token
        if auth["type"] == "bearer":
            headers["Authorization"] = f"Bearer {token}"
        elif auth["type"] == "header":
            headers[auth["name"]] = token
        elif auth["type"] == "query":
            params[auth["name"]] = token
        else:
            raise ValueError(f"{self.source_file}: auth type {auth['type']!r}: bearer, header or query")

    def order_search_request(self, start: datetime, end: datetime, page: int,
                             page_size: int) -> HttpRequest:
        orders, pager = self._orders, self._orders["paginator"]
        window = orders["incremental"]
        params = {k: str(v) for k, v in (orders.get("params") or {}).items()}
        params[window["start_param"]] = format_time(start, window.get("format", "iso"))
        params[window["end_param"]] = format_time(end, window.get("format", "iso"))
        params[pager["size_param"]] = str(page_size)
        if pager["type"] == "page_number":
            params[pager["page_param"]] = str(page)
        else:  # offset: pages are numbered from first_page here, offsets from 0 there
            params[pager["offset_param"]] = str((page - self.first_page) * page_size)
        headers = {"Accept": "application/json"}
        self._auth(params, headers)
        url = self.credentials.gateway_url.rstrip("/") + orders["path"]
        return HttpRequest(orders.get("method", "GET"), url, params=params, headers=headers)

    def _error(self, body: Any) -> PlatformError | None:
        errors = self.source.get("errors") or {}
        code = path_value(body, errors["code_path"]) if errors.get("code_path") else None
        if self.last_status == 429 or (code is not None and str(code) in
                                       {str(c) for c in errors.get("throttled_codes", [])}):
            after = self.last_headers.get("Retry-After", "1")
            return PlatformError(self.platform, str(code or 429), "throttled", retryable=True,
                                 kind="throttled",
                                 retry_after=float(after) if after.isdigit() else 1.0)
        if code is None and self.last_status < 400:
            return None
        message = path_value(body, errors["message_path"]) if errors.get("message_path") else ""
        kind = "auth" if self.last_status in (401, 403) else "api"
        return PlatformError(self.platform, str(code if code is not None else self.last_status),
                             str(message or f"HTTP {self.last_status}"), kind=kind)

    def raise_for_error(self, body: Any) -> None:
        error = self._error(body)
        if error:
            raise error

    def parse_order_search(self, text: str) -> Page:
        body = self.parse_json(text)
        self.raise_for_error(body)
        records = path_value(body, self._orders["records_path"])
        total = path_value(body, self._orders["paginator"]["total_path"])
        if not isinstance(records, list) or total is None:
            raise PlatformError(self.platform, "malformed",
                                f"no order list at {self._orders['records_path']} or no total",
                                retryable=True, kind="malformed")
        return Page(orders=records, total=int(total))

    def order_identity(self, order: dict[str, Any]) -> tuple[str, datetime]:
        order_id = path_value(order, self._orders["id_path"])
        modified = path_value(order, self._orders["modified_path"])
        if order_id is None or modified is None:
            raise KeyError(f"{self._orders['id_path']} / {self._orders['modified_path']}")
        return str(order_id), parse_time(modified, self._orders.get("modified_format", "iso"))


REQUIRED = ("path", "incremental", "paginator", "records_path", "id_path", "modified_path")


def load_source(path: Path) -> type[RestSourceClient]:
    """The client class of one source file (its name is the file's stem)."""
    source = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    orders = source.get("orders") or {}
    missing = [key for key in REQUIRED if key not in orders]
    if missing:
        raise ValueError(f"{path}: orders lacks {', '.join(missing)}")
    pager = orders["paginator"]
    if pager.get("type") not in ("page_number", "offset"):
        raise ValueError(f"{path}: paginator type must be page_number or offset")
    name = path.stem
    window = timedelta(minutes=int(orders["incremental"].get("max_window_minutes", 60)))
    return type(f"{name.title().replace('_', '')}SourceClient", (RestSourceClient,), {
        "platform": name,
        "source": source,
        "source_file": path,
        "title": source.get("title", name),
        "title_zh": source.get("title_zh", ""),
        "money_unit": source.get("money_unit", ""),
        "time_format": orders.get("modified_format", "iso"),
        "colour": source.get("colour", RestSourceClient.colour),
        "max_window": window,
        "max_page_size": int(pager.get("max_page_size", 100)),
        "first_page": int(pager.get("first_page", 1)),
        "order_endpoint": f"{orders.get('method', 'GET')} {orders['path']}",
        "identity_paths": (orders["id_path"], orders["modified_path"]),
        "order_responses": (orders["records_path"].removeprefix("$."),),
        "__module__": __name__,
    })


def source_clients(directory: Path) -> dict[str, type[RestSourceClient]]:
    if not directory.is_dir():
        return {}
    return {path.stem: load_source(path) for path in sorted(directory.glob("*.yml"))}
