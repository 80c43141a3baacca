"""``orderhub intake``: receives the platforms' push messages and puts them
on NATS JetStream, nothing else.

An ASGI app (Starlette) on uvicorn. ``POST /push/<platform>`` is a
platform's webhook (Douyin); the platform's client verifies the signature
against the apps of the configured shops and reads the messages out of the
body. Each message is published to ``push.<platform>.<shop_id>`` with the
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
from orderhub.push.messages import Malformed, PushRejected

log = logging.getLogger("orderhub.intake")
PUBLISH_TIMEOUT = 5.0


@dataclass
class Intake:
    nats_url: str
    database_url: str
    apps: dict[str, list[Credentials]]  # platform -> the apps its pushes may come from
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self):
        self.nc = None
        self.js = None
        with psycopg.connect(self.database_url) as conn:
            ensure_schema(conn)

    async def connect(self) -> None:
        self.nc = await broker.connect(self.nats_url, "intake")
        self.js = self.nc.jetstream(timeout=PUBLISH_TIMEOUT)
        await ensure_stream(self.js)

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()

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
        try:
            verified = client.verify_push(headers, body, self.apps[platform])
        except PushRejected as rejected:
            self.counts["rejected"] += 1
            await asyncio.to_thread(self._reject, platform, str(rejected), body)
            return JSONResponse(client.push_refusal, status_code=401)
        messages, malformed = client.push_messages(body)
        if malformed:
            self.counts["malformed"] += len(malformed)
            await asyncio.to_thread(self._quarantine, platform, malformed)
        try:
            await asyncio.gather(*(
                self.js.publish(m.subject, m.encode(),
                                headers={"Nats-Msg-Id": f"{m.platform}:{m.msg_id}"})
                for m in messages))
        except Exception as error:  # noqa: BLE001 - any broker failure: the platform redelivers
            self.counts["broker_unavailable"] += 1
            log.warning("publish failed (%s): answering 503, the platform redelivers",
                        type(error).__name__)
            return JSONResponse({"code": 503, "msg": "broker unavailable"}, status_code=503)
        self.counts["published"] += len(messages)
        return JSONResponse(verified.answer)

    async def health(self, request: Request) -> JSONResponse:
        up = self.nc is not None and self.nc.is_connected
        return JSONResponse({"broker": "connected" if up else "down", **self.counts},
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
            Route("/healthz", self.health, methods=["GET"]),
        ], lifespan=lifespan)


def push_apps(shops) -> dict[str, list[Credentials]]:
    """The apps each push platform's messages may come from: one per
    distinct app key among the configured shops' connections."""
    apps: dict[str, dict[str, Credentials]] = {}
    for shop in shops:
        if client_class(shop.platform).push_transport:
            credentials = Credentials.from_airflow(shop.conn_id)
            apps.setdefault(shop.platform, {})[credentials.app_key] = credentials
    return {platform: list(by_key.values()) for platform, by_key in apps.items()}


def serve(intake: Intake, host: str = "127.0.0.1", port: int = 8090) -> None:
    """Run the intake on uvicorn in the foreground until interrupted."""
    import uvicorn

    uvicorn.run(intake.app(), host=host, port=port, log_level="warning", access_log=False)
