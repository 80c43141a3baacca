"""Fault profiles: the ways real gateways misbehave, deterministic per seed.

Select with ``orderhub sandbox serve --faults PROFILE`` or ``orderhub demo
--faults PROFILE``; a shops file may also give each shop its own profile
(``faults:`` key), which is how the chaos suite runs every profile at once.

| profile   | what the gateway does                                                      |
|-----------|----------------------------------------------------------------------------|
| none      | behaves                                                                    |
| flaky     | scattered HTTP 500/502/503 (15 % of requests)                               |
| incident  | a burst of HTTP 504 for every request, lasting ``incident_seconds`` of wall |
|           | time, a few requests into a run (in half the runs: one per clock setting)  |
| throttle  | the platform's own throttling answer with a ban time (15 % of requests)     |
| drift     | the index trails more than the safety lag and catches up as time passes   |
|           | (the shop's searches at one clock setting stand in for time): the first    |
|           | requests see an older state, so orders move across pages between requests |
| late      | some updates become visible 1-3 hours after their modified time            |
| truncated | cut-off JSON bodies with HTTP 200 (12 % of responses)                       |
| dup       | the same order on two pages                                                |
| skew      | the gateway's clock is 15 minutes ahead or behind (one direction per       |
|           | platform and seed: a platform has one clock): requests stamped with the    |
|           | caller's clock are refused until it syncs to the ``Date`` header           |
| all       | everything above                                                           |
| outage    | (not in ``all``) HTTP 504 for every request, for good: a fault that        |
|           | outlasts every retry and repair, to show how a run that cannot complete    |
|           | reports what is still open                                                 |
| lost      | (not in ``all``) the gateway does the work, then the answer is lost: HTTP  |
|           | 504 after handling (30 % of requests). A read loses nothing; a write (a    |
|           | stock call) has happened although the caller cannot know it                |

Request-count faults (flaky, throttle, truncated) are decided by hashing
(seed, shop, request number), so a sequential run meets the same faults.
Incidents last ``incident_seconds`` of wall time as ``monotonic`` tells it:
the extraction-level chaos tests pass a virtual clock, so an incident of
minutes costs them no real time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

PROFILES = ("none", "flaky", "incident", "throttle", "drift", "late", "truncated", "dup", "skew")
ALL = "all"
OUTAGE = "outage"  # not part of ALL: it never recovers
LOST = "lost"  # not part of ALL: the order chaos suite's reads would only get slower
PUSH = "push"  # push faults only (sandbox/push.py), no gateway fault; ALL has both
CHOICES = (*PROFILES, ALL, OUTAGE, LOST, PUSH)
LATE_MIN, LATE_MAX = 3600, 3 * 3600
# A late version stays the order's latest for at least this long after it
# becomes visible, so an hourly repair can see it (docs/sandbox.md).
LATE_QUIET = 4 * 3600
DRIFT_SPAN, DRIFT_STEP = 6 * 60, 2 * 60
SKEW = 15 * 60


def expand(profile: str) -> frozenset[str]:
    if profile == ALL:
        return frozenset(PROFILES) - {"none"}
    if profile not in CHOICES:
        raise ValueError(f"unknown fault profile {profile!r}; choose from {CHOICES}")
    return frozenset() if profile in ("none", PUSH) else frozenset({profile})


def chance(*parts: object) -> float:
    """A deterministic number in [0, 1) for these parts."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class ShopFaults:
    """The faults of one shop's gateway, with the little state they need."""

    seed: int
    shop_id: str
    kinds: frozenset[str]
    incident_seconds: float = 90.0
    platform: str = ""
    monotonic: Callable[[], float] = time.monotonic
    requests: int = 0
    _incident_until: float = 0.0
    _incident_clocks: set = field(default_factory=set)
    _searches: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    injected: Counter = field(default_factory=Counter)  # what this shop's gateway did, by kind

    def note(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] += 1

    def __contains__(self, kind: str) -> bool:
        return kind in self.kinds

    def next_request(self, clock_value: int) -> tuple[int, str | None]:
        """Count a request; returns (its number, an injected failure or None)."""
        with self._lock:
            self.requests += 1
            n = self.requests
            now = self.monotonic()
            if OUTAGE in self.kinds:
                self.injected[OUTAGE] += 1
                return n, "incident"
            if "incident" in self.kinds:
                if now < self._incident_until:
                    self.injected["incident"] += 1
                    return n, "incident"
                if (clock_value not in self._incident_clocks and n % 7 == 3
                        and chance(self.seed, self.shop_id, "incident", clock_value) < 0.5):
                    self._incident_clocks.add(clock_value)
                    self._incident_until = now + self.incident_seconds
                    self.injected["incident"] += 1
                    return n, "incident"
        if "flaky" in self.kinds and chance(self.seed, self.shop_id, "flaky", n) < 0.15:
            self.note("flaky")
            return n, "flaky"
        if "throttle" in self.kinds and chance(self.seed, self.shop_id, "throttle", n) < 0.15:
            self.note("throttle")
            return n, "throttle"
        return n, None

    def lose_answer(self, n: int) -> bool:
        """Whether the answer to request ``n``, already handled, is lost."""
        lost = LOST in self.kinds and chance(self.seed, self.shop_id, LOST, n) < 0.3
        if lost:
            self.note(LOST)
        return lost

    def truncate(self, n: int) -> bool:
        cut = "truncated" in self.kinds and chance(self.seed, self.shop_id, "truncated", n) < 0.12
        if cut:
            self.note("truncated")
        return cut

    def drift_lag(self, clock_value: int) -> int:
        """Seconds the index still trails at this moment: it catches up as time
        passes. The sandbox clock stands still during a run, so the shop's
        searches at one clock setting stand in for time: each brings the index
        one step closer, whatever window it asks for."""
        if "drift" not in self.kinds:
            return 0
        with self._lock:
            count = self._searches.get(clock_value, 0)
            self._searches[clock_value] = count + 1
        lag = max(0, DRIFT_SPAN - DRIFT_STEP * count)
        if lag:
            self.note("drift")
        return lag

    def clock_offset(self) -> int:
        """The gateway's clock minus the sandbox clock: the platform's, so every
        skewed shop of one platform sees the same clock."""
        if "skew" not in self.kinds:
            return 0
        return SKEW if chance(self.seed, self.platform, "skew") < 0.5 else -SKEW

    def late_delay(self, order_id: str, version: int, modified: int, next_modified: int | None) -> int:
        """Extra visibility delay of one version (0 for most)."""
        if "late" not in self.kinds:
            return 0
        if chance(self.seed, order_id, version, "late") >= 0.06:
            return 0
        delay = LATE_MIN + int(chance(self.seed, order_id, version, "delay") * (LATE_MAX - LATE_MIN))
        if next_modified is not None and next_modified < modified + delay + LATE_QUIET:
            return 0
        self.note("late")
        return delay
