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

from orderhub_tools.sandbox.faults import ALL, chance

PUSH_FAULTS = ("lost", "dup", "disorder", "burst", "storm", "forged", "malformed")
PUSH = "push"  # the profile of push faults only (ALL includes them)
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
    BATCH = 50  # messages per POST

    def __init__(self, sandbox, targets: dict[str, str], start: float, profile: str,
                 end: float | None = None):
        super().__init__(name="orderhub-sandbox-pusher", daemon=True)
        self.sandbox = sandbox
        self.clock = sandbox.clock
        self.seed = sandbox.spec.seed
        self.gateways = {gw.platform: gw for gw in sandbox.gateways
                         if gw.platform in targets and hasattr(gw, "push_item")}
        self.targets = {p: url for p, url in targets.items() if p in self.gateways}
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

    # -- control ---------------------------------------------------------------
    def stop_at(self, end: float) -> None:
        with self.lock:
            self.end = end

    def close(self) -> None:
        self.closed.set()

    def stats(self) -> dict:
        with self.lock:
            pushed = sorted(self.orders_pushed) if len(self.orders_pushed) <= 5000 else None
            return {**self.counts, "pending": len(self.pending), "orders_pushed": pushed,
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

    def _emit(self, start: int, end: int) -> None:
        """Schedule a message for every version modified in [start, end)."""
        wall = time.monotonic()
        speed = self.clock.speed or 1.0
        for platform, shop_id in self.shops:
            gateway = self.gateways[platform]
            hour = start - start % HOUR
            while hour < end:
                for at, order, version in self._hour_events(platform, shop_id, hour):
                    if start <= at < end:
                        msg_id, item = gateway.push_item(order, version)
                        if self._schedule(platform, shop_id, msg_id, item, at, wall, speed):
                            self.orders_pushed.add((platform, shop_id, order.order_id))
                hour += HOUR

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
        draw = self._has("forged", msg_id)
        if draw is not None and draw < 0.06:
            self.counts["forged"] += 1
            fake = dict(item, msg_id="F" + msg_id,
                        data=item["data"].replace('"p_id":', '"p_id":9'))  # no such order
            self._push(Delivery(wall + delay, next(self.seq), platform, "F" + msg_id, fake,
                                forged=True))
        draw = self._has("malformed", msg_id)
        if draw is not None and draw < 0.05:
            self.counts["malformed"] += 1
            body = (b'[{"tag":"101","msg_id":"M' + msg_id.encode() + b'","data":"{not json'
                    if draw < 0.025 else
                    b'[{"tag":"101","msg_id":"M' + msg_id.encode() + b'","data":"{}"}]')
            self._push(Delivery(wall + delay, next(self.seq), platform, "M" + msg_id, raw=body))
        return True

    def _push(self, delivery: Delivery) -> None:
        with self.lock:
            heapq.heappush(self.heap, delivery)
            if not delivery.forged:
                self.pending.add(delivery.msg_id)

    # -- delivery -------------------------------------------------------------------
    def _deliver_due(self) -> None:
        now = time.monotonic()
        due: list[Delivery] = []
        with self.lock:
            while self.heap and self.heap[0].due <= now:
                due.append(heapq.heappop(self.heap))
        plain = [d for d in due if d.item is not None and not d.forged]
        for i in range(0, len(plain), self.BATCH):
            self._send(plain[i:i + self.BATCH])
        for odd in (d for d in due if d.item is None or d.forged):
            self._send([odd])

    def _send(self, batch: list[Delivery]) -> None:
        first = batch[0]
        gateway = self.gateways[first.platform]
        headers, body = gateway.push_request([d.item for d in batch if d.item is not None],
                                             forge=first.forged, raw=first.raw)
        self.counts["posts"] += 1
        answered = True
        try:
            answer = self.session.post(self.targets[first.platform], data=body, headers=headers,
                                       timeout=10)
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
                self.counts["acked"] += 1
                with self.lock:
                    self.pending.discard(d.msg_id)
                if d.storm:
                    self.counts["storm_redeliveries"] += 1
                    self._push(Delivery(now + 0.2, next(self.seq), d.platform, d.msg_id, d.item,
                                        raw=d.raw, storm=d.storm - 1))
            else:
                d.tries += 1
                self.counts["redelivered"] += 1
                d.due = now + min(0.5 * 2 ** (d.tries - 1), 10.0)
                d.seq = next(self.seq)
                self._push(d)
