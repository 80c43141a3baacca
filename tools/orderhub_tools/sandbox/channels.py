"""The platforms' long-connection message services (Taobao TMC, Pinduoduo's
多多消息服务): one WebSocket server for the sandbox, one path per platform
(a gateway with ``push_transport = "websocket"`` and a ``channel_path``).

The receiver (``orderhub intake``) connects, as it would to
``ws://mc.api.taobao.com/`` or ``wss://message-api.pinduoduo.com/message/…``;
the platform's gateway checks the signed connect (in the URL for PDD, in a
first frame for TMC) and refuses a wrong one (HTTP 401 before the upgrade,
or a ``connect_failed`` frame and a close). The pusher (sandbox/push.py)
writes each message on one of the platform's open connections and waits for
its confirm/ack frame; what is not confirmed in time, or was written on a
connection that closed, it sends again.

The connect timestamps are checked against wall time, not the sandbox's
simulated clock: a receiver stamps them with its own clock.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve


@dataclass
class Connection:
    platform: str
    ws: ServerConnection
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, text: str) -> None:
        with self.lock:
            self.ws.send(text)


class Channels:
    def __init__(self, gateways):
        self.gateways = [g for g in gateways if g.push_transport == "websocket"]
        self.live: dict[str, list[Connection]] = defaultdict(list)
        self.lock = threading.Lock()
        self.listener = None  # the pusher: listener.acked(platform, msg_id)
        self.counts: Counter = Counter()
        self.server = None
        self.url = ""
        self._turn = itertools.count()

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.server = serve(self._handle, host, port, process_request=self._check,
                            compression=None)
        threading.Thread(target=self.server.serve_forever, name="orderhub-sandbox-channels",
                         daemon=True).start()
        self.url = f"ws://{host}:{self.server.socket.getsockname()[1]}"
        return self.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()

    def push_url(self, platform: str) -> str | None:
        """What a shop's connection gets as ``push_url`` for this platform."""
        for gateway in self.gateways:
            if gateway.platform == platform and self.url:
                return self.url + gateway.channel_path
        return None

    def connected(self) -> dict[str, int]:
        with self.lock:
            return {platform: len(conns) for platform, conns in self.live.items() if conns}

    # -- connections ------------------------------------------------------------
    def _route(self, path: str):
        return next((g for g in self.gateways if path.startswith(g.channel_path)), None)

    def _check(self, connection: ServerConnection, request):
        """Before the upgrade: a known path, and a signed URL where the
        platform signs there (PDD)."""
        gateway = self._route(request.path)
        if gateway is None:
            return connection.respond(404, "no message service at this path\n")
        if not gateway.channel_hello:
            ok, _ = gateway.channel_open(request.path, None)
            if not ok:
                self.counts[f"{gateway.platform}_refused"] += 1
                return connection.respond(401, "invalid client_id, timestamp or sign\n")
        return None

    def _handle(self, ws: ServerConnection) -> None:
        gateway = self._route(ws.request.path)
        if gateway.channel_hello:
            try:
                ok, answer = gateway.channel_open(ws.request.path, lambda: ws.recv(timeout=10))
            except (TimeoutError, ConnectionClosed):
                ok, answer = False, None
            if answer:
                ws.send(answer)
            if not ok:
                self.counts[f"{gateway.platform}_refused"] += 1
                ws.close(4001, "connect refused")
                return
        conn = Connection(gateway.platform, ws)
        with self.lock:
            self.live[gateway.platform].append(conn)
        self.counts[f"{gateway.platform}_connections"] += 1
        try:
            for text in ws:
                msg_id, answer = gateway.channel_read(text if isinstance(text, str)
                                                      else text.decode())
                if answer:
                    conn.send(answer)
                if msg_id and self.listener is not None:
                    self.listener.acked(gateway.platform, msg_id)
        except ConnectionClosed:
            pass
        finally:
            with self.lock:
                self.live[gateway.platform].remove(conn)

    def send(self, platform: str, text: str) -> bool:
        """Write one message on one of the platform's open connections (in
        turn); False if none is open or the write failed."""
        with self.lock:
            conns = list(self.live.get(platform, ()))
        if not conns:
            return False
        conn = conns[next(self._turn) % len(conns)]
        try:
            conn.send(text)
            return True
        except (ConnectionClosed, OSError):
            return False
