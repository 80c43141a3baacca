"""``orderhub airflow`` (``make airflow``): Airflow's UI and API, scheduler,
DAG processor and triggerer on this machine, against the configured warehouse,
in the foreground until interrupted.

It is ``airflow standalone`` (Airflow's own all-in-one development mode:
LocalExecutor, the simple auth manager) with OrderHub's environment: the
project's Airflow home and metadata DB (``.orderhub/airflow``, the one
``orderhub run`` records its runs in), the DAGs and plugins of this checkout,
the warehouse connection, and the UI on 127.0.0.1 only.

``--sandbox`` serves the platform sandbox of the last ``orderhub demo`` (its
seed, scale and shops) in this process and points the shops' connections at
it, so triggered runs and backfills land that world's orders in the demo
warehouse; it is refused on a warehouse marked as production. Without it the
shops' connections are whatever Airflow has (metadata DB, ``AIRFLOW_CONN_*``,
a secrets backend), and no sandbox is used even if one is running.

Past one machine this is the compose deployment (README, "Deploy").
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from orderhub.config import home, load_shops
from orderhub_tools.runner import (
    SandboxTarget,
    airflow,
    airflow_env,
    airflow_home,
    ensure_airflow_db,
)

DAG_IDS = ("orders_incremental", "orders_repair", "settlements_daily")
USER = "admin"
DEMO_WORLD = "demo.json"  # what the last demo served: seed, scale, shops file


def remember_demo_world(seed: int, scale: float) -> None:
    """Called by ``orderhub demo``: the world ``--sandbox`` serves again."""
    (home() / DEMO_WORLD).write_text(json.dumps({
        "seed": seed, "scale": scale, "shops_file": os.environ.get("ORDERHUB_SHOPS_FILE")}))


def demo_world() -> dict:
    path = home() / DEMO_WORLD
    if path.exists():
        return json.loads(path.read_text())
    from orderhub_tools.sandbox.world import DEFAULT_SEED, DEMO_SCALE

    return {"seed": DEFAULT_SEED, "scale": DEMO_SCALE, "shops_file": None}


def login() -> tuple[str, str, Path]:
    """The UI's user and password: the simple auth manager's passwords file
    in the project's Airflow home, made once with a random password."""
    path = airflow_home() / "simple_auth_manager_passwords.json.generated"
    passwords = json.loads(path.read_text()) if path.exists() else {}
    if USER not in passwords:
        passwords[USER] = secrets.token_urlsafe(12)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(passwords, out)
    return USER, passwords[USER], path


def start_sandbox(world: dict):
    """The demo's sandbox, served in this process (its clock runs with the
    wall clock, past the demo's window: every order there is in its final state)."""
    from orderhub.config import sandbox_world
    from orderhub_tools.sandbox.server import SandboxSpec, serve

    shops = load_shops()
    spec = SandboxSpec(seed=world["seed"], shops=[(s.platform, s.shop_id) for s in shops],
                       scale=world["scale"], world=sandbox_world(),
                       deliveries={s.shop_id: s.delivery for s in shops if s.delivery})
    server = serve(spec)
    target = SandboxTarget(f"http://127.0.0.1:{server.server_address[1]}", world["seed"])
    SandboxTarget.state_file().write_text(json.dumps({"url": target.url, "seed": world["seed"],
                                                      "scale": world["scale"]}))
    return server, target


def _unpause(env: dict[str, str], stop: threading.Event) -> None:
    """Once the DAG processor has stored each DAG, unpause it."""
    waiting = set(DAG_IDS)
    while waiting and not stop.wait(5):
        for dag_id in sorted(waiting):
            done = airflow("dags", "unpause", dag_id, env=env, check=False, capture=True)
            if done.returncode == 0:
                print(f"unpaused {dag_id}", flush=True)
                waiting.discard(dag_id)


def port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def serve_airflow(port: int, unpause: bool = False, sandbox: bool = False) -> int:
    from orderhub.config import UserError

    if not port_is_free(port):
        raise UserError(f"port {port} on 127.0.0.1 is taken (another Airflow?): choose one"
                        f" with --port (make airflow PORT=...)")
    extra: dict[str, str] = {}
    server = target = None
    if sandbox:
        from orderhub.landing import refuse_if_production

        refuse_if_production("`orderhub airflow --sandbox` (sandbox orders)")
        world = demo_world()
        if world.get("shops_file"):
            os.environ["ORDERHUB_SHOPS_FILE"] = world["shops_file"]
            extra["ORDERHUB_SHOPS_FILE"] = world["shops_file"]
        server, target = start_sandbox(world)
        extra.update(target.connections(load_shops()))
    url = f"http://127.0.0.1:{port}"
    bin_dir = str(Path(sys.executable).parent)
    env = airflow_env({
        **extra,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),  # standalone runs `airflow`
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False" if unpause else "True",
    })
    ensure_airflow_db(env)
    user, password, passwords = login()
    logs = airflow_home() / "logs"
    print(f"Airflow UI and API: {url}", flush=True)
    print(f"login: {user} / {password}  (kept in {passwords})")
    print(f"DAGs: {', '.join(DAG_IDS)}; "
          + ("unpaused: the scheduler runs them" if unpause else
             "paused until you unpause them (UI toggle, or --unpause)"))
    print(f"task logs: {logs}/dag_id=<dag>/run_id=<run>/task_id=<task>/")
    print(f"metadata DB: {env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']}"
          f" (AIRFLOW_HOME={airflow_home()} for the airflow CLI)")
    if target is not None:
        print(f"shops: the demo's sandbox at {target.url}")
    else:
        print("shops: the connections Airflow has (metadata DB, AIRFLOW_CONN_*, secrets backend)")
    print("Ctrl-C stops every component.", flush=True)

    # its own process group, with Ctrl-C's default meaning (a shell that started
    # this command in the background ignores SIGINT, and children inherit that)
    process = subprocess.Popen([str(Path(bin_dir) / "airflow"), "standalone"], env=env,
                               start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    stop = threading.Event()
    if unpause:
        threading.Thread(target=_unpause, args=(env, stop), daemon=True).start()

    def interrupt(*_):
        # the first Ctrl-C (or TERM): standalone terminates its components, each
        # stopping its own workers (signalling the whole group would reach the
        # scheduler's executor workers too, and leave the scheduler waiting for
        # them); a second: kill them all
        again = stop.is_set()
        stop.set()
        if again:
            os.killpg(process.pid, signal.SIGKILL)
        elif process.poll() is None:
            process.send_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        code = process.wait()
    finally:
        stop.set()
        # every component gone: after Ctrl-C they get 30 s to finish, then TERM, then KILL
        for last_resort in (None, signal.SIGTERM, signal.SIGKILL):
            if last_resort is not None and _group_alive(process.pid):
                os.killpg(process.pid, last_resort)
            deadline = time.monotonic() + (30 if last_resort is None else 10)
            while _group_alive(process.pid) and time.monotonic() < deadline:
                process.poll()
                time.sleep(0.5)
        if server is not None:
            server.shutdown()
            SandboxTarget.state_file().unlink(missing_ok=True)
    return 0 if stop.is_set() else code


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
