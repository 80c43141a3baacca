"""orders_repair: every hour, re-pull what the ledger says is not complete.

    plan_repairs -> repair_shop (mapped, one per shop) -> dbt.build -> check_marts -> alert

Per shop: every ledger window that is failed, partial or short, plus a rolling
re-pull of the last ORDERHUB_REPAIR_HOURS (4) hours before the interval end
(updates up to 3 hours late; see orderhub.repair).
A manual run with params ``start``/``end`` re-pulls that span instead of the
rolling one: a historical sync (`orderhub run --history-days`, the demo);
with ``open_only`` as well, only the ledger's open windows up to ``end`` (the
retry of such a run: what its first try read is already landed).
The standing version of the article's "re-pull the last three hours" script,
one hour longer so that it also catches what shows up three hours late.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from orderhub.orchestration import (
    dbt_task_group,
    hourly_dag,
    run_checkpoints,
    send_alerts,
    span_from,
    span_params,
)


@dag(**hourly_dag(dag_id="orders_repair", tags=["orderhub", "orders", "repair", "hourly"], doc_md=__doc__,
                  params=span_params(live=True)))
def orders_repair():
    @task
    def plan_repairs(params=None, data_interval_start=None, data_interval_end=None) -> list[dict]:
        """Open windows plus the rolling span - or, when a manual run passes
        params start/end, that whole span (a historical re-sync)."""
        from orderhub.repair import plan_run

        return plan_run(params, data_interval_start, data_interval_end)

    @task(map_index_template="{{ task.op_kwargs['job']['shop']['platform'] }}/{{ task.op_kwargs['job']['shop']['shop_id'] }}")
    def repair_shop(job: dict, run_id=None) -> dict:
        from orderhub.repair import run_job

        result = run_job(job, run_id)
        if result.windows_failed:
            raise RuntimeError(f"{result.windows_failed} window(s) still failing: {result.errors}")
        return {**result.as_dict(), "open_windows_before": job["open_windows"]}

    @task(trigger_rule="all_done")
    def check_marts(data_interval_start=None, data_interval_end=None, run_id=None) -> dict:
        from expectations.suites import AFTER_DBT

        return run_checkpoints(AFTER_DBT, data_interval_start, data_interval_end, run_id)

    @task(trigger_rule="all_done")
    def alert(params=None, data_interval_start=None, data_interval_end=None, run_id=None) -> dict:
        """A history sync is summarized once; a live repair gets the hourly rules."""
        from orderhub.repair import sync_mode

        start, end = span_from(params, data_interval_start, data_interval_end)
        return send_alerts(start, end, run_id, kind=sync_mode(params))

    repair_shop.expand(job=plan_repairs()) >> dbt_task_group() >> check_marts() >> alert()


orders_repair()
