"""Pieces the DAGs share (orders_incremental, orders_repair, settlements_daily):
default arguments, schedules, the dbt task group, the GX and alert tasks.

Imported by the DAG files at parse time, so nothing here touches a database
or the network; Cosmos only reads dbt's ``target/manifest.json``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from orderhub.config import PLATFORM_TZ, dbt_project_dir

WAREHOUSE_CONN = "orderhub_warehouse"
START_DATE = datetime(2026, 11, 1, tzinfo=PLATFORM_TZ)
# dbt's profile reads these; Airflow fills them from the warehouse connection at run time.
DBT_ENV = {
    f"ORDERHUB_DB_{var}": "{{ conn.%s.%s }}" % (WAREHOUSE_CONN, field)  # noqa: UP031 - Jinja braces
    for var, field in [("HOST", "host"), ("PORT", "port"), ("USER", "login"),
                       ("PASSWORD", "password or ''"), ("NAME", "schema")]
} | {
    # The salt for buyer hashes: an Airflow Variable (AIRFLOW_VAR_ORDERHUB_PII_SALT
    # or a secrets backend), given to dbt's connections as a session setting
    # (orderhub.transform.salt_options). Missing, the template fails the task.
    "PGOPTIONS": "-c orderhub.pii_salt={{ var.value.orderhub_pii_salt }}",
}


def default_args() -> dict:
    """Owner, retries and timeouts for every task. ``orderhub run`` sets
    ``ORDERHUB_TASK_RETRIES=0`` for its by-hand runs: the repair DAG, not a
    one-minute task retry, is what heals a failed window there."""
    return {
        "owner": "orderhub",
        "retries": int(os.environ.get("ORDERHUB_TASK_RETRIES", 2)),
        "retry_delay": timedelta(seconds=int(os.environ.get("ORDERHUB_RETRY_DELAY_SECONDS", 60))),
        "execution_timeout": timedelta(minutes=30),
    }


def hourly():
    """Hourly data intervals in Beijing time. Not "@hourly": in Airflow 3 that
    is a CronTriggerTimetable whose data interval has zero length."""
    from airflow.timetables.interval import CronDataIntervalTimetable

    return CronDataIntervalTimetable("0 * * * *", timezone="Asia/Shanghai")


def hourly_dag(**kwargs) -> dict:
    """What every hourly OrderHub DAG shares; ``kwargs`` add dag_id, tags, docs."""
    return {
        "schedule": hourly(),
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "dagrun_timeout": timedelta(minutes=55),
        "default_args": default_args(),
        **kwargs,
    }


def daily():
    """Daily data intervals, midnight to midnight Beijing time (a day's bills)."""
    from airflow.timetables.interval import CronDataIntervalTimetable

    return CronDataIntervalTimetable("0 0 * * *", timezone="Asia/Shanghai")


def daily_dag(**kwargs) -> dict:
    return {**hourly_dag(**kwargs), "schedule": daily(), "dagrun_timeout": timedelta(hours=6)}


# A manual run's params: what the Airflow UI's trigger form shows and checks.
SPAN_PARAMS = {
    "start": ("ISO 8601 time the span starts at, e.g. 2026-11-11T00:00:00+08:00 (without an"
              " offset: Beijing time). Leave empty for the run's own data interval."),
    "end": "ISO 8601 time the span ends before (exclusive), e.g. 2026-11-12T00:00:00+08:00.",
}


def span_params(live: bool = False) -> dict:
    """Params start/end (and live, for the repair DAG) with descriptions and formats."""
    from airflow.sdk import Param

    params = {name: Param(None, type=["null", "string"], format="date-time", description=text)
              for name, text in SPAN_PARAMS.items()}
    if live:
        params["live"] = Param(False, type="boolean", description=(
            "With start/end: the span is part of the live cycle (a by-hand run's partial"
            " hours and closing repair), not a history sync: its versions count for"
            " sync latency and its alerts are hourly."))
        params["open_only"] = Param(False, type="boolean", description=(
            "Re-pull only the ledger's open windows up to the end, not the span: the"
            " retry of a repair whose first run read the span and left a few windows"
            " open (a retry that re-read everything would meet the faults again)."))
    return params


def span_from(params: dict | None, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The run's span: its data interval, or a manual run's ``start``/``end``
    params (ISO times; a backfill of a range in one run)."""
    from orderhub.config import parse_time

    params = params or {}
    if params.get("start") and params.get("end"):
        return parse_time(params["start"]), parse_time(params["end"])
    return start, end


def dbt_task_group(group_id: str = "dbt", reconciliation: bool = False):
    """The dbt project in the DAG.

    Default: one task, ``dbt.build``: ``dbt build`` of the whole project with
    the gate tests (``tag:gate``: every raw status mapped, every required field
    present) inside it at severity warn, and again on their own, raising, when
    one did not pass (build_marts). So a failing gate fails the task without
    holding back the marts for the orders that are fine. For the
    same reason it runs when an extraction task failed (``all_done``): what did
    land reaches the marts, the failed task still fails the run, and the
    ledger says which windows are open.

    ``ORDERHUB_DBT_PER_MODEL_TASKS=1``: a Cosmos task group instead, one task
    per model (dbt build: the model and its tests), relationship tests after
    both their models. More to look at in the Airflow UI, and about 1.5 s of
    task overhead per node per run (docs/architecture.md)."""
    if os.environ.get("ORDERHUB_DBT_PER_MODEL_TASKS") == "1":
        return _cosmos_task_group(group_id)
    from airflow.sdk import TaskGroup, task

    with TaskGroup(group_id=group_id) as group:
        @task(task_id="build", trigger_rule="all_done")
        def build() -> dict:
            """dbt build (incremental marts), then the gate tests."""
            return run_dbt_build(reconciliation)

        build()
    return group


# What settlements_daily builds: the models tagged reconciliation in dbt
# (tests/test_settlement_world.py checks this list against dbt's selection).
RECONCILIATION_RELATIONS = ("marts.fct_settlement_lines", "marts.fct_money_events",
                            "marts.fct_order_reconciliation", "marts.rpt_reconciliation_daily",
                            "marts.rpt_recon_review_queue")


def build_exclusions(url: str, reconciliation: bool) -> list[str]:
    """What a DAG's dbt build leaves out: for the hourly order DAGs, the
    reconciliation models (``tag:reconciliation``) once they all exist:
    settlements_daily rebuilds those, and their cost follows settlement
    history, not the new hour. On a fresh warehouse they are built once, so
    the views over them exist; one that went missing (a view dropped with an
    upstream model that changed from view to table) is built again by the
    next hourly run."""
    from orderhub.landing import connect, relation_exists

    exclude = []
    if not reconciliation:
        with connect(url) as conn:
            if all(relation_exists(conn, relation) for relation in RECONCILIATION_RELATIONS):
                exclude.append("tag:reconciliation")
    return exclude


def dbt_build_steps(url: str, reconciliation: bool) -> list[tuple[str, ...]]:
    """The dbt command of a DAG's dbt.build task: the build, the gate tests
    (``tag:gate``) inside it at severity warn (test_scope_env); GATE_STEP
    runs them again on their own when one did not pass (gates_passed)."""
    exclude = build_exclusions(url, reconciliation)
    return [("build", *(("--exclude", *exclude) if exclude else ()))]


# The gates: every raw status mapped, every required field present
# (tests/test_settlement_world.py checks this list against dbt's selection).
GATE_TESTS = ("assert_all_statuses_mapped", "assert_required_fields_present")
GATE_STEP = ("test", "--select", "tag:gate")


def gates_passed() -> bool:
    """Whether the last build ran every gate test and each one passed (its
    run_results.json; read under the build lock, so it is this build's)."""
    import json

    from orderhub.config import dbt_project_dir

    path = dbt_project_dir() / "target" / "run_results.json"
    if not path.exists():
        return False
    status = {r["unique_id"].split(".")[-1]: r["status"]
              for r in json.loads(path.read_text())["results"]
              if r["unique_id"].startswith("test.")}
    return all(status.get(name) == "pass" for name in GATE_TESTS)


def test_scope_env(reconciliation: bool) -> dict[str, str]:
    """Every DAG tests only what it built in the history-sized relations:
    the recently landed rows, and the reconciliation rows its build judged,
    so an hourly run's cost follows the hour and the daily settlements run's
    the day (issue 22; dbt_project/macros/data_test_scope.sql). A build by
    hand (``orderhub dbt build``) tests every row. The gates run inside the
    build without raising (macros/gate_raises.sql)."""
    return {"ORDERHUB_DBT_TEST_SCOPE": "recent", "ORDERHUB_GATES": "deferred"}


def build_marts(url: str, salt: str, *, reconciliation: bool = False,
                scope: str | None = None, echo=print) -> list[str]:
    """What a DAG's dbt.build task runs: the build with the gates inside it,
    then - only when a gate did not pass, or the build failed - the gates on
    their own, which fail naming what is wrong (macros/gate_raises.sql);
    against ``url`` with ``salt``; returns the steps that failed (their
    output is echoed). ``scope``: the data test scope (default: the DAG's,
    see test_scope_env); ``orderhub dbt build`` uses "all". Shared by the
    DAG task and the CLI, so a replay is built exactly as a DAG run builds."""
    from orderhub.transform import dbt, dbt_env, one_build_at_a_time

    env = {**dbt_env(url, salt=salt), **test_scope_env(reconciliation)}
    if scope:
        env["ORDERHUB_DBT_TEST_SCOPE"] = scope
    failed = []
    with one_build_at_a_time(url, echo):
        steps = dbt_build_steps(url, reconciliation)
        for args in steps:
            result = dbt(*args, check=False, env=env)
            echo(result.stdout)
            if result.returncode != 0:
                failed.append(" ".join(args))
        if failed or not gates_passed():
            result = dbt(*GATE_STEP, check=False, env={**env, "ORDERHUB_GATES": "raise"})
            echo(result.stdout)
            if result.returncode != 0:
                failed.append(" ".join(GATE_STEP))
    return failed


def run_dbt_build(reconciliation: bool = False) -> dict:
    from airflow.sdk import BaseHook, Variable

    url = BaseHook.get_connection(WAREHOUSE_CONN).get_uri()
    # No salt, no hashes: a missing Variable fails the task.
    failed = build_marts(url, Variable.get("orderhub_pii_salt"), reconciliation=reconciliation)
    if failed:
        raise RuntimeError(f"dbt failed: {', '.join(failed)} (the errors are in the log above)")
    return {"ok": True}


def _cosmos_task_group(group_id: str):
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import InvocationMode, LoadMode, TestBehavior

    project = dbt_project_dir()
    return DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(dbt_project_path=project,
                                     manifest_path=project / "target" / "manifest.json"),
        profile_config=ProfileConfig(profile_name="orderhub", target_name="dev",
                                     profiles_yml_filepath=project / "profiles.yml"),
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST,
                                   test_behavior=TestBehavior.BUILD,
                                   should_detach_multiple_parents_tests=True),
        execution_config=ExecutionConfig(invocation_mode=InvocationMode.DBT_RUNNER),
        operator_args={"env": DBT_ENV, "append_env": True, "install_deps": False},
    )


def run_checkpoints(names: list[str], start: datetime | None = None, end: datetime | None = None,
                    run_id: str | None = None) -> dict:
    """GX checkpoints for the run's interval. Every one runs and keeps its
    results (ops.validation_results, Data Docs); then a failed critical
    expectation in any of them fails the task. Warnings do not."""
    from expectations.checkpoints import run_check
    from expectations.suites import Interval

    outcomes = [run_check(name, interval=Interval(start, end), run_id=run_id) for name in names]
    for outcome in outcomes:
        print(outcome.summary())
    failed = [o for o in outcomes if not o.success]
    if failed:
        raise RuntimeError("critical expectations failed:\n" + "\n".join(o.summary() for o in failed))
    return {o.name: {"evaluated": o.evaluated, "failed": len(o.failures)} for o in outcomes}


def send_alerts(start: datetime, end: datetime, run_id: str | None, kind: str = "live") -> dict:
    """Evaluate the alert rules of a run of ``kind`` (live, backfill,
    settlements) and send the new alerts to the configured channels
    (orderhub.alerts)."""
    from orderhub.alerts import channels_from_airflow, notify
    from orderhub.config import database_url

    channels = channels_from_airflow()
    new = notify(database_url(), start, end, run_id, channels, kind)
    for alert in new:
        print(alert.message)
    return {"new_alerts": len(new), "channels": [type(c).__name__ for c in channels]}
