"""docker-compose.yml cannot be started here (no Docker engine): check its shape."""

from __future__ import annotations

from pathlib import Path

import yaml

from orderhub.config import REPO_ROOT

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
AIRFLOW = ["airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
           "airflow-triggerer"]


def test_services_of_the_official_layout_and_the_sandbox():
    services = COMPOSE["services"]
    assert {"postgres", "sandbox", *AIRFLOW} <= set(services)
    assert {"redis", "airflow-worker"} <= set(services)
    # push intake (issue 17): the broker, the receiver, the consumer, on one NATS URL
    assert {"nats", "intake", "stream"} <= set(services)
    assert "-js" in services["nats"]["command"]
    assert (services["intake"]["environment"]["ORDERHUB_NATS_URL"]
            == services["stream"]["environment"]["ORDERHUB_NATS_URL"] == "nats://nats:4222")
    assert services["redis"]["profiles"] == ["celery"] == services["airflow-worker"]["profiles"]


def test_every_long_running_service_has_a_healthcheck():
    for name, service in COMPOSE["services"].items():
        assert "healthcheck" in service and service["healthcheck"]["test"], name


def test_local_executor_by_default_and_one_warehouse_url():
    env = COMPOSE["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"].endswith("LocalExecutor}")
    assert env["ORDERHUB_DATABASE_URL"] == env["AIRFLOW_CONN_ORDERHUB_WAREHOUSE"]
    assert "password" not in str(env).lower() or "${" in str(env)  # secrets come from .env


def test_mounted_paths_exist():
    for name, service in COMPOSE["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO_ROOT / Path(source)).exists(), f"{name}: {source}"
    assert (REPO_ROOT / "Dockerfile").exists()
