"""orders_incremental: every hour, every shop's orders modified in that hour.

    list_shops -> extract_shop (mapped, one per shop) -> dbt (Cosmos) -> check_fct_orders

The DAG file only wires: the work lives in ``orderhub`` (extraction and
landing) and ``expectations`` (GX). Nothing runs at parse time but reading
dbt's manifest.json, which is how Cosmos renders the dbt task group without
calling dbt.

Interval: ``CronDataIntervalTimetable`` - a bare "@hourly" would give Airflow
3's ``CronTriggerTimetable``, whose data interval has zero length.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior

from orderhub.config import PLATFORM_TZ

DBT_PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"
WAREHOUSE_CONN = "orderhub_warehouse"
# dbt's profile reads these; Airflow fills them from the warehouse connection at run time.
DBT_ENV = {
    f"ORDERHUB_DB_{var}": "{{ conn.%s.%s }}" % (WAREHOUSE_CONN, field)  # noqa: UP031 - Jinja braces
    for var, field in [("HOST", "host"), ("PORT", "port"), ("USER", "login"),
                       ("PASSWORD", "password or ''"), ("NAME", "schema")]
}

default_args = {
    "owner": "orderhub",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "execution_timeout": timedelta(minutes=30),
}


@dag(
    dag_id="orders_incremental",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="Asia/Shanghai"),
    start_date=datetime(2026, 11, 1, tzinfo=PLATFORM_TZ),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=55),
    default_args=default_args,
    tags=["orderhub", "orders", "hourly"],
    doc_md=__doc__,
)
def orders_incremental():
    @task
    def list_shops() -> list[dict]:
        """The configured shops (config/shops.yml or ORDERHUB_SHOPS_FILE)."""
        from orderhub.config import load_shops

        return [shop.__dict__ for shop in load_shops()]

    @task(map_index_template="{{ task.op_kwargs['shop']['platform'] }}/{{ task.op_kwargs['shop']['shop_id'] }}")
    def extract_shop(shop: dict, data_interval_start=None, data_interval_end=None,
                     run_id=None) -> dict:
        """Pull and land one shop's orders modified in the run's data interval."""
        from orderhub.config import Shop
        from orderhub.extract import extract_interval

        result = extract_interval(Shop(**shop), data_interval_start, data_interval_end,
                                  run_id=run_id)
        if result.windows_failed:
            raise RuntimeError(f"{result.windows_failed} window(s) failed: {result.errors}")
        return result.as_dict()

    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            dbt_project_path=DBT_PROJECT,
            manifest_path=DBT_PROJECT / "target" / "manifest.json",
        ),
        profile_config=ProfileConfig(
            profile_name="orderhub",
            target_name="dev",
            profiles_yml_filepath=DBT_PROJECT / "profiles.yml",
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.BUILD,
            # tests that read two models (relationships) run after both exist
            should_detach_multiple_parents_tests=True,
        ),
        execution_config=ExecutionConfig(invocation_mode=InvocationMode.DBT_RUNNER),
        operator_args={"env": DBT_ENV, "append_env": True, "install_deps": False},
    )

    @task
    def check_fct_orders() -> dict:
        """GX checkpoint on marts.fct_orders; a failed critical expectation fails the task."""
        from expectations.checkpoints import run_check

        outcome = run_check("fct_orders")
        print(outcome.summary())
        if not outcome.success:
            raise RuntimeError(outcome.summary())
        return {"evaluated": outcome.evaluated, "failed": len(outcome.failures)}

    extract_shop.expand(shop=list_shops()) >> dbt >> check_fct_orders()


orders_incremental()
