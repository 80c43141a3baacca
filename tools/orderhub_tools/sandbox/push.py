"""Live mode: the sandbox pushes the world's changes as they happen.

The clock runs from a start at ``speed`` x wall time; every API-visible
version whose modified time the clock passes becomes one push message on the
platform's channel (a gateway with ``push_item``/``push_request``; Douyin:
HTTP POST webhooks). A message names the order and its status only; the
receiver fetches the detail through the platform's detail API.

Delivery is at least once, as the platforms promise: a message not
acknowledged (an error answer, a refused connection, a timeout) is sent again
with a growing pause (0.5 s doubling to 10 s), until it is. Nothing promises
order or arrival. Push faults (profile ``push``, or ``all``), decided per
message by hashing (seed, kind, message id), so a seed replays the same:

| fault     | what happens                                                      |
|-----------|-------------------------------------------------------------------|
| lost      | 5 % of messages are never sent (the poll must find those orders)  |
| dup       | 5 % are sent twice, the copy 0.5-2 s later                        |
| disorder  | 10 % are held 1-5 s, so later changes arrive first                |
| burst     | a tenth of the (sandbox) minutes of a shop go out all at once,    |
|           | 3 s after their minute ends                                       |
| storm     | 8 % are redelivered three more times after they were acknowledged |
| forged    | 6 % bring a forged message (wrong signature, an order that does   |
|           | not exist) along                                                  |
| malformed | 5 % bring a signed body that is not a valid message along         |

The span ends at ``end``: the clock freezes there and no later change is
pushed; what is not yet acknowledged keeps being redelivered.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests

from orderhub_tools.sandbox.faults import ALL, PUSH, chance

PUSH_FAULTS = ("lost", "dup", "disorder", "burst", "storm", "forged", "malformed")
HOUR = 3600


def push_faults(profile: str) -> frozenset[str]:
    return frozenset(PUSH_FAULTS) if profile in (ALL, PUSH) else frozenset()


@dataclass(order=True)
class Delivery:
    due: float  # time.monotonic() when it goes out
    seq: int
    platform: str = field(compare=False)
    msg_id: str = field(compare=False)
    item: dict | None = field(compare=False, default=None)  # None: a raw body (malformed)
    raw: bytes | None = field(compare=False, default=None)
    forged: bool = field(compare=False, default=False)
    tries: int = field(compare=False, default=0)
    storm: int = field(compare=False, default=0)  # redeliveries still to come after the ack


class Pusher(threading.Thread):
    ACK_WAIT = 5.0  # seconds a frame waits for its confirm before it is sent again

    def __init__(self, sandbox, targets: dict[str, str], start: float, profile: str,
                 end: float | None = None):
        super().__init__(name="orderhub-sandbox-pusher", daemon=True)
        self.sandbox = sandbox
        self.clock = sandbox.clock
        self.seed = sandbox.spec.seed
        self.gateways = {gw.platform: gw for gw in sandbox.gateways
                         if gw.platform in targets and gw.push_transport}
        # SF same-city's status callbacks, for the shops it delivers for (issue 19)
        delivery = sandbox.delivery
        if delivery.platform in targets and delivery.shops:
            self.gateways[delivery.platform] = delivery
        self.delivery_shops = sorted(delivery.shops) if delivery.platform in self.gateways else []
        self.targets = {p: url for p, url in targets.items() if p in self.gateways}
        # Long connections: the receiver connects to sandbox.channels; the
        # targets name these platforms, with no URL.
        self.channels = sandbox.channels
        self.channel_platforms = {p for p, gw in self.gateways.items()
                                  if gw.push_transport == "websocket"}
        self.inflight: dict[str, tuple[list[Delivery], float]] = {}  # written, not confirmed
        self.shops = [(p, s) for p, s in sandbox.spec.shops if p in self.gateways]
        self.faults = push_faults(profile)
        self.cursor = int(start)
        self.end = end
        self.heap: list[Delivery] = []
        self.seq = itertools.count()
        self.counts: Counter = Counter()
        self.pending: set[str] = set()  # message ids sent or due, not yet acknowledged
        self.orders_pushed: set[tuple[str, str, str]] = set()  # with a message not lost
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.session = requests.Session()
        self._hours: dict[tuple[str, str, int], list] = {}
        self.wall_start: float | None = None  # time.time() when the clock started

    # -- control ---------------------------------------------------------------
    def prepare(self) -> None:
        """Generate the first hour's changes before the clock starts, so the
        first messages do not wait for the world to be generated."""
        hour = self.cursor - self.cursor % HOUR
        for platform, shop_id in self.shops:
            self._hour_events(platform, shop_id, hour)
        for shop_id in self.delivery_shops:
            self._delivery_events(shop_id, hour)

    def stop_at(self, end: float) -> None:
        with self.lock:
            self.end = end

    def close(self) -> None:
        self.closed.set()

    def stats(self) -> dict:
        with self.lock:
            pushed = sorted(self.orders_pushed) if len(self.orders_pushed) <= 5000 else None
            return {**self.counts, "pending": len(self.pending), "orders_pushed": pushed,
                    "orders": len(self.orders_pushed),
                    # time.time() when the clock started, in microseconds (the
                    # sandbox's JSON carries no floats)
                    "wall_start_us": None if self.wall_start is None
                    else int(self.wall_start * 1e6),
                    "cursor": self.cursor, "end": None if self.end is None else int(self.end),
                    "faults": sorted(self.faults)}

    # -- the loop ----------------------------------------------------------------
    def run(self) -> None:
        while not self.closed.is_set():
            with self.lock:
                end = self.end
            if end is not None and self.cursor >= end:  # the span is over: redeliveries only
                self._deliver_due()
                time.sleep(0.02)
                continue
            now = self.clock.exact()
            if end is not None and now >= end:
                self.clock.set(end)  # the span is over: the clock stops at its end, once
                now = end
            upto = int(now)
            if upto > self.cursor:
                self._emit(self.cursor, upto)
                self.cursor = upto
            self._deliver_due()
            time.sleep(0.02)

    def _hour_events(self, platform: str, shop_id: str, hour: int) -> list:
        key = (platform, shop_id, hour)
        if key not in self._hours:
            self._hours[key] = self.sandbox.world.events_between(platform, shop_id, hour,
                                                                 hour + HOUR)
        return self._hours[key]

    def _delivery_events(self, shop_id: str, hour: int) -> list:
        key = ("delivery", shop_id, hour)
        if key not in self._hours:
            self._hours[key] = self.sandbox.delivery.delivery_events(shop_id, hour, hour + HOUR)
        return self._hours[key]

    def _emit(self, start: int, end: int) -> None:
        """Schedule a message for every version modified in [start, end)."""
        wall = time.monotonic()
        speed = self.clock.speed or 1.0
        for platform, shop_id in self.shops:
            hour = start - start % HOUR
            while hour < end:
                for at, order, version in self._hour_events(platform, shop_id, hour):
                    if start <= at < end:
                        self._emit_one(platform, shop_id, order, version, at, wall, speed)
                hour += HOUR
            stock = self.sandbox.world.stock
            if stock is not None:  # a flash sale's orders, decided as time passes
                for at, order, version in stock.events_between(platform, shop_id, start, end):
                    self._emit_one(platform, shop_id, order, version, at, wall, speed)
        delivery = self.sandbox.delivery
        for shop_id in self.delivery_shops:  # SF same-city's status callbacks
            hour = start - start % HOUR
            while hour < end:
                for at, item, index in self._delivery_events(shop_id, hour):
                    if start <= at < end:
                        msg_id, body = delivery.callback_item(item, index)
                        self._schedule(delivery.platform, shop_id, msg_id, body, at, wall, speed)
                hour += HOUR

    def _emit_one(self, platform, shop_id, order, version, at, wall, speed) -> None:
        msg_id, item = self.gateways[platform].push_item(order, version)
        if self._schedule(platform, shop_id, msg_id, item, at, wall, speed):
            self.orders_pushed.add((platform, shop_id, order.order_id))

    def _has(self, fault: str, *parts) -> float | None:
        """The fault's draw for these parts if the fault is on, else None."""
        return chance(self.seed, "push", fault, *parts) if fault in self.faults else None

    def _schedule(self, platform, shop_id, msg_id, item, at, wall, speed) -> bool:
        """Schedule one message's deliveries; False if the fault lost it."""
        self.counts["messages"] += 1
        lost = self._has("lost", msg_id)
        if lost is not None and lost < 0.05:
            self.counts["lost"] += 1
            return False
        delay = 0.0
        draw = self._has("disorder", msg_id)
        if draw is not None and draw < 0.10:
            delay = 1 + 4 * draw / 0.10
            self.counts["disordered"] += 1
        draw = self._has("burst", shop_id, at // 60)
        if draw is not None and draw < 0.10:
            delay = max(delay, (60 - at % 60) / speed + 3)
            self.counts["in_bursts"] += 1
        storm = self._has("storm", msg_id)
        storm = 3 if storm is not None and storm < 0.08 else 0
        self._push(Delivery(wall + delay, next(self.seq), platform, msg_id, item, storm=storm))
        draw = self._has("dup", msg_id)
        if draw is not None and draw < 0.05:
            self.counts["duplicated"] += 1
            self._push(Delivery(wall + delay + 0.5 + 1.5 * draw / 0.05, next(self.seq),
                                platform, msg_id, item))
        gateway = self.gateways[platform]
        draw = self._has("forged", msg_id)
        if draw is not None and draw < 0.06:
            self.counts["forged"] += 1
            if gateway.push_transport == "websocket":
                self.counts["forged_on_channels"] += 1
            self._push(Delivery(wall + delay, next(self.seq), platform, "F" + msg_id,
                                gateway.push_forged(item), forged=True))
        draw = self._has("malformed", msg_id)
        if draw is not None and draw < 0.05:
            self.counts["malformed"] += 1
            self._push(Delivery(wall + delay, next(self.seq), platform, "M" + msg_id,
                                raw=gateway.push_malformed(msg_id, draw < 0.025)))
        return True

    def _push(self, delivery: Delivery) -> None:
        with self.lock:
            heapq.heappush(self.heap, delivery)
            # A forger does not retry a webhook; on a long connection a forged
            # message is the platform's own, redelivered until confirmed.
            if not delivery.forged or delivery.platform in self.channel_platforms:
                self.pending.add(delivery.msg_id)

    # -- delivery -------------------------------------------------------------------
    def _deliver_due(self) -> None:
        now = time.monotonic()
        due: list[Delivery] = []
        with self.lock:
            while self.heap and self.heap[0].due <= now:
                due.append(heapq.heappop(self.heap))
            for msg_id in [m for m, (_, deadline) in self.inflight.items() if deadline <= now]:
                # written on a connection, not confirmed in time: send again
                for d in self.inflight.pop(msg_id)[0]:
                    self._retry_later(d, now, locked=True)
        hooks = [d for d in due if d.platform not in self.channel_platforms]
        for platform in sorted({d.platform for d in hooks}):
            plain = [d for d in hooks if d.platform == platform and d.item is not None
                     and not d.forged]
            size = self.gateways[platform].push_batch  # Douyin an array, Meituan one order
            for i in range(0, len(plain), size):
                self._post(plain[i:i + size])
        for odd in (d for d in hooks if d.item is None or d.forged):
            self._post([odd])
        for d in due:
            if d.platform in self.channel_platforms:
                self._write(d)

    def _retry_later(self, d: Delivery, now: float, locked: bool = False) -> None:
        d.tries += 1
        self.counts["redelivered"] += 1
        d.due = now + min(0.5 * 2 ** (d.tries - 1), 10.0)
        d.seq = next(self.seq)
        if locked:
            heapq.heappush(self.heap, d)
        else:
            self._push(d)

    def _done(self, d: Delivery, now: float) -> None:
        """The receiver acknowledged ``d``: a storm sends it again anyway."""
        self.counts["acked"] += 1
        with self.lock:
            self.pending.discard(d.msg_id)
        if d.storm:
            self.counts["storm_redeliveries"] += 1
            self._push(Delivery(now + 0.2, next(self.seq), d.platform, d.msg_id, d.item,
                                raw=d.raw, storm=d.storm - 1))

    # -- webhooks: POST, the answer acknowledges ---------------------------------------
    def _post(self, batch: list[Delivery]) -> None:
        first = batch[0]
        gateway = self.gateways[first.platform]
        headers, body = gateway.push_request([d.item for d in batch if d.item is not None],
                                             forge=first.forged, raw=first.raw,
                                             url=self.targets[first.platform])
        self.counts["posts"] += 1
        answered = True
        target = gateway.push_target(self.targets[first.platform], body, forge=first.forged)
        try:
            answer = self.session.post(target, data=body, headers=headers, timeout=10)
            acked = gateway.push_acked(answer.status_code, answer.text)
        except requests.RequestException:
            acked = answered = False
        if first.forged:  # a forger does not retry; the receiver must refuse it
            self.counts["forged_accepted" if acked else "forged_refused" if answered
                        else "forged_unanswered"] += 1
            return
        now = time.monotonic()
        for d in batch:
            if acked:
                self._done(d, now)
            else:
                self._retry_later(d, now)

    # -- long connections: write a frame, a confirm frame acknowledges ----------------
    def _write(self, d: Delivery) -> None:
        gateway = self.gateways[d.platform]
        text = d.raw.decode() if d.raw is not None else gateway.push_frame(d.item)
        now = time.monotonic()
        with self.lock:  # before the write: its confirm can come back before send returns
            waiting, _ = self.inflight.get(d.msg_id, ([], 0.0))
            self.inflight[d.msg_id] = ([*waiting, d], now + self.ACK_WAIT)
        if not self.channels.send(d.platform, text):  # no connection open: later
            with self.lock:
                waiting, deadline = self.inflight.pop(d.msg_id, ([], 0.0))
                rest = [other for other in waiting if other is not d]
                if rest:
                    self.inflight[d.msg_id] = (rest, deadline)
            self._retry_later(d, now)
            return
        self.counts["frames"] += 1

    def acked(self, platform: str, msg_id: str) -> None:
        """A confirm/ack frame came in (sandbox/channels.py, its thread)."""
        with self.lock:
            waiting, _ = self.inflight.pop(msg_id, ([], 0.0))
        now = time.monotonic()
        for d in waiting:
            self._done(d, now)
