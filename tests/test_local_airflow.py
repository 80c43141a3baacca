"""`orderhub airflow --sandbox` (`make airflow`, issue 20): Airflow's UI and
API, scheduler, DAG processor and triggerer on 127.0.0.1 against a demo
warehouse. The test logs in with the printed password, finds the three DAGs
and no import error, runs the README's backfill commands exactly as written,
and compares what the backfill landed with the sandbox's truth; Ctrl-C then
stops every component.

A small demo world stands in for `make run`'s (two shops, scale 0.3).
The scheduler's own schedule is off in this test only
(AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=False): unpausing the DAG, as the
README says to, would otherwise also start this hour's run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime

import psycopg
import pytest
import requests

from orderhub.config import REPO_ROOT, home, parse_time
from orderhub_tools.local_airflow import DAG_IDS
from tests.truth import cli_truth, differences, fct_orders

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

SEED, SCALE = 7, 0.3
SHOPS = [("tmall", "tmall-flagship", "orderhub_tmall_flagship"),
         ("jd", "10086421", "orderhub_jd_pop")]


def readme_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("\n## Airflow on this machine", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith(".venv/bin/airflow ")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def demo_world(tmp_path, warehouse_url):
    """A demo's traces: its warehouse (a database of its own) and its world."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(warehouse_url)
    url = urlunsplit(parts._replace(path="/orderhub_local_airflow"))
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute("drop database if exists orderhub_local_airflow with (force)")
        conn.execute("create database orderhub_local_airflow")
    shops_file = tmp_path / "shops.yml"
    shops_file.write_text("shops:\n" + "".join(
        f"  - {{platform: {p}, shop_id: '{s}', conn_id: {c}}}\n" for p, s, c in SHOPS))
    saved = {name: (home() / name).read_text() for name in ("demo.json", "sandbox.json")
             if (home() / name).exists()}
    (home() / "demo.json").write_text(json.dumps({"seed": SEED, "scale": SCALE,
                                                  "shops_file": str(shops_file)}))
    yield url, shops_file
    for name in ("demo.json", "sandbox.json"):
        (home() / name).unlink(missing_ok=True)
        if name in saved:
            (home() / name).write_text(saved[name])


def test_make_airflow_shows_the_dags_and_the_readme_backfill_lands_the_truth(demo_world):
    demo_url, shops_file = demo_world
    commands = readme_commands()
    assert [c.split()[1:3] for c in commands] == [["dags", "unpause"], ["backfill", "create"]]
    port = _free_port()
    env = {**os.environ, "ORDERHUB_DATABASE_URL": demo_url,
           "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    env.pop("ORDERHUB_SHOPS_FILE", None)
    log = open(home() / "test-local-airflow.log", "w")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "orderhub_tools.cli", "airflow",
                                "--sandbox", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    api = f"http://127.0.0.1:{port}"
    try:
        # the login it printed opens the API, once the API answers
        deadline = time.monotonic() + 240
        printed = ""
        while time.monotonic() < deadline:
            assert process.poll() is None, (home() / "test-local-airflow.log").read_text()[-4000:]
            printed = (home() / "test-local-airflow.log").read_text()
            try:
                if "login: " in printed and requests.get(f"{api}/api/v2/version",
                                                         timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(2)
        assert f"Airflow UI and API: {api}" in printed
        user, password = re.search(r"^login: (\S+) / (\S+)", printed, re.M).groups()
        token = requests.post(f"{api}/auth/token", json={"username": user, "password": password},
                              timeout=30)
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        while time.monotonic() < deadline:
            dags = requests.get(f"{api}/api/v2/dags", headers=headers, timeout=30).json()
            if {d["dag_id"] for d in dags["dags"]} >= set(DAG_IDS):
                break
            time.sleep(3)
        assert {d["dag_id"] for d in dags["dags"]} >= set(DAG_IDS)
        errors = requests.get(f"{api}/api/v2/importErrors", headers=headers, timeout=30).json()
        assert errors["total_entries"] == 0, errors

        # the README's backfill, as written, from "a second terminal"
        airflow_home = str(home() / "airflow")
        for command in commands:
            argv = command.split()
            argv[0] = str(REPO_ROOT / argv[0])
            done = subprocess.run(argv, env={**os.environ, "AIRFLOW_HOME": airflow_home},
                                  capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        backfill = commands[1].split()
        start = parse_time(backfill[backfill.index("--from-date") + 1])
        end = start.replace(hour=start.hour + 1)
        runs_url = f"{api}/api/v2/dags/orders_incremental/dagRuns"
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            runs = [r for r in requests.get(runs_url, headers=headers, timeout=30).json()[
                "dag_runs"] if r["run_type"] == "backfill"
                and parse_time(r["data_interval_start"]) == start]
            if runs and runs[0]["state"] in ("success", "failed"):
                break
            time.sleep(5)
        assert runs and runs[0]["state"] == "success", runs

        # the hour's orders, landed through the scheduler, as the sandbox's truth has them:
        # its clock is the present, so each in its final state, if that was modified in the hour
        truth = cli_truth(SEED, SCALE, start, datetime.now(UTC), home() / "test-truth.jsonl",
                          shops_file=shops_file)
        expected = [row for row in truth if start <= row["updated_at"] < end]
        landed = fct_orders(demo_url)
        assert expected and differences(landed, expected) == {
            "missing": [], "unexpected": [], "duplicated": 0, "columns": []}
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        log.close()
    assert code == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{api}/api/v2/version", timeout=5)
