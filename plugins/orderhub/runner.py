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
        "ORDERHUB_DATABASE_URL": url,
        "AIRFLOW_CONN_ORDERHUB_WAREHOUSE": url,
    })
    env.update(extra or {})
    return env


def airflow(*args: str, env: dict[str, str], check: bool = True,
            capture: bool = False) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).with_name("airflow")), *args]
    return subprocess.run(cmd, env=env, check=check, text=True,
                          capture_output=capture, cwd=REPO_ROOT)


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
    }


def dbt(*args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    """Run the dbt CLI on the project against the configured warehouse."""
    project = dbt_project_dir()
    cmd = [str(Path(sys.executable).with_name("dbt")), *args,
           "--project-dir", str(project), "--profiles-dir", str(project)]
    return subprocess.run(cmd, env={**os.environ, **dbt_env()}, check=check, text=True,
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
        raise ValueError("orders_incremental runs hourly: start and end must be on the hour")
    cursor = start
    while cursor < end:
        yield cursor, cursor + INTERVAL
        cursor += INTERVAL


def run(start: datetime, end: datetime, *, sandbox: SandboxTarget | None = None,
        echo=print) -> None:
    """Run orders_incremental through Airflow for every hour in [start, end)."""
    shops = load_shops()
    extra = sandbox.connections(shops) if sandbox else {}
    env = airflow_env(extra)
    ensure_manifest()
    ensure_airflow_db(env)
    lag = ExtractionSettings.from_env().safety_lag
    for a, b in intervals(start, end):
        if sandbox:
            sandbox.set_clock(b + lag)
        echo(f"orders_incremental [{a.isoformat()}, {b.isoformat()}) ...")
        # `dags test DAG DATE` infers the data interval the way a manual run
        # does: the latest complete interval ending at or before DATE. So the
        # run for [a, b) is asked for at b (tests/test_dags.py checks this).
        result = airflow("dags", "test", DAG_ID, b.isoformat(), env=env, check=False,
                         capture=True)
        log = airflow_home() / "last_run.log"
        log.write_text(result.stdout + result.stderr)
        if result.returncode != 0 or "state=failed" in result.stdout + result.stderr:
            raise RuntimeError(f"DAG run for [{a}, {b}) failed; Airflow's output is in {log}")
