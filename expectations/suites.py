"""Expectation suites, in code. Every expectation carries a severity:
``critical`` fails the Airflow task, ``warning`` is reported but does not.

A checkpoint (``checks()``) is a list of validations: a table, a suite and,
for the marts, the column that places a row in the run's interval. Every
check looks at the run's interval (``Interval``), so its cost follows the
new hour, not the history: the raw and ledger checks at what the run landed,
the mart checks at the orders the platforms modified in it
(``Validation.scope``). An unbounded interval checks everything.

| checkpoint | after | what |
|---|---|---|
| ``raw_completeness`` | landing | every field the field map marks required is in every payload landed, per platform |
| ``ledger_completeness`` | landing | every extraction window of the interval is ok, landed what the platform reported, and the windows leave no gap |
| ``mapping_consistency`` | dbt | every raw status is mapped; every required standard field is populated (orders modified in the interval) |
| ``marts_validity`` | dbt | keys, codes in set, money identity, non-negative amounts, created <= paid <= shipped <= completed (orders modified in the interval) |
| ``reconciliation_coverage`` | dbt | every settlement line matched or categorized; each day ties out to the cent |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.metadata_types import FailureSeverity

from orderhub.mapping import UNMAPPED_STATUS, document_sql, read_seed, required_checks
from orderhub.platforms import names

ORDER_STATUS_CODES = [10, 20, 30, 40, 50]
REFUND_STATUS_CODES = [0, 1, 2]
CRITICAL, WARNING = FailureSeverity.CRITICAL, FailureSeverity.WARNING
# Standard fields every order must have once mapped (mapping consistency).
REQUIRED_STANDARD = ["created_at", "updated_at", "raw_order_status", "goods_amount",
                     "discount_amount", "shipping_fee", "paid_amount"]


@dataclass(frozen=True)
class Interval:
    """The run's data interval; None = everything."""
    start: datetime | None = None
    end: datetime | None = None

    def sql(self, column: str) -> str:
        if self.start is None or self.end is None:
            return "true"
        return (f"{column} >= '{self.start.isoformat()}'::timestamptz"
                f" and {column} < '{self.end.isoformat()}'::timestamptz")


def _rows(description: str, query: str, severity=CRITICAL) -> gxe.UnexpectedRowsExpectation:
    return gxe.UnexpectedRowsExpectation(description=description, unexpected_rows_query=query,
                                         severity=severity)


def raw_completeness_suite(platform: str, interval: Interval) -> gx.ExpectationSuite:
    """Every payload landed in the interval carries every required field of
    seeds/platform_mapping.csv (alternatives "a | b": one of them)."""
    expectations = []
    document = document_sql(platform)  # JSON-string fields parsed (the seed's decode rows)
    for row, paths in required_checks(platform, read_seed("platform_field_map")):
        missing = [("not " if negate else "")
                   + f"coalesce(jsonb_path_exists({document}, '{path.replace(chr(39), chr(39) * 2)}',"
                   " silent => true), false)"
                   for path, negate in paths]
        expectations.append(_rows(
            f"{platform} {row['entity']}.{row['standard_field']} ({row['source_path']}) is in every payload",
            f"select order_id, modified_at from {{batch}} where {interval.sql('modified_at')}"
            f" and {' and '.join(missing)}"))
    return gx.ExpectationSuite(name=f"raw_completeness_{platform}", expectations=expectations)


def ledger_completeness_suite(interval: Interval) -> gx.ExpectationSuite:
    """The extraction ledger for the interval: against the platforms' own counts."""
    where = interval.sql("window_start")
    return gx.ExpectationSuite(name="ledger_completeness", expectations=[
        _rows("every extraction window is ok (not failed or partial)",
              "select platform, shop_id, window_start, window_end, outcome, last_error"
              f" from {{batch}} where {where} and outcome <> 'ok'"),
        _rows("every window landed as many orders as the platform reported",
              "select platform, shop_id, window_start, window_end, api_reported_count, orders_landed"
              f" from {{batch}} where {where} and orders_landed < api_reported_count"),
        _rows("a shop's windows leave no gap",
              "select platform, shop_id, previous_end as gap_start, window_start as gap_end from ("
              " select platform, shop_id, window_start, lag(window_end) over ("
              "  partition by platform, shop_id, entity order by window_start) as previous_end"
              f" from {{batch}} where {where}) w where window_start > previous_end"),
    ])


def mapping_consistency_suite(interval: Interval) -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name="mapping_consistency", expectations=[
        _rows("every raw status pair is in seeds/platform_mapping.csv (kind status)",
              "select platform, raw_order_status, raw_refund_status, count(*) as orders"
              f" from {{batch}} where {UNMAPPED_STATUS}"
              " group by 1, 2, 3"),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c, severity=CRITICAL)
          for c in REQUIRED_STANDARD],
    ])


def marts_validity_suite(interval: Interval) -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name="marts_validity", expectations=[
        *[gxe.ExpectColumnValuesToNotBeNull(column=c, severity=CRITICAL)
          for c in ("platform", "shop_id", "order_id", "order_status_code",
                    "refund_status_code", "updated_at")],
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["platform", "shop_id", "order_id"], severity=CRITICAL),
        gxe.ExpectColumnValuesToBeInSet(
            column="order_status_code", value_set=ORDER_STATUS_CODES, severity=CRITICAL),
        gxe.ExpectColumnValuesToBeInSet(
            column="refund_status_code", value_set=REFUND_STATUS_CODES, severity=CRITICAL),
        gxe.ExpectColumnValuesToBeInSet(column="platform", value_set=list(names()),
                                        severity=CRITICAL),
        _rows("paid = goods - discounts + shipping, within 0.01",
              "select platform, shop_id, order_id from {batch} "
              "where abs(paid_amount - (goods_amount - discount_amount + shipping_fee)) > 0.01"),
        _rows("amounts are not negative",
              "select platform, shop_id, order_id from {batch} where goods_amount < 0"
              " or discount_amount < 0 or shipping_fee < 0 or paid_amount < 0"),
        _rows("created <= paid <= shipped <= completed",
              "select platform, shop_id, order_id from {batch} where paid_at < created_at"
              " or shipped_at < paid_at or completed_at < coalesce(shipped_at, paid_at)"),
        gxe.ExpectColumnValuesToBeBetween(column="paid_amount", min_value=0.01, severity=WARNING,
                                          description="orders paid nothing (warning only)"),
    ])


def reconciliation_coverage_suite(interval: Interval) -> gx.ExpectationSuite:
    """Settlement lines booked in the run's days, against the reconciliation."""
    from orderhub.reconciliation import recon_categories

    where = interval.sql("lines.settled_at")
    categories = ", ".join(f"'{c}'" for c in recon_categories())
    return gx.ExpectationSuite(name="reconciliation_coverage", expectations=[
        _rows("every settlement line is matched to an order or categorized",
              "select lines.platform, lines.shop_id, lines.settlement_line_id, lines.order_id"
              " from {batch} as lines join intermediate.int_settlement_coverage c"
              "   on c.platform = lines.platform and c.shop_id = lines.shop_id"
              "   and lines.settle_date >= c.first_day and lines.settle_date < c.end_day"
              " left join marts.fct_order_reconciliation r on r.order_key = lines.order_key"
              f" where {where} and (r.order_key is null or r.reconciliation_status"
              "   not in ('matched', 'difference', 'pending', 'awaiting_order'))"),
        # the daily report's identity, summed for the run's lines only (the
        # report is a view over all of history: a day filter does not reach
        # through its outer joins, so reading it cost the history)
        _rows("per platform, shop and day: settled = matched + differences + pending, to the cent",
              "select lines.platform, lines.shop_id, lines.settle_date, sum(lines.settle_amount)"
              " from {batch} as lines join intermediate.int_settlement_coverage c"
              "   on c.platform = lines.platform and c.shop_id = lines.shop_id"
              "   and lines.settle_date >= c.first_day and lines.settle_date < c.end_day"
              " left join marts.fct_order_reconciliation r on r.order_key = lines.order_key"
              f" where {where} group by 1, 2, 3 having sum(lines.settle_amount) <> coalesce(sum("
              "lines.settle_amount) filter (where r.reconciliation_status in ('matched', 'pending',"
              f" 'awaiting_order') or r.difference_category in ({categories})), 0)"),
        gxe.ExpectColumnValuesToNotBeNull(column="order_id", severity=CRITICAL),
        gxe.ExpectColumnValuesToNotBeNull(column="settle_amount", severity=CRITICAL),
        # (platform, shop_id, settlement_line_id) is unique by construction: the
        # table's unique index on settlement_line_key, their hash. GX's compound
        # check joined the batch to its own group counts, 18-31 s for a day of
        # 10,000 lines (issue 22), for a property the index already enforces.
    ])


@dataclass(frozen=True)
class Validation:
    """One table a checkpoint validates. ``scope``: the (indexed) column by
    which the batch is limited to the run's interval, or None when the
    suite's own queries apply the interval."""
    schema: str
    table: str
    suite: Callable[[Interval], gx.ExpectationSuite]
    scope: str | None = None

    def batch_query(self, interval: Interval) -> str:
        """The batch of a scoped validation: the rows of the interval (all
        rows when it is unbounded)."""
        return f"select * from {self.schema}.{self.table} where {interval.sql(self.scope)}"  # noqa: S608 - fixed names


def checks() -> dict[str, list[Validation]]:
    """Checkpoint name -> what it validates; raw completeness once per
    registered platform, on its partition of raw.orders."""
    return {
        "raw_completeness": [Validation("raw", f"orders__{p}",
                                        lambda i, p=p: raw_completeness_suite(p, i))
                             for p in names()],
        "ledger_completeness": [Validation("ops", "extraction_windows", ledger_completeness_suite)],
        "mapping_consistency": [Validation("marts", "fct_orders", mapping_consistency_suite,
                                           "updated_at")],
        "marts_validity": [Validation("marts", "fct_orders", marts_validity_suite, "updated_at")],
        "reconciliation_coverage": [Validation("marts", "fct_settlement_lines",
                                               reconciliation_coverage_suite, "settled_at")],
    }
# Checkpoints run after landing and after dbt, in this order.
AFTER_LANDING = ["raw_completeness", "ledger_completeness"]
AFTER_DBT = ["mapping_consistency", "marts_validity"]
AFTER_RECONCILIATION = ["reconciliation_coverage"]
