"""orders_incremental: every hour, every shop's orders modified in that hour.

    list_shops -> extract_shop (mapped, one per shop) -> dbt.build -> check_marts
    snapshot_stock ----------------------------------/  +-> check_landing
    check_landing, check_marts -> alert   (both checks and the alerts run even when
                                           something upstream failed: all_done)

The DAG file only wires: the work lives in ``orderhub`` (extraction, landing,
dbt) and ``expectations`` (GX). Nothing touches a database at parse time.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from orderhub.orchestration import dbt_task_group, hourly_dag, run_checkpoints, send_alerts


@dag(**hourly_dag(dag_id="orders_incremental", tags=["orderhub", "orders", "hourly"], doc_md=__doc__))
def orders_incremental():
    @task
    def list_shops() -> list[dict]:
        """The configured shops (config/shops.yml or ORDERHUB_SHOPS_FILE)."""
        from orderhub.config import load_shops

        return [shop.__dict__ for shop in load_shops()]

    @task(map_index_template="{{ task.op_kwargs['shop']['platform'] }}/{{ task.op_kwargs['shop']['shop_id'] }}")
    def extract_shop(shop: dict, data_interval_start=None, data_interval_end=None,
                     run_id=None) -> dict:
        """Pull and land one shop's orders modified in the run's data interval.
        Fails (after landing everything it could) if a window could not be read;
        the ledger has the window and orders_repair re-pulls it."""
        from orderhub.config import Shop
        from orderhub.extract import extract_interval

        result = extract_interval(Shop(**shop), data_interval_start, data_interval_end,
                                  run_id=run_id)
        if result.windows_failed:
            raise RuntimeError(f"{result.windows_failed} window(s) failed: {result.errors}")
        return result.as_dict()

    @task
    def snapshot_stock(run_id=None) -> dict:
        """The warehouse's on-hand per merchant SKU (raw.stock_on_hand;
        connection orderhub_wms, skipped without one) and what every shop
        lists now (raw.stock_listings). Issue 18."""
        from orderhub.stock import snapshot_stock as snapshot

        return snapshot(run_id)

    @task(trigger_rule="all_done")
    def check_landing(data_interval_start=None, data_interval_end=None, run_id=None) -> dict:
        """GX: raw completeness (required fields in every payload) and the
        ledger against the platforms' own counts, for this interval."""
        from expectations.suites import AFTER_LANDING

        return run_checkpoints(AFTER_LANDING, data_interval_start, data_interval_end, run_id)

    @task(trigger_rule="all_done")
    def check_marts(data_interval_start=None, data_interval_end=None, run_id=None) -> dict:
        """GX: mapping consistency and validity of the marts."""
        from expectations.suites import AFTER_DBT

        return run_checkpoints(AFTER_DBT, data_interval_start, data_interval_end, run_id)

    @task(trigger_rule="all_done")
    def alert(data_interval_start=None, data_interval_end=None, run_id=None) -> dict:
        """Latency, incomplete windows, unknown statuses, failed critical
        expectations: to the webhook / e-mail channels (orderhub.alerts)."""
        return send_alerts(data_interval_start, data_interval_end, run_id)

    extracted = extract_shop.expand(shop=list_shops())
    landing_checked = check_landing()
    marts_checked = check_marts()
    extracted >> landing_checked
    [extracted, snapshot_stock()] >> dbt_task_group() >> marts_checked
    [landing_checked, marts_checked] >> alert()


orders_incremental()
