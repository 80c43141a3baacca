"""settlements_daily: every day, every shop's settlement lines booked that day,
then the reconciliation.

    list_shops -> extract_settlements (mapped, one per shop) -> dbt.build
               -> check_reconciliation -> audit -> alert

The data interval is one Beijing day (a platform's bill). A manual run may
pass params ``start``/``end`` (ISO times on midnights) to reconcile a range of
days in one run; scheduled catch-up and ``airflow backfill`` run day by day.
Each run re-reads any settlement window the ledger has open, appends an
audit record (ops.recon_audit) and fails if a critical reconciliation check
fails (every line matched or categorized, each day ties out to the cent).
"""

from __future__ import annotations

from airflow.sdk import dag, task

from orderhub.orchestration import (
    daily_dag,
    dbt_task_group,
    run_checkpoints,
    send_alerts,
    span_from,
    span_params,
)


@dag(**daily_dag(dag_id="settlements_daily", tags=["orderhub", "settlements", "reconciliation", "daily"],
                 doc_md=__doc__,
                 params=span_params()))
def settlements_daily():
    @task
    def list_shops(params=None, data_interval_start=None, data_interval_end=None) -> list[dict]:
        """Per shop: the run's span of days, plus settlement windows still open."""
        from orderhub.repair import plan_run

        return plan_run(params, data_interval_start, data_interval_end, entity="settlements")

    @task(map_index_template="{{ task.op_kwargs['job']['shop']['platform'] }}/{{ task.op_kwargs['job']['shop']['shop_id'] }}")
    def extract_settlements(job: dict, run_id=None) -> dict:
        from orderhub.repair import run_job

        result = run_job(job, run_id, entity="settlements")
        if result.windows_failed:
            raise RuntimeError(f"{result.windows_failed} settlement window(s) failed: {result.errors}")
        return result.as_dict()

    @task
    def check_reconciliation(params=None, data_interval_start=None, data_interval_end=None,
                             run_id=None) -> dict:
        """GX: every settlement line matched or categorized; each day ties out."""
        from expectations.suites import AFTER_RECONCILIATION

        start, end = span_from(params, data_interval_start, data_interval_end)
        return run_checkpoints(AFTER_RECONCILIATION, start, end, run_id)

    @task(trigger_rule="all_done")
    def audit(params=None, data_interval_start=None, data_interval_end=None, run_id=None) -> dict:
        """An immutable record of this run: rules, inputs and result hashes."""
        from orderhub.config import PLATFORM_TZ
        from orderhub.reconciliation import audit as record

        start, end = span_from(params, data_interval_start, data_interval_end)
        return record(run_id, start.astimezone(PLATFORM_TZ).date(), end.astimezone(PLATFORM_TZ).date())

    @task(trigger_rule="all_done")
    def alert(params=None, data_interval_start=None, data_interval_end=None, run_id=None) -> dict:
        """Differences over tolerance waiting for review, failed checks, open windows."""
        start, end = span_from(params, data_interval_start, data_interval_end)
        return send_alerts(start, end, run_id, kind="settlements")

    extracted = extract_settlements.expand(job=list_shops())
    extracted >> dbt_task_group(reconciliation=True) >> check_reconciliation() >> audit() >> alert()


settlements_daily()
