"""``orderhub run``: the real DAGs, through Airflow, one interval at a time.

Each hourly interval [a, b) is one ``airflow dags test orders_incremental``
run (a complete DAG run, in-process, on the SQLite metadata DB under
``.orderhub/airflow``). Against the sandbox, its clock is first moved to the
moment that run would really happen: ``b + safety lag``.

Airflow learns about the warehouse and the shops only through connections:
``orderhub_warehouse`` (from ``ORDERHUB_DATABASE_URL`` or the embedded
server) and one connection per shop. Real credentials belong in Airflow's
connection store or a secrets backend; for the sandbox, this module passes
them as ``AIRFLOW_CONN_<ID>`` environment variables of the Airflow process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import requests

from orderhub.config import (
    PLATFORM_TZ,
    REPO_ROOT,
    ExtractionSettings,
    Shop,
    database_url,
    home,
    load_shops,
    parse_time,
    pii_salt,
)
from orderhub.transform import ensure_manifest

DAG_ID = "orders_incremental"
INTERVAL = timedelta(hours=1)


def airflow_home() -> Path:
    path = home() / "airflow"
    path.mkdir(parents=True, exist_ok=True)
    return path


def airflow_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    url = database_url()
    env.update({
        "AIRFLOW_HOME": str(airflow_home()),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home() / 'airflow.db'}",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        # Cosmos keeps dbt's partial-parse cache per checkout, not in /tmp for all.
        "AIRFLOW__COSMOS__CACHE_DIR": str(home() / "cosmos"),
        "ORDERHUB_DATABASE_URL": url,
        "AIRFLOW_CONN_ORDERHUB_WAREHOUSE": url,
        "AIRFLOW_VAR_ORDERHUB_PII_SALT": pii_salt(),
    })
    env.update(extra or {})
    # the CLI's own lookup context (cli.airflow_lookups); Airflow's components set theirs
    env.pop("_AIRFLOW_PROCESS_CONTEXT", None)
    return env


def airflow(*args: str, env: dict[str, str], check: bool = True, capture: bool = False,
            timeout: float = 3600) -> subprocess.CompletedProcess:
    """The Airflow CLI of this environment; a DAG run is bounded by ``timeout``
    (its own dagrun_timeout is 55 minutes)."""
    cmd = [str(Path(sys.executable).with_name("airflow")), *args]
    return subprocess.run(cmd, env=env, check=check, text=True,
                          capture_output=capture, cwd=REPO_ROOT, timeout=timeout)


def ensure_airflow_db(env: dict[str, str]) -> None:
    marker = airflow_home() / ".migrated"
    if not marker.exists():
        airflow("db", "migrate", env=env, capture=True)
        marker.touch()


# -- the sandbox, when one is running -----------------------------------------------

@dataclass
class SandboxTarget:
    url: str
    seed: int

    @classmethod
    def state_file(cls) -> Path:
        return home() / "sandbox.json"

    @classmethod
    def discover(cls) -> SandboxTarget | None:
        """The sandbox started by ``orderhub sandbox serve``/``demo``, if it answers."""
        path = cls.state_file()
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        try:
            requests.get(state["url"] + "/_sandbox/health", timeout=2).raise_for_status()
        except requests.RequestException:
            return None
        return cls(state["url"], state["seed"])

    def set_clock(self, now: datetime) -> None:
        requests.post(self.url + "/_sandbox/clock", json={"now": now.isoformat()},
                      timeout=10).raise_for_status()

    def message_service(self) -> str:
        """The ws:// URL of the sandbox's long-connection message service."""
        answer = requests.get(self.url + "/_sandbox/health", timeout=10)
        answer.raise_for_status()
        return answer.json().get("message_service") or ""

    def connections(self, shops: list[Shop]) -> dict[str, str]:
        from orderhub_tools.sandbox import gateways, shop_credentials

        env = {}
        message_service = None
        for shop in shops:
            creds = shop_credentials(self.url, self.seed, shop.platform, shop.shop_id,
                                     [s.shop_id for s in shops if s.platform == shop.platform])
            extra = {"gateway_url": creds.gateway_url, "access_token": creds.access_token}
            gateway = gateways().get(shop.platform)
            if gateway is not None and gateway.push_transport == "websocket":
                message_service = message_service or self.message_service()
                extra["push_url"] = message_service + gateway.channel_path
            env[f"AIRFLOW_CONN_{shop.conn_id.upper()}"] = json.dumps({
                "conn_type": "http",
                "login": creds.app_key,
                "password": creds.app_secret,
                "extra": extra,
            })
        delivering = [shop for shop in shops if shop.delivery]
        if delivering:  # the delivery service's one account (SF same-city, sandbox/delivery.py)
            from orderhub_tools.sandbox.delivery import PREFIX, SERVICE
            from orderhub_tools.sandbox.gateway import sandbox_credentials

            app = sandbox_credentials(self.seed, SERVICE, sorted(s.shop_id for s in delivering))
            for shop in delivering:
                env[f"AIRFLOW_CONN_{shop.delivery_conn_id.upper()}"] = json.dumps({
                    "conn_type": "http", "login": app.app_key, "password": app.app_secret,
                    "extra": {"gateway_url": self.url + PREFIX}})
        from orderhub.stock import WAREHOUSE_CONN_ID
        from orderhub_tools.sandbox.stock import WAREHOUSE_PATH, warehouse_token

        env[f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}"] = json.dumps({
            "conn_type": "http", "host": self.url + WAREHOUSE_PATH,
            "password": warehouse_token(self.seed)})
        return env

    @contextmanager
    def connected(self, shops: list[Shop]) -> Iterator[None]:
        """This process's Airflow connections point at the sandbox for the
        ``with`` block (the functions the DAGs run, called in-process), and
        the environment is as it was after it."""
        saved = dict(os.environ)
        os.environ.update(self.connections(shops))
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def sandbox_gateways(shops: list[Shop]) -> list[tuple[str, str]]:
    """The shops whose Airflow connection points at a platform sandbox:
    (conn id, gateway URL). A gateway on a loopback or private address is
    asked ``/_sandbox/health``, which only the sandbox answers; public
    gateways are not asked anything. ``orderhub run --real`` refuses these."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    from airflow.sdk.exceptions import AirflowNotFoundException

    from orderhub.platforms.base import Credentials

    found, asked = [], {}
    for shop in shops:
        try:
            url = Credentials.from_airflow(shop.conn_id).gateway_url or ""
        except AirflowNotFoundException:
            continue  # the run itself says which connection is missing
        parts = urlsplit(url)
        if not parts.hostname:
            continue
        base = f"{parts.scheme}://{parts.netloc}"
        if base not in asked:
            try:
                address = ipaddress.ip_address(socket.gethostbyname(parts.hostname))
                local = address.is_loopback or address.is_private
            except (OSError, ValueError):
                local = False
            try:
                asked[base] = local and requests.get(
                    base + "/_sandbox/health", timeout=3).status_code == 200
            except requests.RequestException:
                asked[base] = False
        if asked[base]:
            found.append((shop.conn_id, url))
    return found


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    floor = floor_hour(t)
    return floor if floor == t else floor + INTERVAL


def beijing_midnight(t: datetime) -> datetime:
    """The Beijing midnight on or before ``t`` (a day's bills start there)."""
    return t.astimezone(PLATFORM_TZ).replace(hour=0, minute=0, second=0, microsecond=0)


def pieces(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime, bool]]:
    """[start, end) as the hourly data intervals inside it, plus the partial
    hours at either end: (a, b, whole_hour). An empty range has none."""
    if end < start:
        raise ValueError(f"reversed range [{start.isoformat()}, {end.isoformat()})")
    cursor = start
    while cursor < end:
        upper = min(floor_hour(cursor) + INTERVAL, end)
        yield cursor, upper, cursor == floor_hour(cursor) and upper - cursor == INTERVAL
        cursor = upper


@dataclass(frozen=True)
class Step:
    """One DAG run of a by-hand run: ``airflow dags test DAG_ID AT`` (with
    ``conf``: a manual run's params start/end), when the platform clock
    stands at ``clock``; a failed run is tried ``attempts`` times."""

    dag_id: str
    at: datetime
    clock: datetime
    conf: dict | None = None
    attempts: int = 1

    def conf_for(self, attempt: int) -> dict | None:
        """The conf of the ``attempt``-th try (from 1): a repair tried again
        re-pulls only the windows still open, not its whole span: the windows
        its first try read are landed, and reading them again would only meet
        the faults again (with every fault on, some window of a long span
        fails in most tries, so a retry of everything could fail forever)."""
        if attempt > 1 and self.dag_id == "orders_repair" and self.conf:
            return {**self.conf, "open_only": True}
        return self.conf

    @property
    def span(self) -> tuple[datetime, datetime]:
        if self.conf:
            return parse_time(self.conf["start"]), parse_time(self.conf["end"])
        return self.at - INTERVAL, self.at


def settlement_range(start: datetime, days: int) -> tuple[datetime, datetime]:
    """The whole Beijing days reconciled before a window starting at ``start``."""
    last = beijing_midnight(start)
    return last - timedelta(days=days), last


def plan_runs(start: datetime, end: datetime, *, lag: timedelta, history: timedelta = timedelta(0),
              settlement_days: int = 0, repair: bool = True, settle: timedelta | None = None,
              repair_attempts: int = 3) -> list[Step]:
    """The DAG runs of ``orderhub run`` for [start, end), in order.

    * with ``history``: one ``orders_repair`` run syncing [start - history,
      start) (a manual run with a span: the historical sync a new shop needs);
    * with ``settlement_days``: one ``settlements_daily`` run reconciling the
      whole Beijing days before the day ``start`` falls in (``end`` may equal
      ``start``: a history sync and a reconciliation, no window);
    * ``orders_incremental`` for every whole hour in [start, end); a partial
      hour at either end (a window off the hour) is a manual ``orders_repair``
      run of exactly that span;
    * the closing ``orders_repair`` (tried ``repair_attempts`` times): the ledger's
      open windows and a re-pull of the whole range, reaching back into the
      synced history as far as the repair DAG's rolling span
      (``ORDERHUB_REPAIR_HOURS``), where updates that were not yet visible at
      the history sync live; with ``settle``, the same once more that much
      later, when updates that became visible late are there.

    Each run happens at its span's end + ``lag`` on the platform clock."""
    from orderhub.repair import rolling_span

    steps: list[Step] = []
    if history > timedelta(0):
        steps.append(Step("orders_repair", start, start + lag,
                          {"start": (start - history).isoformat(), "end": start.isoformat()}))
    if settlement_days:
        first, last = settlement_range(start, settlement_days)
        steps.append(Step("settlements_daily", start, start + lag,
                          {"start": first.isoformat(), "end": last.isoformat()}))
    for a, b, whole in pieces(start, end):
        if whole:
            steps.append(Step("orders_incremental", b, b + lag))
        else:  # a partial hour of the window: part of the live cycle, not history
            steps.append(Step("orders_repair", b, b + lag,
                              {"start": a.isoformat(), "end": b.isoformat(), "live": True}))
    if repair and end > start:
        reach = start - min(history, rolling_span())
        conf = {"start": reach.isoformat(), "end": end.isoformat(), "live": True}
        steps.append(Step("orders_repair", end, end + lag, conf, repair_attempts))
        if settle:
            steps.append(Step("orders_repair", end, end + settle + lag, conf, repair_attempts))
    return steps


# `--mark-success-pattern` for runs whose dbt and GX tasks are left to a later run.
# Airflow matches it against the whole task id (re.fullmatch in DAG.test).
DEFER_MARTS = r"(dbt\..*|check_.*)"


@dataclass
class RunReport:
    runs: list[tuple[str, datetime, bool]]  # (dag id, interval end, succeeded)
    windows_failed_first: int = 0
    windows_repaired: int = 0
    windows_open: int = 0
    open_windows: list[dict] = field(default_factory=list)  # the ledger's, with their last error

    @property
    def failed_runs(self) -> int:
        return sum(not ok for _, _, ok in self.runs)

    @property
    def complete(self) -> bool:
        """Every window read in full (the ledger's word), and the last run succeeded."""
        return self.windows_open == 0 and bool(self.runs) and self.runs[-1][2]

    def describe_open(self, limit: int = 20) -> list[str]:
        """One line per window still open: where, which window, why."""
        lines = []
        for w in self.open_windows[:limit]:
            a, b = (t.astimezone(PLATFORM_TZ) for t in (w["window_start"], w["window_end"]))
            what = (w["outcome"] if w["outcome"] != "ok"
                    else f"short: {w['orders_landed']} of {w['api_reported_count']} orders")
            error = f": {w['last_error'][:160]}" if w["last_error"] else ""
            lines.append(f"  {w['platform']}/{w['shop_id']} {w['entity']} [{a:%m-%d %H:%M},"
                         f" {b:%m-%d %H:%M}) {what}{error}")
        if len(self.open_windows) > limit:
            lines.append(f"  ... and {len(self.open_windows) - limit} more"
                         " (ops.extraction_windows, README 'Is anything missing?')")
        return lines


def dag_test(dag_id: str, at: datetime, env: dict[str, str], defer_marts: bool = False,
             conf: dict | None = None, echo=print) -> bool:
    """One complete DAG run through ``airflow dags test``; True if it succeeded.

    ``dags test DAG DATE`` infers the data interval the way a manual run does:
    the latest complete interval ending at or before DATE. So the run for
    [a, b) is asked for at b (tests/test_dags.py checks this)."""
    args = ["dags", "test", dag_id, at.isoformat()]
    if conf:
        args += ["--conf", json.dumps(conf)]
    if defer_marts:
        args += ["--mark-success-pattern", DEFER_MARTS]
    cmd = [str(Path(sys.executable).with_name("airflow")), *args]
    log = airflow_home() / f"last_{dag_id}.log"
    progress = TaskProgress(echo)
    with log.open("w") as out, subprocess.Popen(
            cmd, env=env, cwd=REPO_ROOT, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, bufsize=1) as proc:
        for line in proc.stdout:
            out.write(line)
            progress.read(line)
        code = proc.wait()
    return code == 0 and not progress.saw_failure


TASK_EVENT = re.compile(r"\[DAG TEST\] (starting|end task) task_id=(\S+) map_index=(-?\d+)")
TASK_STATE = re.compile(r"new_state=(\w+)")


class TaskProgress:
    """What a DAG run is doing, from ``airflow dags test``'s log: a failed
    task is said at once, and a run that has been quiet for ``every`` seconds
    says how far it is (a history sync can take many minutes)."""

    def __init__(self, echo, every: float = 30) -> None:
        self.echo, self.every = echo, every
        self.began = self.said = time.monotonic()
        self.done, self.failed, self.current, self.state = 0, [], "", ""
        self.saw_failure = False  # a task or the run itself ended failed

    def read(self, line: str) -> None:
        self.saw_failure = self.saw_failure or "state=failed" in line
        if state := TASK_STATE.search(line):
            self.state = state.group(1)
        if not (event := TASK_EVENT.search(line)):
            return
        kind, task, index = event.groups()
        name = task if index == "-1" else f"{task}[{index}]"
        if kind == "starting":
            self.current, self.state = name, ""
        else:
            self.done += 1
            if self.state == "failed":
                self.failed.append(name)
                self._say(f"    {name} failed")
        if time.monotonic() - self.said >= self.every:
            self._say(f"    ... {time.monotonic() - self.began:.0f}s: {self.done} tasks done,"
                      f" now {self.current}")

    def _say(self, text: str) -> None:
        self.echo(text)
        self.said = time.monotonic()


def ledger_report(report: RunReport, url: str | None = None) -> RunReport:
    """Fill ``report`` from the ledger: windows that failed first, were
    repaired, and are still open (with why)."""
    from orderhub.landing import connect, ensure_schema
    from orderhub.repair import OPEN_WINDOWS_ALL_SQL

    with connect(url) as conn:
        ensure_schema(conn)
        report.windows_failed_first, report.windows_repaired = conn.execute(
            "select count(*) filter (where first_outcome <> 'ok'),"
            " count(*) filter (where first_outcome <> 'ok' and outcome = 'ok'"
            "                  and orders_landed >= coalesce(api_reported_count, 0))"
            " from ops.extraction_windows").fetchone()
        cur = conn.execute(OPEN_WINDOWS_ALL_SQL)
        names = [d.name for d in cur.description]
        report.open_windows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    report.windows_open = len(report.open_windows)
    return report


def breaker_wait(url: str | None = None, limit: float = 180) -> float:
    """Seconds until every open circuit breaker lets a probe through (bounded)."""
    from orderhub.landing import connect

    with connect(url) as conn:
        seconds = conn.execute(
            "select coalesce(max(extract(epoch from opened_until - now())), 0)"
            " from ops.circuit_breakers").fetchone()[0]
    return min(max(float(seconds), 0), limit)


def run(start: datetime, end: datetime, *, sandbox: SandboxTarget | None = None,
        repair: bool = True, settle: timedelta | None = None, defer_marts: bool = False,
        repair_attempts: int = 3, history: timedelta = timedelta(0), settlement_days: int = 0,
        echo=print) -> RunReport:
    """The DAG runs of :func:`plan_runs` through Airflow, one ``airflow dags
    test`` each. Against the sandbox, its clock is moved to each run's moment
    first. A failed repair run is tried again after the circuit breakers have
    cooled down.

    Returns the report, also when runs failed: which runs, and which ledger
    windows are still open and why. ``defer_marts`` leaves dbt and GX to the
    last run (marks those tasks successful in the earlier ones): the same
    DAGs, fewer dbt builds."""
    shops = load_shops()
    extra = sandbox.connections(shops) if sandbox else {}
    env = airflow_env({"ORDERHUB_TASK_RETRIES": "0", **extra})
    ensure_manifest()
    ensure_airflow_db(env)
    lag = ExtractionSettings.from_env().safety_lag
    steps = plan_runs(start, end, lag=lag, history=history, settlement_days=settlement_days,
                      repair=repair, settle=settle, repair_attempts=repair_attempts)
    report = RunReport(runs=[])
    began = time.monotonic()
    for i, step in enumerate(steps, 1):
        last = i == len(steps)
        a, b = step.span
        for attempt in range(1, step.attempts + 1):
            if attempt > 1:
                wait = breaker_wait() + 1
                echo(f"  waiting {wait:.0f}s for the circuit breakers to close")
                time.sleep(wait)
            if sandbox:
                sandbox.set_clock(step.clock)
            echo(f"[{i}/{len(steps)}, {time.monotonic() - began:.0f}s] {step.dag_id}"
                 f" [{a.isoformat()}, {b.isoformat()})"
                 + (f" at platform time {step.clock.isoformat()}"
                    if step.dag_id != "orders_incremental" else "")
                 + (f", attempt {attempt}" if attempt > 1 else "") + " ...")
            ok = dag_test(step.dag_id, step.at, env, defer_marts=defer_marts and not last,
                          conf=step.conf_for(attempt), echo=echo)
            report.runs.append((step.dag_id, step.at, ok))
            if ok:
                break
            echo(f"  {step.dag_id} run failed; Airflow's output is in "
                 f"{airflow_home() / f'last_{step.dag_id}.log'}")
    return ledger_report(report)
