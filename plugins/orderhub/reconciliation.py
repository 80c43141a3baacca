"""Reconciliation outside dbt: the audit record, overrides, the summary.

The reconciliation itself is dbt (``models/marts/reconciliation``); this
module records each run of it (:func:`audit`), lets a person resolve a review
item (:func:`resolve`), and summarises a range for ``orderhub demo`` and
``orderhub recon summary`` (:func:`summary`).

An audit record holds three hashes: of the rules in force (``recon_rules``
and the contract terms in ``platform_terms``), of the inputs (the settlement
lines and the books' orders the range judges) and of the result (every
judged order's status, category, amounts and action). Re-running a range over
unchanged data appends a record with the same three hashes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal

import psycopg

from orderhub.landing import connect, ensure_schema, relation_exists

# Per range: the settlement lines landed in it and the orders the reconciliation judged.
INPUTS_SQL = {
    "settlement_lines": """
        select count(*), coalesce(md5(string_agg(settlement_line_key || ':' || payload_sha256,
                                                 ',' order by settlement_line_key)), '')
        from marts.fct_settlement_lines where settle_date >= %(start)s and settle_date < %(end)s""",
    "books_orders": """
        select count(*), coalesce(md5(string_agg(concat_ws(':', o.order_key, o.updated_at,
                   o.order_status_code, o.refund_status_code, o.paid_amount, o.completed_at),
                   ',' order by o.order_key)), '')
        from marts.fct_order_reconciliation r
        -- one lookup per judged order on fct_orders' unique (platform, shop_id,
        -- order_id) index, not the order history scanned: as a plain join the
        -- planner hashes the range's orders and reads all of fct_orders, a cost
        -- that grows with history (issue 22's 5b). `offset 0` keeps it a lookup.
        cross join lateral (
            select o.order_key, o.updated_at, o.order_status_code, o.refund_status_code,
                   o.paid_amount, o.completed_at
            from marts.fct_orders o
            where o.platform = r.platform and o.shop_id = r.shop_id and o.order_id = r.order_id
            offset 0
        ) as o
        where r.reconciliation_date >= %(start)s and r.reconciliation_date < %(end)s""",
}
RESULT_SQL = """
    select platform, reconciliation_status, coalesce(difference_category, '') as category,
           count(*) as orders, sum(settled_amount) as settled, sum(difference_amount) as difference,
           count(*) filter (where action = 'manual_review' and resolution is null) as review
    from marts.fct_order_reconciliation
    where reconciliation_date >= %(start)s and reconciliation_date < %(end)s
    group by 1, 2, 3 order by 1, 2, 3"""
RESULT_HASH_SQL = """
    select coalesce(md5(string_agg(concat_ws(':', order_key, reconciliation_status,
               difference_category, expected_amount, settled_amount, difference_amount, action),
               ',' order by order_key)), '')
    from marts.fct_order_reconciliation
    where reconciliation_date >= %(start)s and reconciliation_date < %(end)s"""
RULES_HASH_SQL = """
    select md5(coalesce((select string_agg(r::text, '|' order by r::text) from seeds.recon_rules r), '')
               || '#' || coalesce((select string_agg(p::text, '|' order by p::text)
                                   from seeds.platform_terms p), ''))"""


def dbt_var(name: str):
    """A var of dbt_project.yml (the reconciliation's settings live there)."""
    import yaml

    from orderhub.config import dbt_project_dir

    project = yaml.safe_load((dbt_project_dir() / "dbt_project.yml").read_text(encoding="utf-8"))
    return project["vars"][name]


def recon_categories() -> list[str]:
    """The difference categories (var recon_categories)."""
    return list(dbt_var("recon_categories"))


def order_history_days() -> int:
    """How far before the reconciled days the order history must reach
    (var recon_order_history_days): sync at least this much first."""
    return int(dbt_var("recon_order_history_days"))


def _money(value) -> str:
    return f"{Decimal(value or 0):.2f}"


def result_rows(conn: psycopg.Connection, start: date, end: date) -> list[dict]:
    cur = conn.execute(RESULT_SQL, {"start": start, "end": end})
    names = [d.name for d in cur.description]
    return [{**dict(zip(names, row, strict=True)), "settled": _money(row[4]),
             "difference": _money(row[5])} for row in cur.fetchall()]


def audit(run_id: str, start: date, end: date, url: str | None = None) -> dict:
    """Append the audit record of one reconciliation run over [start, end)."""
    with connect(url) as conn:
        ensure_schema(conn)
        params = {"start": start, "end": end}
        rules_hash = conn.execute(RULES_HASH_SQL).fetchone()[0]
        inputs = {}
        for name, sql in INPUTS_SQL.items():
            count, digest = conn.execute(sql, params).fetchone()
            inputs[name] = {"rows": count, "hash": digest}
        result = {"groups": result_rows(conn, start, end),
                  "orders_hash": conn.execute(RESULT_HASH_SQL, params).fetchone()[0]}
        inputs_hash = _hash(inputs)
        result_hash = _hash(result)
        conn.execute(
            "insert into ops.recon_audit (run_id, range_start, range_end, rules_hash, inputs,"
            " inputs_hash, result, result_hash) values (%s, %s, %s, %s, %s, %s, %s, %s)",
            (run_id, start, end, rules_hash, json.dumps(inputs), inputs_hash,
             json.dumps(result, default=str), result_hash))
        conn.commit()
    return {"run_id": run_id, "range": [start.isoformat(), end.isoformat()],
            "rules_hash": rules_hash, "inputs_hash": inputs_hash, "result_hash": result_hash,
            "inputs": inputs}


def _hash(value: dict) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def resolve(platform: str, shop_id: str, order_id: str, category: str, resolution: str,
            reason: str, resolved_by: str, url: str | None = None) -> None:
    """A person resolves a review item: appended to ops.recon_overrides and
    applied on top of the computed result at the next dbt run. Only an order
    the reconciliation shows with a difference of that category can be
    resolved (a later resolution of the same item supersedes the earlier)."""
    from orderhub.config import UserError

    if not reason.strip() or not resolved_by.strip() or not resolution.strip():
        raise UserError("a resolution needs --resolution, --reason and --by")
    if category not in recon_categories():
        raise UserError(f"unknown category {category!r}: {', '.join(recon_categories())}")
    with connect(url) as conn:
        ensure_schema(conn)
        if not relation_exists(conn, "marts.fct_order_reconciliation"):
            raise UserError("nothing is reconciled yet (marts.fct_order_reconciliation):"
                            " run settlements_daily first")
        found = conn.execute(
            "select difference_category from marts.fct_order_reconciliation"
            " where platform = %s and shop_id = %s and order_id = %s"
            " and reconciliation_status = 'difference'",
            (platform, shop_id, order_id)).fetchall()
        if not found:
            raise UserError(f"{platform}/{shop_id} order {order_id} has no reconciliation"
                            " difference to resolve (marts.rpt_recon_review_queue lists them)")
        if category not in {row[0] for row in found}:
            raise UserError(f"{platform}/{shop_id} order {order_id} differs as"
                            f" {', '.join(sorted(row[0] for row in found))}, not as {category}")
        conn.execute(
            "insert into ops.recon_overrides (platform, shop_id, order_id, category, resolution,"
            " reason, resolved_by) values (%s, %s, %s, %s, %s, %s, %s)",
            (platform, shop_id, order_id, category, resolution, reason, resolved_by))
        conn.commit()


def summary(start: date, end: date, url: str | None = None) -> dict:
    """Consistency rate, differences by category with amounts, review-queue
    size, for the orders reconciled in [start, end)."""
    with connect(url) as conn:
        rows = result_rows(conn, start, end)
    matched = sum(r["orders"] for r in rows if r["reconciliation_status"] == "matched")
    differences: dict[str, dict] = {}
    for r in rows:
        if r["reconciliation_status"] == "difference":
            entry = differences.setdefault(r["category"], {"orders": 0, "amount": Decimal(0)})
            entry["orders"] += r["orders"]
            entry["amount"] += Decimal(r["difference"])
    judged = matched + sum(d["orders"] for d in differences.values())
    return {
        "range": [start.isoformat(), end.isoformat()],
        "matched": matched,
        "judged": judged,
        "consistency_rate": matched / judged if judged else None,
        "differences": differences,
        "pending": sum(r["orders"] for r in rows
                       if r["reconciliation_status"] in ("pending", "awaiting_order")),
        "review_queue": sum(r["review"] for r in rows),
    }


def print_summary(s: dict) -> None:
    rate = f"{s['consistency_rate']:.2%}" if s["consistency_rate"] is not None else "-"
    print(f"\nreconciliation [{s['range'][0]}, {s['range'][1]}) (marts.fct_order_reconciliation)")
    print(f"orders judged {s['judged']}, matched {s['matched']}, consistency {rate};"
          f" pending {s['pending']}; review queue {s['review_queue']}")
    print(f"{'category':<18} {'orders':>7} {'amount (yuan)':>14}")
    for category, d in sorted(s["differences"].items()):
        print(f"{category:<18} {d['orders']:>7} {d['amount']:>14.2f}")
