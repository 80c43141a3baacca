"""The DAGs parse cleanly, carry owners/retries/tags/timeouts, and run hourly
over real one-hour data intervals (not Airflow 3's zero-length @hourly)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from orderhub.config import REPO_ROOT, parse_time
from orderhub.transform import ensure_manifest
from orderhub_tools.runner import airflow_env


@pytest.fixture(scope="module")
def dagbag(warehouse_url):
    ensure_manifest()  # Cosmos renders the dbt task group from it
    os.environ.update({k: v for k, v in airflow_env().items() if k.startswith("AIRFLOW")})
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO_ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "orders_incremental" in dagbag.dag_ids


def test_every_dag_has_owner_retries_tags_and_timeouts(dagbag):
    for dag in dagbag.dags.values():
        assert dag.tags, dag.dag_id
        assert dag.dagrun_timeout, dag.dag_id
        for task in dag.tasks:
            assert task.owner == "orderhub", task.task_id
            assert task.retries >= 1, task.task_id
            assert task.execution_timeout is not None, task.task_id


def test_hourly_interval_is_one_real_hour(dagbag):
    dag = dagbag.dags["orders_incremental"]
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    import pendulum

    b = pendulum.instance(parse_time("2026-11-11T01:00"))
    # `orderhub run` asks `airflow dags test` for the interval [a, b) at b.
    interval = dag.timetable.infer_manual_data_interval(run_after=b)
    assert interval.end == b and interval.end - interval.start == timedelta(hours=1)


@pytest.mark.parametrize("dag_id, extract_id", [("orders_incremental", "extract_shop"),
                                                ("orders_repair", "repair_shop")])
def test_the_pipeline_order_is_extract_then_dbt_then_gx_then_alerts(dagbag, dag_id, extract_id):
    dag = dagbag.dags[dag_id]
    extract = dag.get_task(extract_id)
    check = dag.get_task("check_marts")
    assert check.upstream_task_ids == {"dbt.build"}
    assert "dbt.build" in extract.downstream_task_ids
    alert = dag.get_task("alert")
    assert "check_marts" in alert.upstream_task_ids
    # Checks and alerts run even when something upstream failed, and so does
    # dbt: what did land reaches the marts while the failed task fails the run.
    assert check.trigger_rule == alert.trigger_rule == "all_done"
    assert dag.get_task("dbt.build").trigger_rule == "all_done"
    if dag_id == "orders_incremental":  # raw and ledger checked right after landing
        assert dag.get_task("check_landing").upstream_task_ids == {extract_id}


def test_settlements_run_daily_extract_then_reconcile_then_check_then_audit(dagbag):
    dag = dagbag.dags["settlements_daily"]
    import pendulum

    b = pendulum.instance(parse_time("2026-11-11T00:00"))
    interval = dag.timetable.infer_manual_data_interval(run_after=b)
    assert interval.end == b and interval.end - interval.start == timedelta(days=1)
    assert "dbt.build" in dag.get_task("extract_settlements").downstream_task_ids
    assert dag.get_task("check_reconciliation").upstream_task_ids == {"dbt.build"}
    audit = dag.get_task("audit")
    assert audit.upstream_task_ids == {"check_reconciliation"}
    assert audit.trigger_rule == "all_done"  # a failed check is audited too
    assert dag.get_task("alert").upstream_task_ids == {"audit"}
    assert set(dag.params) == {"start", "end"}
    # a repair run with a span is a backfill unless it says it is live (docs/extraction.md)
    assert set(dagbag.dags["orders_repair"].params) == {"start", "end", "live", "open_only"}


def test_the_cosmos_task_group_renders_one_task_per_model(dagbag):
    """ORDERHUB_DBT_PER_MODEL_TASKS=1: the same DAGs with a Cosmos task group."""
    import subprocess
    import sys

    code = ("import os; from airflow.dag_processing.dagbag import DagBag;"
            "b = DagBag(dag_folder=os.environ['AIRFLOW__CORE__DAGS_FOLDER']);"
            "assert not b.import_errors, b.import_errors;"
            "d = b.dags['orders_incremental'];"
            "ids = {t.task_id for t in d.tasks};"
            "assert {'dbt.fct_orders_model_build', 'dbt.stg_orders_model_build'} <= ids, ids;"
            "assert d.get_task('check_marts').upstream_task_ids <= {i for i in ids if i.startswith('dbt.')};"
            "print('ok', len(ids))")
    env = airflow_env({"ORDERHUB_DBT_PER_MODEL_TASKS": "1"})
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0 and "\nok " in result.stdout, result.stderr[-2000:]


def test_both_dags_run_hourly_over_real_intervals(dagbag):
    for dag_id in ("orders_incremental", "orders_repair"):
        assert type(dagbag.dags[dag_id].timetable).__name__ == "CronDataIntervalTimetable"


def test_dag_files_do_no_io_at_parse_time(dagbag):
    """Parsing needs only the manifest: no warehouse, no Airflow connection."""
    import subprocess
    import sys

    code = ("import os; os.environ['ORDERHUB_DATABASE_URL']='postgresql://nobody@127.0.0.1:1/none';"
            "from airflow.dag_processing.dagbag import DagBag;"
            "b = DagBag(dag_folder=os.environ['AIRFLOW__CORE__DAGS_FOLDER']);"
            "assert not b.import_errors, b.import_errors; print(sorted(b.dag_ids))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "orders_repair" in result.stdout


def test_two_dbt_builds_at_once_never_overlap(warehouse_url, monkeypatch):
    """orders_incremental and orders_repair both build at the top of the hour:
    what their dbt.build tasks run (build_marts) takes turns on the warehouse's
    lock. dbt itself is replaced by a step that takes a moment and records
    when it ran; the lock is the real one, on the real warehouse."""
    import subprocess
    import threading
    import time

    from orderhub import orchestration, transform
    from orderhub.orchestration import build_marts

    steps: list[tuple[str, float, float]] = []

    def dbt_step(*args, **kwargs):
        began = time.monotonic()
        time.sleep(0.4)
        steps.append((threading.current_thread().name, began, time.monotonic()))
        return subprocess.CompletedProcess(args, 0, stdout="", stderr="")

    monkeypatch.setattr(transform, "dbt", dbt_step)
    monkeypatch.setattr(orchestration, "gates_passed", lambda: True)
    said: list[str] = []
    builds = [threading.Thread(target=build_marts, args=(warehouse_url, "salt"),
                               kwargs={"echo": said.append}, name=name)
              for name in ("orders_incremental", "orders_repair")]
    for build in builds:
        build.start()
    for build in builds:
        build.join(timeout=60)
    spans = {name: (min(a for n, a, _ in steps if n == name), max(b for n, _, b in steps if n == name))
             for name in ("orders_incremental", "orders_repair")}
    assert len(steps) == 2  # the build (the gates inside it passed), twice
    first, second = sorted(spans.values())
    assert first[1] <= second[0], spans  # one build ended before the other began
    assert any("waiting for it to end" in line for line in said)
