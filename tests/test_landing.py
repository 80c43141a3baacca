"""Raw landing: idempotent, COPY-based, with quarantine and ledger."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from orderhub.config import parse_time
from orderhub.extract import to_rows
from orderhub.landing import WindowLoad, connect, ensure_schema, land
from orderhub.platforms import Credentials, client_for

pytestmark = pytest.mark.integration
T0 = parse_time("2026-11-11T00:00")


def _load(rows, rejected=()):
    return WindowLoad("pdd", "pdd-tea", "orders", T0, T0 + timedelta(minutes=30), "test-run",
                      rows=list(rows), rejected=list(rejected), api_reported_count=len(rows))


def test_same_versions_land_once_and_bad_payloads_are_quarantined(clean_warehouse):
    client = client_for("pdd", Credentials("http://unused", "k", "s", "t"))
    orders = [
        {"order_sn": "261111-1", "updated_at": "2026-11-11 00:01:05", "pay_amount": 1},
        {"order_sn": "261111-2", "updated_at": "2026-11-11 00:02:05", "pay_amount": 2},
        {"order_sn": "261111-2", "updated_at": "2026-11-11 00:02:05", "pay_amount": 2},  # dup
        {"updated_at": "2026-11-11 00:03:05"},  # no order id
        {"order_sn": "261111-4", "updated_at": "not a time"},
    ]
    rows, rejected = to_rows(client, orders)
    assert len(rows) == 3 and len(rejected) == 2
    assert "order id or modified time" in rejected[0].reason
    with connect(clean_warehouse) as conn:
        ensure_schema(conn)
        assert land(conn, _load(rows, rejected)) == 2
        assert land(conn, _load(rows, rejected)) == 0  # again: nothing new
        raw = conn.execute("select count(*) from raw.orders__pdd").fetchone()[0]
        quarantined = conn.execute("select count(*), min(reason) from ops.quarantine").fetchone()
        ledger = conn.execute("select orders_landed, rows_inserted, attempts, outcome"
                              " from ops.extraction_windows").fetchall()
    assert raw == 2
    assert quarantined[0] == 2 and quarantined[1].startswith("pdd: payload lacks")
    assert ledger == [(2, 0, 0, "ok")]


def test_a_new_version_of_an_order_is_a_new_row(clean_warehouse):
    client = client_for("pdd", Credentials("http://unused", "k", "s", "t"))
    v1, _ = to_rows(client, [{"order_sn": "X", "updated_at": "2026-11-11 00:01:05", "order_status": 1}])
    v2, _ = to_rows(client, [{"order_sn": "X", "updated_at": "2026-11-11 00:09:05", "order_status": 2}])
    with connect(clean_warehouse) as conn:
        ensure_schema(conn)
        land(conn, _load(v1))
        land(conn, _load(v2))
        land(conn, _load(v1))
        assert conn.execute("select count(*) from raw.orders__pdd").fetchone()[0] == 2


def test_a_failed_transaction_leaves_neither_rows_nor_ledger(clean_warehouse):
    client = client_for("pdd", Credentials("http://unused", "k", "s", "t"))
    rows, _ = to_rows(client, [{"order_sn": "Y", "updated_at": "2026-11-11 00:01:05"}])
    load = _load(rows)
    load.outcome = "bogus"  # violates the ledger's check constraint, after the rows went in
    with connect(clean_warehouse) as conn:
        ensure_schema(conn)
        with pytest.raises(psycopg.errors.CheckViolation):
            land(conn, load)
        assert conn.execute("select count(*) from raw.orders__pdd").fetchone()[0] == 0
        assert conn.execute("select count(*) from ops.extraction_windows").fetchone()[0] == 0


def test_ensure_schema_takes_no_lock_when_current(clean_warehouse):
    """Every task calls ensure_schema; while another task lands, it must not
    wait for (or deadlock with) that landing's locks."""
    import psycopg

    with connect(clean_warehouse) as conn:
        ensure_schema(conn)
    with psycopg.connect(clean_warehouse) as lander:
        lander.execute("lock table raw.orders__pdd in row exclusive mode")  # a landing, in flight
        with connect(clean_warehouse) as conn:
            conn.execute("set lock_timeout = '2s'")
            ensure_schema(conn)  # would time out if it ran ALTER TABLE
            assert conn.info.transaction_status.name == "IDLE"


def test_a_large_landing_refreshes_the_partitions_statistics(clean_warehouse):
    """A landing that grows a raw partition by a tenth or more (at least
    ANALYZE_AFTER_ROWS rows) analyzes it, so the dbt build right after plans
    on what is there; a small one leaves it to autovacuum (issue 22)."""
    from orderhub.landing import ANALYZE_AFTER_ROWS, RawRow, sha256

    def rows(first: int, count: int) -> list[RawRow]:
        texts = [(str(n), f'{{"order_sn": "{n}"}}') for n in range(first, first + count)]
        return [RawRow(n, T0, t, sha256(t)) for n, t in texts]

    def planned_rows(conn) -> float:  # what the planner believes the partition holds
        return conn.execute("select reltuples from pg_class"
                            " where oid = 'raw.orders__pdd'::regclass").fetchone()[0]

    with connect(clean_warehouse) as conn:
        ensure_schema(conn)
        assert planned_rows(conn) <= 0  # new: never analyzed
        assert land(conn, _load(rows(0, ANALYZE_AFTER_ROWS))) == ANALYZE_AFTER_ROWS
        assert planned_rows(conn) == ANALYZE_AFTER_ROWS
        land(conn, _load(rows(ANALYZE_AFTER_ROWS, 100)))  # small: left to autovacuum
        assert planned_rows(conn) == ANALYZE_AFTER_ROWS
