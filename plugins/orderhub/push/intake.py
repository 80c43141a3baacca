"""``orderhub intake``: receives the platforms' push messages and puts them
on NATS JetStream, nothing else.

An ASGI app (Starlette) on uvicorn, in two parts:

* ``POST /push/<platform>`` is a platform's webhook (Douyin); the platform's
  client verifies the signature against the apps of the configured shops and
  reads the messages out of the body.
* ``POST /delivery/<service>`` is a delivery service's status callback (SF
  same-city, issue 19): verified against the delivering shops' accounts, it
  becomes a message naming the shop order, topic ``delivery:<service>``.
* For a platform that pushes over a long connection (Taobao TMC, Pinduoduo),
  the intake holds one WebSocket per app (from the shops' connections:
  ``extra.push_url``, default the platform's service), signed as the
  platform wants, with heartbeats, and reconnects with a growing pause when
  it drops or is refused. Each message frame is confirmed (its ack frame)
  only after its publish was acknowledged; an unconfirmed one the platform
  sends again. A message for a shop the app does not serve is refused like a
  forged webhook (counted, ``ops.push_rejections``, never published) and
  confirmed, so it does not come back.

Each message is published to ``push.<platform>.<shop_id>`` with the
platform's message id as ``Nats-Msg-Id`` (JetStream stores a repeat once),
and the platform gets its success answer only after JetStream acknowledged
every publish: a crash before that leaves the messages unacknowledged, and
the platform sends them again. The intake never calls a platform API and
never writes raw rows; ``orderhub stream`` does (orderhub.push.stream).

* A signature that does not verify (forged, or none): the platform's error
  answer (HTTP 401), a row in ``ops.push_rejections``, nothing published.
* A signed message that cannot be read: a row in ``ops.quarantine`` (entity
  ``push``) with the reason, and the success answer (sending it again would
  not make it readable); the other messages of the body are published.
* JetStream unavailable: HTTP 503, so the platform redelivers later.

``GET /healthz``: whether the broker connection is up, and the counts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orderhub.landing import ensure_schema, sha256
from orderhub.platforms import client_class
from orderhub.platforms.base import Credentials
from orderhub.push import broker
from orderhub.push.broker import ensure_stream
from orderhub.push.messages import Frame, Malformed, PushMessage, PushRejected

log = logging.getLogger("orderhub.intake")
PUBLISH_TIMEOUT = 5.0
HEARTBEAT_EVERY = 20.0  # seconds between a long connection's heartbeat frames
RECONNECT_MAX = 30.0  # the longest pause before connecting again


class ConnectRefused(Exception):
    """The platform answered our signed connect with a refusal."""


@dataclass(frozen=True)
class PushApp:
    """One platform app the pushes come from, and the configured shops it serves."""

    credentials: Credentials
    shop_ids: frozenset[str]


@dataclass
class Intake:
    nats_url: str
    database_url: str
    apps: dict[str, list[PushApp]]  # platform -> the apps its pushes may come from
    counts: Counter = field(default_factory=Counter)
    # delivery service -> the accounts its status callbacks may come from, and
    # the shops they deliver for (shop id -> its platform): issue 19
    delivery_apps: dict[str, list[PushApp]] = field(default_factory=dict)
    delivery_shops: dict[str, dict[str, str]] = field(default_factory=dict)
    # the shops' connections not defined when the intake started (/healthz says)
    missing_connections: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.nc = None
        self.js = None
        self.holders: list[asyncio.Task] = []
        self.sockets: dict[str, str] = {}  # "platform/app key" -> connected | connecting | refused
        with psycopg.connect(self.database_url) as conn:
            ensure_schema(conn)

    async def connect(self) -> None:
        self.nc = await broker.connect(self.nats_url, "intake")
        self.js = self.nc.jetstream(timeout=PUBLISH_TIMEOUT)
        await ensure_stream(self.js)
        for platform, apps in self.apps.items():
            if client_class(platform).push_transport == "websocket":
                self.holders += [asyncio.create_task(self.hold(platform, app)) for app in apps]

    async def close(self) -> None:
        for task in self.holders:
            task.cancel()
        await asyncio.gather(*self.holders, return_exceptions=True)
        if self.nc is not None:
            await self.nc.close()

    async def publish(self, messages: list[PushMessage]) -> None:
        """Publish and wait for JetStream's acks; raises if the broker fails."""
        await asyncio.gather(*(
            self.js.publish(m.subject, m.encode(),
                            headers={"Nats-Msg-Id": f"{m.platform}:{m.msg_id}"})
            for m in messages))
        self.counts["published"] += len(messages)

    # -- the webhook -----------------------------------------------------------
    async def webhook(self, request: Request) -> JSONResponse:
        platform = request.path_params["platform"]
        try:
            client = client_class(platform)
        except ValueError:
            return JSONResponse({"error": f"no platform {platform}"}, status_code=404)
        if client.push_transport != "webhook" or platform not in self.apps:
            return JSONResponse({"error": f"{platform} pushes are not received here"},
                                status_code=404)
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        headers[":path"] = request.url.path  # a platform that signs its callback URL (Meituan)
        try:
            verified = client.verify_push(headers, body,
                                          [app.credentials for app in self.apps[platform]])
        except PushRejected as rejected:
            self.counts["rejected"] += 1
            await asyncio.to_thread(self._reject, platform, str(rejected), body)
            return JSONResponse(client.push_refusal, status_code=401)
        messages, malformed = client.push_messages(body)
        if malformed:
            self.counts["malformed"] += len(malformed)
            await asyncio.to_thread(self._quarantine, platform, malformed)
        try:
            await self.publish(messages)
        except Exception as error:  # noqa: BLE001 - any broker failure: the platform redelivers
            self.counts["broker_unavailable"] += 1
            log.warning("publish failed (%s): answering 503, the platform redelivers",
                        type(error).__name__)
            return JSONResponse({"code": 503, "msg": "broker unavailable"}, status_code=503)
        return JSONResponse(verified.answer)

    # -- a delivery service's status callbacks (SF same-city) ---------------------
    async def delivery_callback(self, request: Request) -> JSONResponse:
        """``POST /delivery/<service>``: one status change of a delivery of a
        configured shop's order, verified with the service's signature and
        published as a message naming the shop order (topic
        ``delivery:<service>``); ``orderhub stream`` asks the service about
        it and lands the answers in raw.deliveries."""
        from orderhub.delivery import services

        service = request.path_params["service"]
        client = services().get(service)
        if client is None or service not in self.delivery_apps:
            return JSONResponse({"error": f"{service} callbacks are not received here"},
                                status_code=404)
        body = await request.body()
        apps = self.delivery_apps[service]
        try:
            account = client.verify_callback_request(dict(request.query_params), body,
                                                     [app.credentials for app in apps])
        except PushRejected as rejected:
            self.counts["rejected"] += 1
            await asyncio.to_thread(self._reject, service, str(rejected), body)
            return JSONResponse(client.callback_refusal, status_code=401)
        text = body.decode("utf-8", errors="replace")
        try:
            shop_id, order_id, msg_id = client.read_callback(text)
            platform = self.delivery_shops[service][shop_id]
        except (KeyError, TypeError, ValueError) as exc:
            self.counts["malformed"] += 1
            await asyncio.to_thread(self._quarantine, service, [Malformed(
                text, f"{service} callback: lacks a usable shop id, shop order id or status,"
                      f" or names a shop it does not deliver for ({type(exc).__name__}: {exc})")])
            return JSONResponse(client.callback_ok)
        if not any(app.credentials == account and shop_id in app.shop_ids for app in apps):
            # signed by an account that does not deliver for this shop: as a forgery
            self.counts["rejected"] += 1
            await asyncio.to_thread(self._reject, service, f"{service} callback for shop"
                                    f" {shop_id}, signed by an account that does not serve it",
                                    body)
            return JSONResponse(client.callback_refusal, status_code=401)
        try:
            await self.publish([PushMessage(platform, shop_id, order_id, f"{service}:{msg_id}",
                                            f"delivery:{service}")])
        except Exception as error:  # noqa: BLE001 - any broker failure: the service redelivers
            self.counts["broker_unavailable"] += 1
            log.warning("publish failed (%s): answering 503, the service redelivers",
                        type(error).__name__)
            return JSONResponse({"error_code": 503, "error_msg": "broker unavailable"},
                                status_code=503)
        return JSONResponse(client.callback_ok)

    # -- the long connections --------------------------------------------------------
    async def hold(self, platform: str, app: PushApp) -> None:
        """Keep the app's connection open, forever: connect (signed), read
        frames, reconnect after a pause (0.5 s doubling to 30 s) when it drops."""
        import websockets
        from websockets.exceptions import InvalidStatus, WebSocketException

        client = client_class(platform)
        name = f"{platform}/{app.credentials.app_key}"
        pause = 0.5
        while True:
            url, hello = client.push_connect(app.credentials, int(time.time() * 1000))
            self.sockets[name] = "connecting"
            try:
                async with websockets.connect(url, open_timeout=10, max_queue=1024,
                                              compression=None) as ws:
                    for frame in hello:
                        await ws.send(frame)
                    if hello:  # the platform answers a connect frame
                        answer = client.push_read(await asyncio.wait_for(ws.recv(), 10))
                        if answer.kind != "connected":
                            raise ConnectRefused(answer.detail or answer.kind)
                    self.sockets[name] = "connected"
                    self.counts[f"{platform}_connections"] += 1
                    log.info("%s: connected", name)
                    pause = 0.5
                    await self._read(ws, platform, app, client)
            except asyncio.CancelledError:
                raise
            except (InvalidStatus, ConnectRefused) as refused:
                self.sockets[name] = "refused"
                self.counts[f"{platform}_refused"] += 1
                log.error("%s: the platform refused the connection (%s); check the app key and"
                          " secret of its shops' connections", name, refused)
                pause = RECONNECT_MAX
            except (OSError, TimeoutError, WebSocketException) as error:
                log.warning("%s: connection lost (%s); connecting again in %.1f s", name,
                            type(error).__name__, pause)
            self.sockets[name] = "connecting"
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX)

    async def _read(self, ws, platform: str, app: PushApp, client) -> None:
        """Frames in; each message published, then confirmed (one task per
        frame, so a slow publish holds up no other message)."""
        async def beat():
            while True:
                await asyncio.sleep(HEARTBEAT_EVERY)
                await ws.send(client.push_heartbeat())

        heart = asyncio.create_task(beat())
        pending: set[asyncio.Task] = set()
        try:
            async for text in ws:
                frame = client.push_read(text if isinstance(text, str) else text.decode())
                if frame.kind == "message":
                    task = asyncio.create_task(self._take(ws, platform, app, frame, text))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                elif frame.ack:  # a message we do not publish (another topic): confirmed
                    await ws.send(frame.ack)
        finally:
            heart.cancel()
            for task in pending:
                task.cancel()

    async def _take(self, ws, platform: str, app: PushApp, frame: Frame, text) -> None:
        """One message: published (or quarantined, or refused), then confirmed.
        Any failure before the confirm leaves it to the platform's redelivery."""
        message = frame.message
        try:
            if frame.malformed is not None:
                self.counts["malformed"] += 1
                await asyncio.to_thread(self._quarantine, platform, [frame.malformed])
            elif message.shop_id not in app.shop_ids:
                self.counts["rejected"] += 1
                await asyncio.to_thread(
                    self._reject, platform, f"{platform}: a message for shop {message.shop_id},"
                    f" which app {app.credentials.app_key} does not serve here",
                    text if isinstance(text, bytes) else text.encode())
            else:
                await self.publish([message])
            await ws.send(frame.ack)
        except Exception as error:  # noqa: BLE001 - broker, warehouse or connection: not confirmed
            self.counts["unconfirmed"] += 1
            log.warning("%s message left unconfirmed (%s: %s); the platform sends it again",
                        platform, type(error).__name__, error)

    async def health(self, request: Request) -> JSONResponse:
        up = self.nc is not None and self.nc.is_connected
        return JSONResponse({"broker": "connected" if up else "down",
                             "connections": self.sockets,
                             "missing_connections": self.missing_connections, **self.counts},
                            status_code=200 if up else 503)

    # -- what is written to the warehouse ------------------------------------------
    def _reject(self, platform: str, reason: str, body: bytes) -> None:
        log.warning("%s push refused: %s", platform, reason)
        with psycopg.connect(self.database_url) as conn:
            conn.execute("insert into ops.push_rejections (platform, reason, body_sha256)"
                         " values (%s, %s, %s)",
                         (platform, reason, sha256(body.decode("utf-8", errors="replace"))))

    def _quarantine(self, platform: str, malformed: list[Malformed]) -> None:
        with psycopg.connect(self.database_url) as conn:
            for bad in malformed:
                log.warning("%s push quarantined: %s", platform, bad.reason)
                conn.execute(
                    "insert into ops.quarantine (platform, shop_id, entity, raw_text, raw_sha256,"
                    " reason, run_id) values (%s, '', 'push', %s, %s, %s, 'intake')"
                    " on conflict (platform, shop_id, entity, raw_sha256, reason) do nothing",
                    (platform, bad.raw_text, sha256(bad.raw_text), bad.reason))

    # -- the app ------------------------------------------------------------------
    def app(self) -> Starlette:
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def lifespan(app):
            await self.connect()
            yield
            await self.close()

        return Starlette(routes=[
            Route("/push/{platform}", self.webhook, methods=["POST"]),
            Route("/delivery/{service}", self.delivery_callback, methods=["POST"]),
            Route("/healthz", self.health, methods=["GET"]),
        ], lifespan=lifespan)


def _apps_by_key(shops, platform_of, conn_id_of, missing: list[str] | None):
    """Per platform (or delivery service), one PushApp per distinct app key
    among the shops' connections, with its shops. A shop whose connection is
    not defined yet is left out (and named in ``missing``): the intake serves
    the shops it can, as a deployment's first start has no connections."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    apps: dict[str, dict[str, tuple[Credentials, set[str]]]] = {}
    for shop in shops:
        key = platform_of(shop)
        if not key:
            continue
        try:
            credentials = Credentials.from_airflow(conn_id_of(shop))
        except AirflowNotFoundException:
            log.warning("no Airflow connection %s: %s/%s is not served (add it, then restart)",
                        conn_id_of(shop), shop.platform, shop.shop_id)
            if missing is not None:
                missing.append(conn_id_of(shop))
            continue
        _, shop_ids = apps.setdefault(key, {}).setdefault(credentials.app_key,
                                                          (credentials, set()))
        shop_ids.add(shop.shop_id)
    return {key: [PushApp(c, frozenset(ids)) for c, ids in by_key.values()]
            for key, by_key in apps.items()}


def push_apps(shops, missing: list[str] | None = None) -> dict[str, list[PushApp]]:
    """The apps each push platform's messages may come from: one per
    distinct app key among the configured shops' connections, with its shops."""
    return _apps_by_key(shops, lambda shop: shop.platform if client_class(
        shop.platform).push_transport else None, lambda shop: shop.conn_id, missing)


def delivery_apps(shops, missing: list[str] | None = None
                  ) -> tuple[dict[str, list[PushApp]], dict[str, dict[str, str]]]:
    """The accounts each delivery service's callbacks may come from (one per
    distinct dev id among the delivering shops' connections, with its shops),
    and per service the shops it delivers for (shop id -> platform)."""
    apps = _apps_by_key(shops, lambda shop: shop.delivery, lambda shop: shop.delivery_conn_id,
                        missing)
    shop_platforms: dict[str, dict[str, str]] = {}
    for service, accounts in apps.items():
        served = {shop_id for app in accounts for shop_id in app.shop_ids}
        shop_platforms[service] = {shop.shop_id: shop.platform for shop in shops
                                   if shop.delivery == service and shop.shop_id in served}
    return apps, shop_platforms


def serve(intake: Intake, host: str = "127.0.0.1", port: int = 8090) -> None:
    """Run the intake on uvicorn in the foreground until interrupted."""
    import uvicorn

    uvicorn.run(intake.app(), host=host, port=port, log_level="warning", access_log=False)
