"""The wide chaos net: the real clients, extraction, landing and repair code
against the sandbox with every fault on, over a whole by-hand run, without
Airflow, and raw compared with the sandbox's truth.

One *world* per seed: the seed also draws the run's shape (a window of one to
three hours somewhere in 9-11 November, starting on or off the hour, with or
without a few hours of history synced first). The shops: two on Tmall (so the
breaker and the learnt clock are shared between shops) and one on each other
platform. The run is the one
``orderhub run`` makes (:func:`orderhub_tools.runner.plan_runs`), each DAG run
replaced by what its extraction tasks call: ``extract_interval`` for an hourly
run, ``repair.plan`` + ``repair.run_job`` for a repair or a span sync; a
failed repair is tried again after the breakers have cooled down, as
``orderhub run`` does. Afterwards every order of the truth must be in raw at
its latest version (its newest raw version has the truth's modified time),
no other order may be there, and no ledger window may be open.

Wall time is virtual (:class:`VirtualClock`): back-offs, throttling bans,
incidents (two minutes each here) and breaker cool-downs advance it without
sleeping, so a seed costs about a second. Everything that happens is decided
by the seed, so a failing seed replays exactly:

    ORDERHUB_CHAOS_SEEDS=1234 .venv/bin/pytest tests/test_chaos_net.py
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from orderhub.config import ExtractionSettings, Shop, parse_time
from orderhub.extract import RetryPolicy, WallClock, extract_interval
from orderhub.landing import OPEN_WINDOW, drop_warehouse
from orderhub.platforms import Credentials
from orderhub.repair import plan_run, run_job
from orderhub_tools.runner import INTERVAL, Step, plan_runs
from orderhub_tools.sandbox import shop_credentials
from orderhub_tools.sandbox.server import SandboxSpec, serve

LAG = timedelta(minutes=3)
SETTLE = timedelta(hours=4)  # late updates appear up to 3 hours after they happen
INCIDENT_SECONDS = 120.0
SCALE = 0.02
# Small pages: paging faults (dup, drift) need several pages per window.
POLICY = RetryPolicy(page_size=10, breaker_cooldown=30)
FIRST_DAY = parse_time("2026-11-09T00:00")


class VirtualClock(WallClock):
    """Wall time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = time.time()
        self._lock = threading.Lock()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(seconds, 0.0)


@dataclass(frozen=True)
class Shape:
    """The run a seed makes: [start, end) after ``history`` synced before it."""

    seed: int
    start: datetime
    end: datetime
    history: timedelta

    @classmethod
    def draw(cls, seed: int) -> Shape:
        rng = random.Random(f"chaos-net|{seed}")
        start = FIRST_DAY + timedelta(hours=rng.randrange(72))
        if rng.random() < 0.5:
            start += timedelta(minutes=rng.randrange(1, 60))
        length = timedelta(hours=rng.randint(1, 2))
        if rng.random() < 0.5:
            length += timedelta(minutes=rng.randrange(1, 60))
        history = timedelta(hours=rng.choice((0, 0, 2, 4)))
        return cls(seed, start, start + length, history)

    def __str__(self) -> str:
        return (f"seed {self.seed}: [{self.start.isoformat()}, {self.end.isoformat()})"
                f" after {self.history.total_seconds() / 3600:.0f} h of history")


@dataclass
class Outcome:
    shape: Shape
    truth_orders: int
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    stale: list = field(default_factory=list)  # (key, raw's newest modified time, the truth's)
    open_windows: list = field(default_factory=list)
    failed_runs: list = field(default_factory=list)
    injected: dict = field(default_factory=dict)  # fault kind -> count, over every shop
    repaired: int = 0  # ledger windows that failed first and were read in full later
    seconds: float = 0.0
    virtual_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.stale or self.open_windows)

    def explain(self) -> str:
        lines = [f"{self.shape}: {self.truth_orders} orders in the truth;"
                 f" missing {len(self.missing)}, unexpected {len(self.unexpected)},"
                 f" stale {len(self.stale)}, open windows {len(self.open_windows)};"
                 f" failed runs {self.failed_runs}"]
        lines += [f"  missing {k}" for k in self.missing[:5]]
        lines += [f"  unexpected {k}" for k in self.unexpected[:5]]
        lines += [f"  stale {k}: raw {a}, truth {b}" for k, a, b in self.stale[:5]]
        lines += [f"  open {w}" for w in self.open_windows[:5]]
        return "\n".join(lines)


def net_shops(shops: list[Shop]) -> list[Shop]:
    """Both shops of the first platform, the first shop of every other."""
    first = shops[0].platform
    chosen = [s for s in shops if s.platform == first]
    for shop in shops:
        if all(c.platform != shop.platform for c in chosen):
            chosen.append(shop)
    return chosen


def _credentials(seed: int, base: str, shops: list[Shop]) -> dict[str, Credentials]:
    return {shop.shop_id: shop_credentials(base, seed, shop.platform, shop.shop_id,
                                           [s.shop_id for s in shops if s.platform == shop.platform])
            for shop in shops}


def _breaker_wait(url: str, clock: VirtualClock) -> float:
    with psycopg.connect(url) as conn:
        until = conn.execute("select max(extract(epoch from opened_until))"
                             " from ops.circuit_breakers").fetchone()[0]
    return max(float(until or 0) - clock.time(), 0.0) + 1


def _execute(step: Step, n: int, attempt: int, shops: list[Shop], url: str, creds: dict,
             clock: VirtualClock) -> bool:
    """What the DAG run's extraction tasks do; True when no window failed."""
    run_id = f"net__{n}__{step.dag_id}"
    common = {"database_url": url, "policy": POLICY, "clock": clock}
    failed = 0
    if step.dag_id == "orders_incremental":
        a, b = step.span
        for shop in shops:
            failed += extract_interval(shop, a, b, run_id=run_id, credentials=creds[shop.shop_id],
                                       settings=ExtractionSettings(safety_lag=LAG),
                                       **common).windows_failed
    else:  # what the repair DAG's plan_repairs task plans for this run
        for job in plan_run(step.conf_for(attempt), step.at - INTERVAL, step.at, url=url,
                            shops=shops):
            shop_id = job["shop"]["shop_id"]
            failed += run_job(job, run_id, credentials=creds[shop_id], **common).windows_failed
    return failed == 0


def raw_latest(url: str) -> dict[tuple[str, str, str], datetime]:
    """(platform, shop, order) -> the newest modified time landed in raw."""
    with psycopg.connect(url) as conn:
        return {(platform, shop, order): modified for platform, shop, order, modified in
                conn.execute("select platform, shop_id, order_id, max(modified_at)"
                             " from raw.orders group by 1, 2, 3")}


def run_world(seed: int, url: str, shops: list[Shop], scale: float = SCALE) -> Outcome:
    """One seed's whole run, on a fresh warehouse at ``url``."""
    began = time.monotonic()
    shape = Shape.draw(seed)
    drop_warehouse(url)
    clock = VirtualClock()
    virtual_start = clock.time()
    spec = SandboxSpec(seed=seed, shops=[(s.platform, s.shop_id) for s in shops], scale=scale,
                       faults="all", incident_seconds=INCIDENT_SECONDS)
    server = serve(spec, monotonic=clock.monotonic)
    failed_runs = []
    try:
        creds = _credentials(seed, f"http://127.0.0.1:{server.server_address[1]}", shops)
        steps = plan_runs(shape.start, shape.end, lag=LAG, history=shape.history, settle=SETTLE)
        for n, step in enumerate(steps):
            for attempt in range(step.attempts):
                if attempt:
                    clock.sleep(_breaker_wait(url, clock))
                server.sandbox.clock.set(step.clock.timestamp())
                if _execute(step, n, attempt + 1, shops, url, creds, clock):
                    break
                failed_runs.append(f"{step.dag_id} #{n} attempt {attempt + 1}")
        world = server.sandbox.world
        injected: dict[str, int] = {}
        for faults in server.sandbox.faults.values():
            for kind, count in faults.injected.items():
                injected[kind] = injected.get(kind, 0) + count
    finally:
        server.shutdown()
        server.server_close()
    synced_from = shape.start - shape.history
    truth = {(r["platform"], r["shop_id"], r["order_id"]): r["updated_at"]
             for r in world.truth(int(synced_from.timestamp()), int(shape.end.timestamp()))}
    landed = raw_latest(url)
    with psycopg.connect(url) as conn:
        open_windows = conn.execute(
            f"select platform, shop_id, window_start, window_end, outcome, last_error"
            f" from ops.extraction_windows where {OPEN_WINDOW}").fetchall()
        repaired = conn.execute("select count(*) from ops.extraction_windows"
                                " where first_outcome <> 'ok' and outcome = 'ok'").fetchone()[0]
    outcome = Outcome(shape, len(truth), open_windows=open_windows, failed_runs=failed_runs,
                      injected=injected, repaired=repaired)
    outcome.missing = sorted(set(truth) - set(landed))
    outcome.unexpected = sorted(set(landed) - set(truth))
    outcome.stale = sorted((k, landed[k], datetime.fromtimestamp(truth[k], UTC))
                           for k in set(truth) & set(landed)
                           if int(landed[k].timestamp()) != truth[k])
    outcome.seconds = time.monotonic() - began
    outcome.virtual_seconds = clock.time() - virtual_start
    return outcome


# -- many seeds at once: worker processes, a database each ------------------------

def _worker(args: tuple[list[int], str, list[Shop]]) -> list[Outcome]:
    import logging

    logging.disable(logging.CRITICAL)  # the outcome says what went wrong
    seeds, url, shops = args
    return [run_world(seed, url, shops) for seed in seeds]


def run_worlds(seeds: list[int], urls: list[str], shops: list[Shop]) -> list[Outcome]:
    """Every seed, spread over one worker process per database URL."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    chunks = [seeds[i::len(urls)] for i in range(len(urls))]
    with ProcessPoolExecutor(len(urls), mp_context=get_context("spawn")) as pool:
        results = pool.map(_worker, [(chunk, url, shops) for chunk, url in zip(chunks, urls,
                                                                              strict=True)])
        return [outcome for chunk in results for outcome in chunk]
