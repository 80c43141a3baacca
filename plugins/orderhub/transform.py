"""dbt, the transform step: its profile from the warehouse URL, its CLI on
the project, and the manifest Cosmos renders DAGs from. Used by the DAGs'
dbt task (orderhub.orchestration) and by every command that builds."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orderhub.config import database_url, dbt_project_dir, pii_salt


def salt_options(salt: str) -> str:
    """libpq's PGOPTIONS giving every dbt connection the buyer-hash salt as
    the session setting orderhub.pii_salt (macros/pii.sql): the salt stays
    out of the SQL text, compiled files and view definitions."""
    escaped = salt.replace("\\", "\\\\").replace(" ", "\\ ")
    return f"-c orderhub.pii_salt={escaped}"


def dbt_env(url: str | None = None, salt: str | None = None) -> dict[str, str]:
    """The warehouse URL split into the variables dbt_project/profiles.yml
    reads, and the salt as a session setting (``salt``: else ``pii_salt()``)."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url or database_url())
    return {
        "ORDERHUB_DB_HOST": parts.hostname or "127.0.0.1",
        "ORDERHUB_DB_PORT": str(parts.port or 5432),
        "ORDERHUB_DB_USER": unquote(parts.username or "postgres"),
        "ORDERHUB_DB_PASSWORD": unquote(parts.password or ""),
        "ORDERHUB_DB_NAME": parts.path.lstrip("/") or "postgres",
        "PGOPTIONS": salt_options(salt if salt is not None else pii_salt()),
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


# The advisory lock every dbt build of the marts holds on the warehouse.
BUILD_LOCK_SQL = "select pg_advisory_lock(hashtext('orderhub: dbt build'))"
TRY_BUILD_LOCK_SQL = "select pg_try_advisory_lock(hashtext('orderhub: dbt build'))"


@contextmanager
def one_build_at_a_time(url: str, echo=print) -> Iterator[None]:
    """Hold the warehouse's dbt-build lock: a second build (another DAG's
    dbt.build task, ``orderhub dbt build``) waits until the first ends.

    ``orders_incremental`` and ``orders_repair`` both run at the top of the
    hour and build the same incremental models; two builds of one model at
    once would race on its table. The lock is PostgreSQL's own (a session
    advisory lock), held where the conflict is, so it holds for every
    deployment shape (one scheduler or several, Celery or Kubernetes
    workers, a CLI run beside the DAGs), and it goes with the session: a
    killed task never leaves it behind. docs/architecture.md says why not
    an Airflow pool alone."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute(TRY_BUILD_LOCK_SQL).fetchone()[0]:
            echo("another dbt build is running on this warehouse: waiting for it to end")
            conn.execute(BUILD_LOCK_SQL)
        yield  # leaving the block closes the session, which releases the lock


def ensure_views(*models: str) -> None:
    """The dbt ``models`` (views over raw) and what they read, if no dbt build
    made them yet: the seeds, then ``dbt run --select +model`` for each one
    missing. For the live paths that read a view before the first hourly
    build (marts.live_orders, the stock views)."""
    from orderhub.landing import connect, ensure_schema, relation_exists

    with connect() as conn:
        ensure_schema(conn)  # raw, ops and the registry, which the views read
        missing = [m for m in models if not relation_exists(conn, f"marts.{m}")]
    if not missing:
        return
    with one_build_at_a_time(database_url()):
        for step in (("seed",), ("run", "--select", *(f"+{m}" for m in missing))):
            result = dbt(*step, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"dbt {step[0]} for {', '.join(missing)} failed:\n"
                                   f"{result.stdout[-3000:]}")


def ensure_manifest() -> Path:
    """Cosmos renders the DAG from target/manifest.json: (re)parse when stale."""
    project = dbt_project_dir()
    manifest = project / "target" / "manifest.json"
    sources = []
    for folder, subfolders, files in os.walk(project):
        # dbt's own output (target/, logs/, packages) is not the project's source
        subfolders[:] = [d for d in subfolders if d not in ("target", "logs", "dbt_packages")]
        sources += [Path(folder) / f for f in files
                    if f.endswith((".sql", ".yml", ".csv", ".md"))]  # .md: the doc blocks
    newest = max(p.stat().st_mtime for p in sources)
    if not manifest.exists() or manifest.stat().st_mtime < newest:
        result = dbt("parse", check=False)
        if result.returncode != 0:
            raise RuntimeError(f"dbt parse failed:\n{result.stdout}\n{result.stderr}")
    return manifest
