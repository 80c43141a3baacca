"""The live segment (issue 17): the sandbox pushes a span of the world as it
happens; ``orderhub intake`` and ``orderhub stream`` (subprocesses, as in
compose) put it through NATS JetStream into raw, where ``marts.live_orders``
shows it at once. Then the poll catches up on the span as the hourly run
would (``orderhub run``: the repair DAG through Airflow).

Used by ``orderhub demo --live`` and ``make run`` (orderhub_tools.demo), the
tests (tests/test_push.py) and the push benchmark.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests

from orderhub.config import REPO_ROOT, home, load_shops
from orderhub.landing import connect, ensure_schema
from orderhub.platforms import client_class
from orderhub.push import broker
from orderhub.push.stream import pending
from orderhub_tools.sandbox.world import STANDARD_COLUMNS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PushStack:
    """NATS (the project's local server unless ORDERHUB_NATS_URL), one intake
    and ``consumers`` stream processes, each a subprocess started the way
    its compose service starts it. ``env`` carries the shops' connections."""

    env: dict[str, str]
    consumers: int = 1
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self):
        self.env = {**os.environ, **self.env}

    @property
    def nats_url(self) -> str:
        return broker.nats_url()

    def targets(self) -> dict[str, str]:
        """Where each configured push platform delivers: the intake's webhook
        URL, or ``websocket`` (the intake holds a connection to the platform);
        and where each delivery service calls back (issue 19)."""
        out = {}
        shops = load_shops()
        for platform in sorted({s.platform for s in shops}):
            transport = client_class(platform).push_transport
            if transport == "webhook":
                out[platform] = f"http://127.0.0.1:{self.port}/push/{platform}"
            elif transport:
                out[platform] = transport
        for service in sorted({s.delivery for s in shops if s.delivery}):  # status callbacks
            out[service] = f"http://127.0.0.1:{self.port}/delivery/{service}"
        return out

    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = open(home() / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "orderhub_tools.cli", *args], env={**self.env, **(env or {})},
            cwd=REPO_ROOT, stdout=log, stderr=log)

    def start_intake(self) -> None:
        """The intake; returns once it answers and holds its long connections."""
        self._spawn("intake", "intake", "--port", str(self.port))
        deadline = time.monotonic() + 60
        while True:
            try:
                health = requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                if health.ok and all(state == "connected"
                                     for state in health.json()["connections"].values()):
                    return
            except requests.RequestException:
                pass
            if self.procs["intake"].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"orderhub intake did not start; see {home() / 'intake.log'}")
            time.sleep(0.2)

    def start_stream(self, index: int = 0, env: dict[str, str] | None = None) -> None:
        """A consumer; returns once a consumer is fetching (its pull requests
        wait on the broker)."""
        name = f"stream-{index}"
        self._spawn(name, "stream", env=env)
        deadline = time.monotonic() + 60
        while True:
            try:
                if asyncio.run(pending(self.nats_url))[2] > 0:
                    return
            except Exception:  # noqa: BLE001, S110 - the consumer is not created yet
                pass
            if self.procs[name].poll() is not None or time.monotonic() > deadline:
                log = home() / f"{name}.log"
                raise RuntimeError(f"orderhub stream did not start; see {log}")
            time.sleep(0.2)

    def start(self) -> PushStack:
        broker.start()
        self.start_intake()
        for i in range(self.consumers):
            self.start_stream(i)
        return self

    def kill(self, name: str) -> None:
        """kill -9, as a crash would."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

    def drained(self, timeout: float = 120.0) -> bool:
        """Wait until the consumer has every message acknowledged."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                waiting, unacked, _ = asyncio.run(pending(self.nats_url))
                if waiting == 0 and unacked == 0:
                    return True
            except Exception:  # noqa: BLE001 - the consumer may not exist yet
                pass
            time.sleep(0.5)
        return False


def ensure_live_view() -> None:
    """marts.live_orders (a view) and what it reads, if no dbt build made them yet."""
    from orderhub.transform import ensure_views

    ensure_views("live_orders")


def live_orders(keys: list[tuple[str, str, str]], columns: list[str]) -> list[dict]:
    """The rows of marts.live_orders for these (platform, shop, order) keys."""
    with connect() as conn:
        conn.execute("create temporary table wanted (platform text, shop_id text, order_id text)"
                     " on commit drop")
        with conn.cursor().copy("copy wanted from stdin") as copy:
            for key in keys:
                copy.write_row(key)
        cur = conn.execute(
            f"select {', '.join('l.' + c for c in columns)} from marts.live_orders l"  # noqa: S608 - fixed column names
            " join wanted using (platform, shop_id, order_id) order by 1, 2, 3")
        return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]


def push_control(sandbox_url: str, path: str = "", payload: dict | None = None,
                 timeout: float = 60) -> dict:
    """The sandbox's pusher: start a span (``payload``; the answer comes once
    the span's first hour of changes is generated), or read its counts."""
    url = f"{sandbox_url}/_sandbox/push{path}"
    answer = (requests.post(url, json=payload, timeout=timeout) if payload is not None
              else requests.get(url, timeout=timeout))
    answer.raise_for_status()
    return answer.json()


@dataclass
class LiveSpan:
    start: datetime
    end: datetime
    pushes: dict  # the sandbox pusher's counts
    drained: bool


def run_live(sandbox_url: str, stack: PushStack, start: datetime, seconds: float, *,
             speed: float = 1.0, faults: str = "none", during=None) -> LiveSpan:
    """Push [start, start + seconds x speed) at ``speed`` x wall time; wait for
    every message to be acknowledged by the intake and then by the stream.
    ``during(elapsed)`` is called about every 0.2 s while the span runs (the
    crash tests kill and restart services from it)."""
    end = start + timedelta(seconds=seconds * speed)
    push_control(sandbox_url, "", {"targets": stack.targets(), "start": start.isoformat(),
                                   "end": end.isoformat(), "speed": speed, "faults": faults})
    began = time.monotonic()
    while True:
        stats = push_control(sandbox_url)
        elapsed = time.monotonic() - began
        if during:
            during(elapsed)
        span_over = stats["cursor"] >= int(end.timestamp())
        if span_over and stats["pending"] == 0:
            break
        if elapsed > seconds + 180:  # a receiver that never acknowledges
            break
        time.sleep(0.2)
    drained = stack.drained()
    return LiveSpan(start, end, push_control(sandbox_url), drained and stats["pending"] == 0)


def push_figures(start: datetime, end: datetime) -> list[tuple]:
    """Per platform, the versions modified in [start, end): how many landed by
    push and by poll, the orders push delivered first and those only the poll
    found, and push intake latency p50 / p95 / max (platform modified time ->
    fetched, on the platform's clock; landing commits within the same batch)."""
    with connect() as conn:
        ensure_schema(conn)
        return conn.execute(
            """
            with versions as (
                select platform, shop_id, order_id, intake, modified_at,
                       extract(epoch from platform_fetched_at - modified_at) as latency
                from raw.orders where modified_at >= %s and modified_at < %s
            ),
            per_order as (
                select platform, shop_id, order_id, bool_or(intake = 'push') as pushed
                from versions group by 1, 2, 3
            )
            select v.platform,
                   count(*) filter (where intake = 'push'),
                   count(*) filter (where intake = 'poll'),
                   (select count(*) from per_order o where o.platform = v.platform and pushed),
                   (select count(*) from per_order o where o.platform = v.platform and not pushed),
                   percentile_cont(0.5) within group (order by latency)
                       filter (where intake = 'push'),
                   percentile_cont(0.95) within group (order by latency)
                       filter (where intake = 'push'),
                   max(latency) filter (where intake = 'push')
            from versions v group by v.platform order by v.platform
            """, (start, end)).fetchall()


def print_live(span: LiveSpan) -> None:
    p = span.pushes
    print(f"\npushes: {p.get('messages', 0)} messages, {p.get('acked', 0)} acknowledged,"
          f" {p.get('redelivered', 0)} redelivered; faults {', '.join(p.get('faults', [])) or 'none'}:"
          f" {p.get('lost', 0)} lost, {p.get('duplicated', 0)} duplicated,"
          f" {p.get('disordered', 0)} out of order, {p.get('in_bursts', 0)} in late bursts,"
          f" {p.get('storm_redeliveries', 0)} storm redeliveries,"
          f" {p.get('forged', 0)} forged ({p.get('forged_refused', 0)} refused webhooks,"
          f" {p.get('forged_on_channels', 0)} on long connections),"
          f" {p.get('malformed', 0)} malformed")
    print(f"{'platform':<8} {'by push':>8} {'by poll':>8} {'push 1st':>9} {'poll only':>10}"
          f" {'p50 (s)':>8} {'p95 (s)':>8} {'max (s)':>8}")
    for platform, push, poll, first, only, p50, p95, top in push_figures(span.start, span.end):
        def sec(value):
            return f"{value:>8.1f}" if value is not None else f"{'-':>8}"
        print(f"{platform:<8} {push:>8} {poll:>8} {first:>9} {only:>10} {sec(p50)} {sec(p95)}"
              f" {sec(top)}")


def compare_with_truth(truth: list[dict]) -> dict:
    """marts.live_orders against the sandbox's truth rows (world.truth), for
    the truth's orders: missing, duplicated, and differing columns."""
    keys = [(r["platform"], r["shop_id"], r["order_id"]) for r in truth]
    actual = live_orders(keys, STANDARD_COLUMNS)

    def expected(row: dict) -> dict:
        return {c: (datetime.fromtimestamp(row[c], UTC) if c.endswith("_at") and row[c] is not None
                    else row[c]) for c in STANDARD_COLUMNS}

    by_key = {(r["platform"], r["shop_id"], r["order_id"]): r for r in actual}
    wanted = {k: expected(r) for k, r in zip(keys, truth, strict=True)}
    return {
        "orders": len(wanted),
        "missing": sorted(set(wanted) - set(by_key)),
        "duplicated": len(actual) - len(by_key),
        "columns": [(k, c, by_key[k][c], wanted[k][c]) for k in sorted(set(by_key) & set(wanted))
                    for c in STANDARD_COLUMNS if by_key[k][c] != wanted[k][c]],
    }


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()
