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
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import requests

from orderhub.config import (
    REPO_ROOT,
    ExtractionSettings,
    Shop,
    database_url,
    dbt_project_dir,
    home,
    load_shops,
    pii_salt,
)

DAG_ID = "orders_incremental"
INTERVAL = timedelta(hours=1)
SANDBOX_PATHS = {"tmall": "/tmall/router/rest", "jd": "/jd/routerjson",
                 "pdd": "/pdd/api/router", "douyin": "/douyin"}


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


def dbt_env(url: str | None = None) -> dict[str, str]:
    """The warehouse URL split into the variables dbt_project/profiles.yml reads."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url or database_url())
    return {
        "ORDERHUB_DB_HOST": parts.hostname or "127.0.0.1",
        "ORDERHUB_DB_PORT": str(parts.port or 5432),
        "ORDERHUB_DB_USER": unquote(parts.username or "postgres"),
        "ORDERHUB_DB_PASSWORD": unquote(parts.password or ""),
        "ORDERHUB_DB_NAME": parts.path.lstrip("/") or "postgres",
        "ORDERHUB_PII_SALT": pii_salt(),
    }


def dbt(*args: str, check: bool = True, capture: bool = True, project: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the dbt CLI on the project (or a copy of it) against the configured
    warehouse (or the profile variables in ``env``, see ``dbt_env``)."""
    project = project or dbt_project_dir()
    cmd = [str(Path(sys.executable).with_name("dbt")), *args,
           "--project-dir", str(project), "--profiles-dir", str(project)]
    return subprocess.run(cmd, env={**os.environ, **(env or dbt_env())}, check=check, text=True,
                          capture_output=capture, cwd=project)


def ensure_manifest() -> Path:
    """Cosmos renders the DAG from target/manifest.json: (re)parse when stale."""
    project = dbt_project_dir()
    manifest = project / "target" / "manifest.json"
    sources = [p for p in project.rglob("*") if p.is_file() and p.suffix in (".sql", ".yml", ".csv")
               and "target" not in p.parts and "logs" not in p.parts]
    newest = max(p.stat().st_mtime for p in sources)
    if not manifest.exists() or manifest.stat().st_mtime < newest:
        result = dbt("parse", check=False)
        if result.returncode != 0:
            raise RuntimeError(f"dbt parse failed:\n{result.stdout}\n{result.stderr}")
    return manifest


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

    def connections(self, shops: list[Shop]) -> dict[str, str]:
        from orderhub.sandbox.gateway import sandbox_credentials

        env = {}
        for shop in shops:
            creds = sandbox_credentials(self.seed, shop.platform,
                                        [s.shop_id for s in shops if s.platform == shop.platform])
            env[f"AIRFLOW_CONN_{shop.conn_id.upper()}"] = json.dumps({
                "conn_type": "http",
                "login": creds.app_key,
                "password": creds.app_secret,
                "extra": {"gateway_url": self.url + SANDBOX_PATHS[shop.platform],
                          "access_token": creds.token_for(shop.shop_id)},
            })
        return env


def intervals(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Hourly data intervals covering [start, end); both ends on the hour."""
    if start.minute or start.second or end.minute or end.second:
        raise ValueError("the DAGs run hourly: start and end must be on the hour")
    cursor = start
    while cursor < end:
        yield cursor, cursor + INTERVAL
        cursor += INTERVAL


# `--mark-success-pattern` for runs whose dbt and GX tasks are left to a later run.
DEFER_MARTS = r"^(dbt\.|check_)"


@dataclass
class RunReport:
    runs: list[tuple[str, datetime, bool]]  # (dag id, interval end, succeeded)
    windows_failed_first: int = 0
    windows_repaired: int = 0
    windows_open: int = 0

    @property
    def failed_runs(self) -> int:
        return sum(not ok for _, _, ok in self.runs)


def dag_test(dag_id: str, at: datetime, env: dict[str, str], defer_marts: bool = False,
             conf: dict | None = None) -> bool:
    """One complete DAG run through ``airflow dags test``; True if it succeeded.

    ``dags test DAG DATE`` infers the data interval the way a manual run does:
    the latest complete interval ending at or before DATE. So the run for
    [a, b) is asked for at b (tests/test_dags.py checks this)."""
    args = ["dags", "test", dag_id, at.isoformat()]
    if conf:
        args += ["--conf", json.dumps(conf)]
    if defer_marts:
        args += ["--mark-success-pattern", DEFER_MARTS]
    result = airflow(*args, env=env, check=False, capture=True)
    log = airflow_home() / f"last_{dag_id}.log"
    log.write_text(result.stdout + result.stderr)
    return result.returncode == 0 and "state=failed" not in result.stdout + result.stderr


def ledger_summary() -> tuple[int, int, int]:
    from orderhub.landing import connect, ensure_schema

    with connect() as conn:
        ensure_schema(conn)
        return conn.execute(
            "select count(*) filter (where first_outcome <> 'ok'),"
            " count(*) filter (where first_outcome <> 'ok' and outcome = 'ok'),"
            " count(*) filter (where outcome <> 'ok' or orders_landed < api_reported_count)"
            " from ops.extraction_windows").fetchone()


def wait_for_breakers(echo=print, limit: float = 180) -> None:
    """Before repairing again, let open circuit breakers cool down (bounded)."""
    from orderhub.landing import connect

    with connect() as conn:
        seconds = conn.execute(
            "select coalesce(max(extract(epoch from opened_until - now())), 0)"
            " from ops.circuit_breakers").fetchone()[0]
    seconds = min(max(float(seconds), 0) + 1, limit)
    echo(f"  waiting {seconds:.0f}s for the circuit breakers to close")
    time.sleep(seconds)


def run(start: datetime, end: datetime, *, sandbox: SandboxTarget | None = None,
        repair: bool = True, settle: timedelta | None = None, defer_marts: bool = False,
        repair_attempts: int = 3, history: timedelta = timedelta(0), settlement_days: int = 0,
        echo=print) -> RunReport:
    """Run orders_incremental through Airflow for every hour in [start, end),
    then orders_repair for the interval ending at ``end`` (as the next hourly
    repair would), and - with ``settle`` - once more that much later, when
    late-visible updates have appeared.

    With ``history``, first one orders_repair run syncs [start - history,
    start) (a manual run with a span: the historical sync a new shop needs);
    with ``settlement_days``, one settlements_daily run then reconciles the
    whole days [start - settlement_days, start) (``start`` on a midnight).

    ``defer_marts`` leaves dbt and GX to the last run (marks those tasks
    successful in the earlier ones): the same DAGs, fewer dbt builds."""
    from orderhub.repair import rolling_span

    shops = load_shops()
    extra = sandbox.connections(shops) if sandbox else {}
    # A by-hand run repairs what it ran: the closing repair's rolling re-pull
    # stays inside [start, end), so the warehouse holds exactly that range.
    span = min(rolling_span(), end - start)
    extra["ORDERHUB_REPAIR_HOURS"] = str(span.total_seconds() / 3600)
    env = airflow_env({"ORDERHUB_TASK_RETRIES": "0", **extra})
    ensure_manifest()
    ensure_airflow_db(env)
    lag = ExtractionSettings.from_env().safety_lag
    plan: list[tuple] = []
    if history:
        plan.append(("orders_repair", start, start + lag,
                     {"start": (start - history).isoformat(), "end": start.isoformat()}))
    if settlement_days:
        first = start - timedelta(days=settlement_days)
        plan.append(("settlements_daily", start, start + lag,
                     {"start": first.isoformat(), "end": start.isoformat()}))
    plan += [("orders_incremental", b, b + lag) for _, b in intervals(start, end)]
    if repair:
        plan.append(("orders_repair", end, end + lag))
        if settle:
            plan.append(("orders_repair", end, end + settle + lag))
    report = RunReport(runs=[])
    for i, (dag_id, at, clock, *conf) in enumerate(plan):
        last = i == len(plan) - 1
        conf = conf[0] if conf else None
        attempts = repair_attempts if dag_id == "orders_repair" else 1
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                wait_for_breakers(echo)
            if sandbox:
                sandbox.set_clock(clock)
            span = (conf["start"], conf["end"]) if conf else ((at - INTERVAL).isoformat(), at.isoformat())
            echo(f"{dag_id} [{span[0]}, {span[1]})"
                 + (f" at platform time {clock.isoformat()}" if dag_id != "orders_incremental" else "")
                 + (f", attempt {attempt}" if attempt > 1 else "") + " ...")
            ok = dag_test(dag_id, at, env, defer_marts=defer_marts and not last, conf=conf)
            report.runs.append((dag_id, at, ok))
            if ok:
                break
            echo(f"  {dag_id} run failed; Airflow's output is in "
                 f"{airflow_home() / f'last_{dag_id}.log'}")
    failed_first, repaired, still_open = ledger_summary()
    report.windows_failed_first, report.windows_repaired, report.windows_open = (
        failed_first, repaired, still_open)
    if not report.runs[-1][2]:
        raise RuntimeError(f"the last DAG run failed; see {airflow_home()}/last_*.log")
    return report
