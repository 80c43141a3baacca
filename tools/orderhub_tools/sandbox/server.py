"""The sandbox HTTP service: one server, one path prefix per platform
gateway (every gateway of the registry, orderhub_tools.sandbox), e.g.:

    POST /tmall/router/rest        TOP
    POST /jd/routerjson            JOS
    POST /pdd/api/router           PDD
    POST /douyin/order/searchList  Doudian (path = method with . -> /)
    GET  /pdd/bill/download        a PDD daily bill file (the URL the bill API answers)

Each gateway also answers its platform's settlement API (taobao.bill.bills.get,
a modelled JD settlement query, PDD's daily bill, Doudian's
order.getSettleBillDetailV3); sandbox/settlement.py decides what they say.
    GET  /_sandbox/clock           {"now": ISO time}
    POST /_sandbox/clock           {"now": ISO time} moves the simulated clock
    GET  /_sandbox/health          (with the message service's ws:// URL)
    GET  /_sandbox/stock           every shop's listings now, and a flash sale's truth (sandbox/stock.py)
    GET  /wms/inventory            the brand's warehouse system: on-hand per merchant SKU
                                   (bearer token; sandbox/stock.py)
    POST /sf/open/api/external/…   SF same-city, for the shops delivering with it
                                   (sandbox/delivery.py)

TMC and PDD push over long connections to a second (WebSocket) port: the
message service, sandbox/channels.py.

The clock: a query at sandbox time ``now`` sees the versions modified before
``now - index_delay`` (the platform's search index trails its writes; the
default delay equals OrderHub's default safety lag). ``orderhub run`` moves
the clock to the moment each interval's run would really happen.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from orderhub import jsonutil
from orderhub.config import parse_time
from orderhub_tools.sandbox import gateways
from orderhub_tools.sandbox.delivery import PREFIX as DELIVERY_PREFIX
from orderhub_tools.sandbox.delivery import SERVICE as DELIVERY_SERVICE
from orderhub_tools.sandbox.delivery import SfSameCityGateway
from orderhub_tools.sandbox.faults import ShopFaults, expand
from orderhub_tools.sandbox.gateway import AppCredentials, Gateway, sandbox_credentials
from orderhub_tools.sandbox.stock import WAREHOUSE_PATH, warehouse_answer, warehouse_token
from orderhub_tools.sandbox.world import World

DEFAULT_INDEX_DELAY = 180


@dataclass
class SandboxSpec:
    """Everything that determines what the sandbox answers."""

    seed: int
    shops: list[tuple[str, str]]
    scale: float = 1.0
    index_delay: int = DEFAULT_INDEX_DELAY
    faults: str = "none"  # one profile for every shop ...
    shop_faults: dict[str, str] = field(default_factory=dict)  # ... or per shop id
    unmapped_status: bool = False  # some Tmall orders in a status the seed does not map
    dropped_fields: dict[str, list[str]] = field(default_factory=dict)  # platform -> fields left out
    short_shops: list[str] = field(default_factory=list)  # shops whose pages each lose an order
    incident_seconds: float = 20.0  # wall seconds: stands in for "minutes" so demos stay short
    flash_sale: dict | None = None  # a flash sale on scarce SKUs (sandbox/stock.py FlashSale fields)
    world: str = "brand"  # which world: the brand's shops, or a tea chain's stores (world.WORLDS)
    # Shops whose own orders a delivery service carries: shop id -> service
    # (the shops file's ``delivery``; sandbox/delivery.py answers as SF same-city).
    deliveries: dict[str, str] = field(default_factory=dict)

    def shop_fault_state(self, monotonic: Callable[[], float] = time.monotonic) -> dict[str, ShopFaults]:
        out = {}
        for platform, shop_id in self.shops:
            kinds = expand(self.shop_faults.get(shop_id, self.faults))
            if kinds:
                out[shop_id] = ShopFaults(self.seed, shop_id, kinds, self.incident_seconds,
                                          platform=platform, monotonic=monotonic)
        return out

    def credentials(self) -> dict[str, AppCredentials]:
        return {
            gw.platform: sandbox_credentials(
                self.seed, gw.platform, [s for p, s in self.shops if p == gw.platform])
            for gw in gateways().values()
        }


class Clock:
    """The sandbox's present: set by hand (``orderhub run`` moves it to each
    run's moment), or running from a start at ``speed`` x wall time (live mode:
    pushes go out as the world changes)."""

    def __init__(self, now: float | None = None):
        self._offset = 0.0 if now is None else now - time.time()
        self._frozen: float | None = None
        self._running: tuple[float, float, float] | None = None  # (start, wall at start, speed)
        self._lock = threading.Lock()

    def set(self, now: float) -> None:
        with self._lock:
            self._frozen, self._running = now, None

    def run(self, start: float, speed: float = 1.0) -> None:
        with self._lock:
            self._frozen, self._running = None, (start, time.time(), speed)

    @property
    def speed(self) -> float:
        return self._running[2] if self._running else 0.0

    def exact(self) -> float:
        with self._lock:
            if self._running is not None:
                start, wall, speed = self._running
                return start + (time.time() - wall) * speed
            return self._frozen if self._frozen is not None else time.time() + self._offset

    def __call__(self) -> int:
        return int(self.exact())


class Sandbox:
    """``monotonic``: the wall time incidents last in (a virtual clock in the
    extraction-level chaos tests)."""

    def __init__(self, spec: SandboxSpec, monotonic: Callable[[], float] = time.monotonic):
        self.spec = spec
        self.world = World(spec.seed, spec.shops, spec.scale, kind=spec.world)
        self.clock = Clock()
        # What every shop lists, and a flash sale if the spec has one (sandbox/stock.py).
        from orderhub_tools.sandbox.stock import FlashSale, Stock

        Stock(self.world, FlashSale.from_dict(spec.flash_sale) if spec.flash_sale else None,
              self.clock)
        self.pusher = None  # live mode (sandbox/push.py)
        creds = spec.credentials()
        self.faults = spec.shop_fault_state(monotonic)
        self.gateways = [gw(self.world, creds[gw.platform], self.clock, spec.index_delay,
                            self.faults) for gw in gateways().values()]
        for gateway in self.gateways:
            gateway.unmapped_status = spec.unmapped_status
            gateway.dropped_fields = tuple(spec.dropped_fields.get(gateway.platform, ()))
            gateway.short_shops = frozenset(spec.short_shops)
        # SF's gateway meets each delivering shop's fault profile with a
        # request count and a clock of its own
        delivery_faults = {
            shop_id: ShopFaults(spec.seed, f"{DELIVERY_SERVICE}/{shop_id}", kinds,
                                spec.incident_seconds, platform=DELIVERY_SERVICE,
                                monotonic=monotonic)
            for shop_id in spec.deliveries
            if (kinds := expand(spec.shop_faults.get(shop_id, spec.faults)))}
        self.delivery = SfSameCityGateway(
            self.world, sandbox_credentials(spec.seed, DELIVERY_SERVICE, sorted(spec.deliveries)),
            self.clock, spec.deliveries, delivery_faults)
        from orderhub_tools.sandbox.channels import Channels

        self.channels = Channels(self.gateways)  # TMC and PDD's long connections (serve starts it)

    def push_control(self, path: str, method: str, asked: dict) -> dict:
        """/_sandbox/push: POST {"targets": {platform: url}, "start": ISO,
        "speed": x[, "end": ISO]} runs the clock from start and pushes as the
        world changes, until ``end`` (the clock freezes there);
        /_sandbox/push/stop POST {"end": ISO} stops new pushes at ``end``
        (the clock freezes there; unacknowledged messages keep being
        redelivered); GET /_sandbox/push: the pusher's counts."""
        from orderhub_tools.sandbox.push import Pusher

        if path == "/_sandbox/push" and method == "POST":
            if self.pusher is not None:
                self.pusher.close()
            start = parse_time(asked["start"]).timestamp()
            end = parse_time(asked["end"]).timestamp() if asked.get("end") else None
            self.pusher = Pusher(self, asked["targets"], start,
                                 asked.get("faults", self.spec.faults), end)
            self.channels.listener = self.pusher
            self.pusher.prepare()
            self.clock.run(start, float(asked.get("speed", 1.0)))
            self.pusher.wall_start = time.time()
            self.pusher.start()
        elif path == "/_sandbox/push/stop" and self.pusher is not None:
            self.pusher.stop_at(parse_time(asked["end"]).timestamp())
        return self.pusher.stats() if self.pusher is not None else {}

    def route(self, path: str) -> Gateway | None:
        for gateway in self.gateways:
            for prefix in (gateway.prefix, *gateway.extra_prefixes):
                if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                    return gateway
        return None


def make_handler(sandbox: Sandbox):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle's algorithm on, the
        # body waits for the client's delayed ACK (~40 ms per keep-alive call).
        disable_nagle_algorithm = True

        def log_message(self, format, *args):  # noqa: A002 - quiet by default
            pass

        date_offset = 0

        def date_time_string(self, timestamp=None):
            # The platform's clock: the sandbox clock (the simulated present),
            # off by the shop's skew fault if it has one.
            return super().date_time_string(sandbox.clock() + self.date_offset)

        def _send(self, status: int, payload: dict | bytes, date_offset: int = 0) -> None:
            body = payload if isinstance(payload, bytes) else jsonutil.dumps(payload).encode("utf-8")
            self.date_offset = date_offset
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _dispatch(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            form: dict[str, str] = {}
            if "application/x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
                form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            if parts.path == "/_sandbox/health":
                return self._send(200, {"ok": True, "seed": sandbox.spec.seed,
                                        "message_service": sandbox.channels.url,
                                        "faults": {k: sorted(v.kinds) for k, v in sandbox.faults.items()}})
            if parts.path == "/_sandbox/clock":
                if self.command == "POST":
                    asked = json.loads(body)
                    now = parse_time(asked["now"]).timestamp()
                    if asked.get("speed"):
                        sandbox.clock.run(now, float(asked["speed"]))
                    else:
                        sandbox.clock.set(now)
                now = datetime.fromtimestamp(sandbox.clock(), UTC)
                return self._send(200, {"now": now.isoformat()})
            if parts.path == WAREHOUSE_PATH:  # the brand's warehouse system
                if self.headers.get("Authorization") != f"Bearer {warehouse_token(sandbox.spec.seed)}":
                    return self._send(401, {"error": "invalid or missing bearer token"})
                return self._send(200, warehouse_answer(sandbox.world, sandbox.clock()))
            if parts.path == "/_sandbox/stock":
                stock = sandbox.world.stock
                return self._send(200, stock.state() if stock is not None else {})
            if parts.path.startswith("/_sandbox/push"):
                return self._send(200, sandbox.push_control(parts.path, self.command,
                                                            json.loads(body or b"{}")))
            if parts.path.startswith(DELIVERY_PREFIX + "/"):  # SF same-city
                reply = sandbox.delivery.serve(parts.path, query, body)
                return self._send(reply.status, reply.body, reply.clock_offset)
            gateway = sandbox.route(parts.path)
            if gateway is None:
                return self._send(404, {"error": f"no gateway at {parts.path}"})
            reply = gateway.serve(parts.path, query, form, body, dict(self.headers))
            return self._send(reply.status, reply.body, reply.clock_offset)

        do_GET = _dispatch
        do_POST = _dispatch

    return Handler


class SandboxServer(ThreadingHTTPServer):
    """A client that gave up on a reply (its read timed out, it retries) is
    what a gateway sees at a peak: one line on stderr, not a traceback."""

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            print(f"sandbox: client {client_address[0]}:{client_address[1]} went away"
                  f" ({type(error).__name__})", file=sys.stderr)
            return
        super().handle_error(request, client_address)


def serve(spec: SandboxSpec, host: str = "127.0.0.1", port: int = 0,
          monotonic: Callable[[], float] = time.monotonic) -> ThreadingHTTPServer:
    """Start the sandbox in a background thread; ``server.server_address`` has the port."""
    sandbox = Sandbox(spec, monotonic)
    server = SandboxServer((host, port), make_handler(sandbox))
    server.daemon_threads = True
    server.sandbox = sandbox  # type: ignore[attr-defined]
    sandbox.channels.start(host)
    threading.Thread(target=server.serve_forever, name="orderhub-sandbox", daemon=True).start()
    return server
