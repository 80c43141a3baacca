"""Expectation suites. Every expectation carries a severity: ``critical``
fails the Airflow task, ``warning`` is reported but does not."""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.metadata_types import FailureSeverity

ORDER_STATUS_CODES = [10, 20, 30, 40, 50]
REFUND_STATUS_CODES = [0, 1, 2]
PLATFORMS = ["tmall", "jd", "pdd", "douyin"]


def fct_orders_suite() -> gx.ExpectationSuite:
    critical = FailureSeverity.CRITICAL
    return gx.ExpectationSuite(
        name="fct_orders",
        expectations=[
            *[gxe.ExpectColumnValuesToNotBeNull(column=c, severity=critical)
              for c in ("platform", "shop_id", "order_id", "order_status_code",
                        "refund_status_code", "updated_at")],
            gxe.ExpectCompoundColumnsToBeUnique(
                column_list=["platform", "shop_id", "order_id"], severity=critical),
            gxe.ExpectColumnValuesToBeInSet(
                column="order_status_code", value_set=ORDER_STATUS_CODES, severity=critical),
            gxe.ExpectColumnValuesToBeInSet(
                column="refund_status_code", value_set=REFUND_STATUS_CODES, severity=critical),
            gxe.ExpectColumnValuesToBeInSet(column="platform", value_set=PLATFORMS, severity=critical),
            gxe.UnexpectedRowsExpectation(
                description="every raw status pair is in seeds/platform_status_map.csv",
                unexpected_rows_query=(
                    "select platform, raw_order_status, raw_refund_status, count(*) as orders"
                    " from {batch} where order_status_code is null or refund_status_code is null"
                    " group by 1, 2, 3"
                ),
                severity=critical,
            ),
            gxe.UnexpectedRowsExpectation(
                description="paid = goods - discounts + shipping, within 0.01",
                unexpected_rows_query=(
                    "select platform, shop_id, order_id from {batch} "
                    "where abs(paid_amount - (goods_amount - discount_amount + shipping_fee)) > 0.01"
                ),
                severity=critical,
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="paid_amount", min_value=0, severity=FailureSeverity.WARNING),
        ],
    )


# (schema, table) -> suite factory: what each checkpoint validates.
CHECKS = {
    "fct_orders": ("marts", "fct_orders", fct_orders_suite),
}
