"""``orderhub stream``: the JetStream consumer that lands pushed orders.

A durable pull consumer (``orderhub-stream``; any number of ``orderhub
stream`` processes share it, each message going to one of them) takes
messages in micro-batches. For each batch it fetches every named order once
through the platform's detail API, with the same client, retries, backoff,
breaker and platform clock as the poll (orderhub.extract), lands the details
through the same loader into the same raw table (``intake = 'push'``; a
version the poll landed first stays the poll's, and the reverse), and acks
the messages only after the landing transaction committed. A crash at any
point leaves the batch unacknowledged; JetStream redelivers it after
``ACK_WAIT``, and landing it again adds nothing.

A delivery service's status callback (topic ``delivery:<service>``, issue
19) is landed the same way: the service is asked about the delivery of the
shop order it names (orderhub.delivery), into raw.deliveries.

A detail call that still fails after its retries: the message is nak'ed
with a delay and comes back; at ``MAX_DELIVER`` deliveries it is terminated,
with a quarantine row saying so, and left to the poll, which is the net for
whatever push loses (docs/push.md). A detail
the platform refuses outright (no such order for this shop) is quarantined
with the reason and acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from orderhub.config import Shop
from orderhub.extract import Breaker, PlatformClock, RetryPolicy, WindowFetch, to_rows
from orderhub.landing import Rejected, WindowLoad, ensure_schema, land, register_shop, sha256
from orderhub.platforms import client_class, client_for
from orderhub.platforms.base import Credentials, PlatformError
from orderhub.push import broker
from orderhub.push.broker import CONSUMER, STREAM, SUBJECTS, ensure_stream
from orderhub.push.messages import PushMessage
from orderhub.push.watch import LagWatch, sync_delay_alerts

log = logging.getLogger("orderhub.stream")
ACK_WAIT = 60.0  # seconds before an unacknowledged message is delivered again
MAX_DELIVER = 20
NAK_DELAY = 5.0
FETCHERS = 4
WATCH_EVERY = 10.0  # seconds between checks of the push path's alerts


def fetchers() -> int:
    """``ORDERHUB_STREAM_FETCHERS``: detail calls in flight per consumer (default 4)."""
    return max(1, int(os.environ.get("ORDERHUB_STREAM_FETCHERS") or FETCHERS))


def ack_wait() -> float:
    """``ORDERHUB_STREAM_ACK_WAIT`` (seconds) when the consumer is created, else ACK_WAIT."""
    return float(os.environ.get("ORDERHUB_STREAM_ACK_WAIT") or ACK_WAIT)


@dataclass
class BatchResult:
    landed: int = 0  # new raw rows
    orders: int = 0
    retry: list = field(default_factory=list)  # messages to deliver again
    done: list = field(default_factory=list)  # messages to acknowledge


class Stream:
    """Lands the orders the push messages name; one warehouse connection."""

    def __init__(self, shops: list[Shop], database_url: str, nats_url: str, *,
                 batch: int = 200, wait: float = 0.2, policy: RetryPolicy | None = None,
                 credentials: dict[str, Credentials] | None = None):
        self.url = database_url
        self.nats_url = nats_url
        self.batch = batch
        self.wait = wait
        self.policy = policy or RetryPolicy.from_env()
        self.shops = {(s.platform, s.shop_id): s for s in shops
                      if client_class(s.platform).push_transport or s.delivery}
        self._credentials = credentials or {}
        self.clients: dict = {}
        self.conn = psycopg.connect(self.url)
        self.shared = psycopg.connect(self.url, autocommit=True)
        ensure_schema(self.conn)
        for shop in self.shops.values():
            register_shop(self.conn, shop.platform, shop.shop_id, name=shop.name,
                          conn_id=shop.conn_id)
        self.totals = defaultdict(int)
        self.fetchers = ThreadPoolExecutor(fetchers(), thread_name_prefix="orderhub-detail")
        self.lag = LagWatch()
        self.channels = None  # the alert channels, looked up at the first check

    def client(self, shop: Shop, entity: str = "orders"):
        """The shop's platform client, or (``deliveries``) its delivery service's."""
        key = (shop.platform, shop.shop_id, entity)
        if key not in self.clients:
            conn_id = shop.delivery_conn_id if entity == "deliveries" else shop.conn_id
            credentials = self._credentials.get(conn_id) or Credentials.from_airflow(conn_id)
            if entity == "deliveries":
                from orderhub.delivery import service_class

                self.clients[key] = service_class(shop.delivery)(credentials,
                                                                 shop_id=shop.shop_id)
            else:
                self.clients[key] = client_for(shop.platform, credentials)
        return self.clients[key]

    # -- one micro-batch (a worker thread: blocking HTTP and SQL) --------------------
    def land_batch(self, messages: list[tuple[object, PushMessage | None]]) -> BatchResult:
        result = BatchResult()
        by_shop: dict[tuple[str, str, str], dict[str, list]] = defaultdict(
            lambda: defaultdict(list))
        for handle, message in messages:
            # a delivery service's status callback (issue 19), or an order message
            entity = ("deliveries" if message is not None
                      and message.topic.startswith("delivery:") else "orders")
            shop = self.shops.get((message.platform, message.shop_id)) if message else None
            if shop is None or (entity == "deliveries" and not shop.delivery):
                if message is not None:
                    log.warning("push for an unconfigured shop %s/%s: acknowledged, not landed",
                                message.platform, message.shop_id)
                result.done.append(handle)
                continue
            by_shop[(message.platform, message.shop_id, entity)][message.order_id].append(handle)
        for (platform, shop_id, entity), orders in by_shop.items():
            self._land_shop(self.shops[(platform, shop_id)], orders, result, entity)
        return result

    def _land_shop(self, shop: Shop, orders: dict[str, list], result: BatchResult,
                   entity: str = "orders") -> None:
        """Fetch what the messages name (an order's detail, or what the
        delivery service says of its delivery) and land it in one transaction."""
        client = self.client(shop, entity)
        breaker = Breaker(self.shared, client.platform, self.policy)
        platform_clock = PlatformClock(self.shared, client.platform)
        learnt = platform_clock.offset()
        if learnt is not None:
            client.clock_offset = learnt
        fetch = WindowFetch(client, self.policy, breaker, platform_clock)

        def detail(order_id: str):
            try:
                if entity == "deliveries":
                    found, _ = fetch.deliveries([order_id])
                    if not found:
                        raise PlatformError(client.platform, "no-delivery",
                                            "the service carries no such order")
                    return found[0], None
                return fetch.call(lambda: client.order_detail(order_id),
                                  f"detail of {order_id}"), None
            except PlatformError as error:
                return None, error

        payloads, rejected, landed_handles = [], [], []
        # several detail calls in flight (ORDERHUB_STREAM_FETCHERS): the
        # platform answers in parallel; the results keep the messages' order
        for (order_id, handles), (payload, error) in zip(
                orders.items(), self.fetchers.map(detail, list(orders)), strict=True):
            if error is None:
                payloads.append(payload)
                landed_handles.extend(handles)
            else:
                if error.retryable or error.kind in ("deadline", "breaker"):
                    result.retry.extend(handles)
                else:  # the platform says no: keep the reason, the poll is the net
                    what = "delivery" if entity == "deliveries" else "detail"
                    rejected.append(Rejected(f'{{"order_id": "{order_id}"}}',
                                             f"{client.platform} push: {what} of {order_id}"
                                             f" refused: {error}"))
                    landed_handles.extend(handles)
        rows, bad = to_rows(client, payloads, entity)
        load = WindowLoad(shop.platform, shop.shop_id, entity, None, None, "stream",
                          rows=rows, rejected=rejected + bad, intake="push",
                          fetched_at=datetime.fromtimestamp(client.platform_now(), UTC),
                          api_owner=client.platform)
        load.calls, client.api_calls = client.api_calls, []
        result.landed += land(self.conn, load, ledger=False)
        result.orders += len(rows)
        result.done.extend(landed_handles)

    def give_up(self, message: PushMessage, deliveries: int) -> None:
        """The detail still fails after MAX_DELIVER deliveries: say so (a
        quarantine row, which the health marts count and alert on) and leave
        the order to the poll."""
        reason = (f"{message.platform} push: detail of {message.order_id} still failing after"
                  f" {deliveries} deliveries; left to the poll")
        log.error("%s", reason)
        raw = message.encode().decode()
        self.conn.execute(
            "insert into ops.quarantine (platform, shop_id, entity, raw_text, raw_sha256,"
            " reason, run_id) values (%s, %s, 'push', %s, %s, %s, 'stream')"
            " on conflict (platform, shop_id, entity, raw_sha256, reason) do nothing",
            (message.platform, message.shop_id, raw, sha256(raw), reason))
        self.conn.commit()

    # -- the push path's alerts ------------------------------------------------------
    def watch(self, waiting: int) -> list:
        """Record and send the sync_delay and consumer_lag alerts due now."""
        from orderhub.alerts import ALERTS_SQL, send_once

        if self.channels is None:
            self.conn.execute(ALERTS_SQL)
            self.conn.commit()
            try:
                from orderhub.alerts import channels_from_airflow

                self.channels = channels_from_airflow()
            except ImportError:  # no Airflow here: record and log only
                self.channels = []
        alerts = self.lag.check(waiting, datetime.now(UTC)) + sync_delay_alerts(self.conn)
        return send_once(self.conn, alerts, "stream", self.channels)

    # -- the consumer loop ---------------------------------------------------------
    async def run(self, stop: asyncio.Event, on_batch=None) -> None:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig

        nc = await broker.connect(self.nats_url, "stream")
        js = nc.jetstream()
        await ensure_stream(js)
        subscription = await js.pull_subscribe(
            SUBJECTS, durable=CONSUMER, stream=STREAM,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait(),
                                  max_deliver=MAX_DELIVER, max_ack_pending=20_000))
        heartbeat = os.environ.get("ORDERHUB_STREAM_HEARTBEAT")  # compose's health check
        next_watch = 0.0
        try:
            while not stop.is_set():
                if heartbeat:
                    Path(heartbeat).touch()
                if time.monotonic() >= next_watch:  # the push path's alerts (push/watch.py)
                    next_watch = time.monotonic() + WATCH_EVERY
                    try:
                        waiting = (await js.consumer_info(STREAM, CONSUMER)).num_pending
                        await asyncio.to_thread(self.watch, waiting)
                    except nats.errors.Error as error:
                        log.warning("lag check failed (%s)", type(error).__name__)
                try:
                    batch = await subscription.fetch(self.batch, timeout=self.wait)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                except nats.errors.ConnectionClosedError:
                    break
                except nats.errors.Error as error:  # the broker restarting, a leader moving
                    log.warning("fetch failed (%s); trying again", type(error).__name__)
                    await asyncio.sleep(0.5)
                    continue
                decoded = []
                for msg in batch:
                    try:
                        decoded.append((msg, PushMessage.decode(msg.data)))
                    except (ValueError, TypeError) as exc:
                        log.error("unreadable message on %s: %s", msg.subject, exc)
                        decoded.append((msg, None))
                result = await asyncio.to_thread(self.land_batch, decoded)
                named = {id(msg): message for msg, message in decoded}
                try:
                    for msg in result.done:  # after the landing transaction committed
                        await msg.ack()
                    for msg in result.retry:
                        if msg.metadata.num_delivered >= MAX_DELIVER:
                            await asyncio.to_thread(self.give_up, named[id(msg)],
                                                    msg.metadata.num_delivered)
                            await msg.term()
                        else:
                            await msg.nak(delay=NAK_DELAY)
                except nats.errors.Error as error:
                    # Unacknowledged: redelivered after the ack wait, landed again as nothing new.
                    log.warning("ack failed (%s); the batch comes back", type(error).__name__)
                self.totals["messages"] += len(batch)
                self.totals["rows"] += result.landed
                if on_batch:
                    on_batch(result)
        finally:
            # close, not drain: every landed message was acked; the rest come back
            await nc.close()
            self.fetchers.shutdown(wait=False, cancel_futures=True)
            self.conn.close()
            self.shared.close()


async def pending(nats_url: str) -> tuple[int, int, int]:
    """The consumer's messages not yet delivered, those delivered and not yet
    acknowledged, and its pull requests waiting (> 0: a consumer is fetching)."""
    import nats

    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info(STREAM, CONSUMER)
        return info.num_pending, info.num_ack_pending, info.num_waiting or 0
    finally:
        await nc.close()
