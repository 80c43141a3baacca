"""A warehouse made by OrderHub before the platform registry (one raw table
per platform and entity) migrates to one raw table per entity with nothing
lost: raw row counts per platform and entity, and every mart, identical.

The old warehouse is made by the old code itself: the commit before the
change, checked out as a git worktree, its sandbox, extraction and dbt
project. Then today's code migrates it (``orderhub db migrate``, as the first
run would) and builds today's dbt project on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from orderhub.config import REPO_ROOT, dbt_project_dir
from orderhub.transform import dbt, dbt_env
from tests.truth import mart_digest

pytestmark = pytest.mark.integration


def missing_indexes(url: str) -> list[tuple[str, list[str]]]:
    """Each index an incremental model's config names (dbt's manifest) that its
    table lacks: (relation, columns)."""
    manifest = json.loads((dbt_project_dir() / "target" / "manifest.json").read_text())
    wanted = [(f"{node['schema']}.{node['alias']}", index["columns"])
              for node in manifest["nodes"].values()
              if node["resource_type"] == "model"
              and node["config"].get("materialized") == "incremental"
              for index in node["config"].get("indexes") or []]
    assert len(wanted) > 10, wanted
    with psycopg.connect(url) as conn:
        have = {(relation, tuple(columns)) for relation, columns in conn.execute(
            "select i.indrelid::regclass::text,"
            "       array(select a.attname::text"
            "             from unnest(i.indkey::int2[]) with ordinality as k(attnum, n)"
            "             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum"
            "             order by k.n)"
            " from pg_index i where i.indpred is null")}
    return [(relation, columns) for relation, columns in wanted
            if (relation, tuple(columns)) not in have]

# main before issue 16: raw.<platform>_orders / raw.<platform>_settlements.
BEFORE = "b226ddc72eacb3d2cb6b4f414ca3ed0419a2ba94"
SALT = "migration-test-salt"

# Run by the old code (its packages first on the path): an hour of orders
# and a day of settlements from its sandbox into its raw tables, then its dbt.
OLD_RUN = '''
import sys
from datetime import timedelta
import orderhub
from orderhub.config import load_shops, parse_time
from orderhub.extract import extract_shop, extract_windows
from orderhub.platforms import Credentials
from orderhub.runner import SANDBOX_PATHS, dbt
from orderhub.sandbox.gateway import sandbox_credentials
from orderhub.sandbox.server import SandboxSpec, serve

assert orderhub.__file__.startswith(sys.argv[1]), orderhub.__file__
shops = load_shops()
pairs = [(s.platform, s.shop_id) for s in shops]
server = serve(SandboxSpec(seed=7, shops=pairs, scale=0.03))
base = f"http://127.0.0.1:{server.server_address[1]}"
t0, t1 = parse_time("2026-11-11T00:00"), parse_time("2026-11-11T01:00")
day0 = parse_time("2026-11-10T00:00")
for shop in shops:
    app = sandbox_credentials(7, shop.platform, [s for p, s in pairs if p == shop.platform])
    creds = Credentials(base + SANDBOX_PATHS[shop.platform], app.app_key, app.app_secret,
                        app.token_for(shop.shop_id))
    server.sandbox.clock.set((t1 + timedelta(minutes=3)).timestamp())
    assert extract_shop(shop, t0 - timedelta(days=3), t1, run_id="old",
                        credentials=creds).windows_failed == 0
    assert extract_windows(shop, [(day0, day0 + timedelta(days=1))], run_id="old",
                           credentials=creds, entity="settlements").windows_failed == 0
server.shutdown()
built = dbt("build", check=False)
print(built.stdout[-3000:])
if built.returncode == 0:  # GX keeps what its checkpoints validate in its project files
    from expectations.checkpoints import run_check
    run_check("raw_completeness")
sys.exit(built.returncode)
'''


def old_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'raw'"
            " and table_type = 'BASE TABLE' order by 1")]
        return {t: conn.execute(f"select count(*) from raw.{t}").fetchone()[0] for t in tables}


def new_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {f"{platform}_{entity}": n for entity in ("orders", "settlements")
                for platform, n in conn.execute(
                    f"select platform, count(*) from raw.{entity} group by 1")}


def marts(url: str) -> dict[str, str]:
    """Every relation in marts, as a digest of its rows (the mapping
    fingerprint left out: the mapping seed's files changed, not what they say)."""
    with psycopg.connect(url) as conn:
        names = [r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'"
            " order by 1")]
    return {name: mart_digest(url, name, exclude=NEWER_COLUMNS + NEWER_BY_MART.get(name, ()))
            for name in names}


# Columns the marts gained after the old commit (the mapping fingerprint, the
# history sync's count, push intake's figures, issue 22's build stamps and
# ranges, issue 18's merchant SKU of a line): left out of the comparison.
NEWER_COLUMNS = ("mapping_hash", "versions_backfilled", "versions_pushed", "orders_pushed",
                 "orders_poll_only", "push_latency_p50_seconds", "push_latency_p95_seconds",
                 "push_latency_max_seconds", "poll_latency_p95_seconds", "built_at",
                 "judged_at", "range_first_day", "range_end_day", "merchant_sku", "order_date")
NEWER_BY_MART = {"fct_money_events": ("landed_at",)}  # a column other marts had before
# Marts added after the old commit: issue 17's live orders, issue 18's stock,
# issue 19's deliveries.
ADDED_SINCE = {"live_orders", "stock_positions", "stock_channel_allocations", "stock_offers",
               "fct_stock_position_history", "fct_oversold_incidents", "rpt_unmapped_skus",
               "rpt_oversell_risk", "rpt_shop_status", "fct_deliveries",
               "fct_order_delivery_costs"}


def test_a_warehouse_of_per_platform_raw_tables_migrates_with_nothing_lost(tmp_path,
                                                                          warehouse_url):
    old = tmp_path / "before"
    subprocess.run(["git", "worktree", "add", "--detach", str(old), BEFORE], cwd=REPO_ROOT,
                   check=True, capture_output=True)
    try:
        url = warehouse_url.rsplit("/", 1)[0] + "/orderhub_migration"
        with psycopg.connect(warehouse_url, autocommit=True) as conn:
            conn.execute("drop database if exists orderhub_migration with (force)")
            conn.execute("create database orderhub_migration")
        env = {**os.environ, "ORDERHUB_DATABASE_URL": url, "ORDERHUB_PII_SALT": SALT,
               "PYTHONPATH": os.pathsep.join([str(old / "plugins"), str(old)]),
               "ORDERHUB_HOME": str(tmp_path / "old-home"),
               "ORDERHUB_SHOPS_FILE": str(old / "config" / "shops.yml")}
        made = subprocess.run([sys.executable, "-c", OLD_RUN, str(old)], env=env,
                              capture_output=True, text=True, cwd=old)
        assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
        before_raw = old_counts(url)
        assert "tmall_orders" in before_raw and before_raw["tmall_orders"] > 0
        assert before_raw["douyin_settlements"] > 0
        before = marts(url)
        assert len(before) >= 10 and before["fct_orders"]

        migrated = subprocess.run(
            [sys.executable, "-m", "orderhub_tools.cli", "db", "migrate"],
            env={**os.environ, "ORDERHUB_DATABASE_URL": url}, capture_output=True, text=True)
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        assert "raw.tmall_orders -> raw.orders" in migrated.stdout, migrated.stdout
        assert new_counts(url) == {k: v for k, v in before_raw.items() if v}
        with psycopg.connect(url) as conn:
            left = conn.execute("select count(*) from information_schema.tables where"
                                " table_schema = 'raw' and table_name ~ '_(orders|settlements)$'"
                                " and table_name !~ '__'").fetchone()[0]
        assert left == 0  # the per-platform tables are gone

        with psycopg.connect(url) as conn:
            platforms_before = conn.execute("select * from marts.dim_platforms order by 1").fetchall()
        built = dbt("build", check=False, env=dbt_env(url, salt=SALT))
        assert built.returncode == 0, built.stdout[-3000:]
        after = marts(url)
        with psycopg.connect(url) as conn:  # a column added since: every old row rebuilt with it
            undated = conn.execute("select count(*) filter (where order_date is null), count(*)"
                                   " from marts.fct_orders").fetchone()
        assert undated[0] == 0 and undated[1] > 0, undated
        # Indexes added to a model's config since (fct_settlement_lines.built_at,
        # fct_orders.order_status_code, ...): made on the old tables.
        assert missing_indexes(url) == []
        # dim_platforms is the registry now: the same rows for the platforms the
        # old warehouse knew, and a row for each platform registered since (the mall,
        # Meituan, Ele.me).
        with psycopg.connect(url) as conn:
            platforms_after = conn.execute("select * from marts.dim_platforms order by 1").fetchall()
        known = {row[0] for row in platforms_before}
        assert [row for row in platforms_after if row[0] in known] == platforms_before
        assert {row[0] for row in platforms_after} - known == {"mall", "meituan", "eleme"}
        del before["dim_platforms"], after["dim_platforms"]
        assert set(after) - set(before) == ADDED_SINCE
        for relation in ADDED_SINCE:
            del after[relation]
        assert after == before, json.dumps(
            {k: (before.get(k), after.get(k)) for k in set(before) | set(after)
             if before.get(k) != after.get(k)}, indent=1)
        again = subprocess.run([sys.executable, "-m", "orderhub_tools.cli", "db", "migrate"],
                               env={**os.environ, "ORDERHUB_DATABASE_URL": url},
                               capture_output=True, text=True)
        assert again.returncode == 0 and "nothing to migrate" in again.stdout
        # The GX project the old code left (checkpoints naming raw.tmall_orders ...)
        # does not stop today's checkpoints.
        checked = subprocess.run(
            [sys.executable, "-c", "from expectations.checkpoints import run_check;"
             "o = run_check('raw_completeness'); print(o.summary()); assert o.evaluated"],
            env={**os.environ, "ORDERHUB_DATABASE_URL": url, "ORDERHUB_HOME": env["ORDERHUB_HOME"]},
            capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr[-3000:]
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO_ROOT,
                       capture_output=True)
        Path(old).exists() and subprocess.run(["rm", "-rf", str(old)])
