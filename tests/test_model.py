"""The standardized model beyond fct_orders: mapping as data, required fields,
`orderhub mapping check`, incremental == full refresh after late updates,
what an hourly run tests and checks, and `dbt docs generate`. Built on the documentation-shaped replay fixtures,
so no Airflow run is needed here (tests/test_end_to_end.py runs the DAGs)."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from expectations.checkpoints import data_docs_index
from orderhub.config import dbt_project_dir
from orderhub.transform import dbt, dbt_env, ensure_manifest
from tests.browser import drawn_dom, fetched_resources
from tests.truth import mart_digest, reset

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parent / "fixtures" / "replay"
SHOPS = {"tmall": "tmall-docs", "jd": "jd-docs", "pdd": "pdd-docs", "douyin": "douyin-docs"}


def replay(platform: str, path: Path, shop: str | None = None) -> None:
    """What ``orderhub replay`` does (tests/test_replay.py runs the command),
    in this process: the fixture lands four files before each test."""
    from orderhub.replay import replay as land_files

    results = land_files(platform, shop or SHOPS[platform], [path])
    assert all(r.landed for r in results), [r.line() for r in results]


def mapping_check() -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orderhub_tools.cli", "mapping", "check"],
                          capture_output=True, text=True)


def build(*args: str, project: Path | None = None) -> subprocess.CompletedProcess:
    return dbt("build", *args, check=False, project=project)


def fixture(platform: str) -> dict:
    return json.loads((FIXTURES / f"{platform}_orders.json").read_text(encoding="utf-8"))


def write(tmp_path: Path, name: str, body: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture()
def replayed(warehouse_url):
    """Every platform's documentation-shaped responses landed and built."""
    reset(warehouse_url)
    ensure_manifest()
    for platform in SHOPS:
        replay(platform, FIXTURES / f"{platform}_orders.json")
    result = build()
    assert result.returncode == 0, result.stdout[-3000:]
    return warehouse_url


def test_a_required_field_missing_from_payloads_fails_build_and_check(replayed, tmp_path):
    body = fixture("tmall")
    trade = body["trades_sold_increment_get_response"]["trades"]["trade"][0]
    broken = copy.deepcopy(trade)
    broken.update(tid=2231958399, tid_str="2231958399")
    del broken["payment"]  # paid_amount's path
    body["trades_sold_increment_get_response"]["trades"]["trade"] = [broken]
    replay("tmall", write(tmp_path, "tmall_broken.json", body))

    result = build()
    assert result.returncode != 0
    assert "Required fields missing from payloads: tmall order.paid_amount ($.payment)" \
        " missing in 1 payloads" in result.stdout

    check = mapping_check()
    assert check.returncode == 1
    assert "tmall order.paid_amount ($.payment): missing in 1 orders" in check.stdout


def test_mapping_check_suggests_seed_rows_for_unread_fields(replayed):
    check = mapping_check()
    assert check.returncode == 0, check.stdout  # nothing unmapped, nothing missing
    assert "unmapped statuses: 0" in check.stdout
    # Fields the map does not read, with the row to paste (unit guessed).
    # (rows of seeds/platform_mapping.csv: platform, kind, entity, field, path, unit, ...)
    assert "pdd,field,order,pay_type,$.pay_type,,,,false,,,,,string in 1 of 1 orders" \
        in check.stdout
    assert "tmall,field,order_item,divide_order_fee,$.divide_order_fee,yuan,,,false," \
        in check.stdout
    assert "douyin,field,order_item,sum_amount,$.sum_amount,fen,,,false," in check.stdout
    # Fields it does read, the loader's identity fields and filtered paths, are not listed.
    rows = [line.strip().split(",") for line in check.stdout.splitlines()
            if line.strip().split(",")[0] in SHOPS]
    suggested = {(row[0], row[2], row[4]) for row in rows}
    assert ("tmall", "order_item", "$.payment") in suggested  # a line's payment: not mapped
    for covered in [("tmall", "order", "$.payment"), ("tmall", "order", "$.tid"),
                    ("tmall", "order_item", "$.refund_status"), ("jd", "order", "$.orderId"),
                    ("jd", "order", "$.couponDetailList[*].couponPrice"),
                    ("douyin", "order", "$.post_addr.city.name"), ("pdd", "order", "$.order_sn")]:
        assert covered not in suggested


def unmapped_skus(url: str) -> dict:
    """rpt_unmapped_skus: outer id -> order lines, and how many lines of
    fct_order_items have no merchant SKU (kept, not dropped)."""
    with psycopg.connect(url) as conn:
        listed = dict(conn.execute("select outer_sku_id, order_lines"
                                   " from marts.rpt_unmapped_skus").fetchall())
        kept = conn.execute("select count(*) from marts.fct_order_items"
                            " where merchant_sku is null").fetchone()[0]
    return {"listed": listed, "lines_kept": kept}


def test_mapping_a_field_or_a_sku_is_a_seed_edit(replayed, tmp_path, warehouse_url):
    """README "Mapping a new field": a standard_fields row and one field row
    per platform in platform_mapping.csv; no SQL changes, no full refresh.
    Likewise a platform SKU whose outer id is not a merchant SKU (issue 18):
    flagged with its lines kept, then mapped by a row of sku_mapping.csv."""
    # The documentation's SKU codes are not the brand's, but PDD's TEA-001.
    assert unmapped_skus(warehouse_url) == {
        "listed": {"CUP-1": 1, "LJ-250G": 1, "CUP-2": 1, "SET-9": 1, "TEA-MATCHA": 1},
        "lines_kept": 5}
    project = tmp_path / "dbt_project"
    shutil.copytree(dbt_project_dir(), project, ignore=shutil.ignore_patterns("target", "logs"))
    seeds = project / "seeds"

    def hashes() -> tuple[list, list]:
        with psycopg.connect(warehouse_url) as conn:
            return tuple(conn.execute(f"select distinct mapping_hash from marts.{t}").fetchall()
                         for t in ("fct_orders", "fct_order_items"))

    with psycopg.connect(warehouse_url) as conn:
        sku = conn.execute("select outer_sku_id from marts.fct_order_items"
                           " where sku_id = '3120347566711'").fetchone()[0]
    assert sku == "LJ-250G"
    before, lines_before = hashes()
    # A SKU mapping row rebuilds the lines, and neither fct_orders nor what
    # is judged from it.
    with (seeds / "sku_mapping.csv").open("a", encoding="utf-8") as f:
        f.write("tmall,tmall-docs,3120347566711,TEA-002,the docs' LJ-250G\n")
    result = build(project=project)
    assert result.returncode == 0, result.stdout[-3000:]
    orders_after_sku, lines_after_sku = hashes()
    assert orders_after_sku == before and len(lines_after_sku) == 1
    assert lines_after_sku != lines_before
    assert unmapped_skus(warehouse_url)["listed"] == {"CUP-1": 1, "CUP-2": 1, "SET-9": 1,
                                                      "TEA-MATCHA": 1}

    with (seeds / "standard_fields.csv").open("a", encoding="utf-8") as f:
        f.write("29,order,payment_method,text,,how the buyer paid\n")
    with (seeds / "platform_mapping.csv").open("a", encoding="utf-8") as f:
        f.write("pdd,field,order,payment_method,$.pay_type,,,,false,,,,,\n")
    result = build(project=project)
    assert result.returncode == 0, result.stdout[-3000:]
    with psycopg.connect(warehouse_url) as conn:
        methods = dict(conn.execute(
            "select platform, max(payment_method) from staging.stg_orders"
            " group by 1").fetchall())
        after = conn.execute("select distinct mapping_hash from marts.fct_orders").fetchall()
    assert methods == {"pdd": "WEIXIN", "tmall": None, "jd": None, "douyin": None}
    # Every mart row was rebuilt with the new mapping, incrementally.
    assert len(after) == 1 and after != before
    assert unmapped_skus(warehouse_url) == {
        "listed": {"CUP-1": 1, "CUP-2": 1, "SET-9": 1, "TEA-MATCHA": 1}, "lines_kept": 4}


def test_incremental_equals_full_refresh_after_late_updates(replayed, tmp_path, warehouse_url):
    # 0. What has landed so far landed a day ago, except Tmall's order two
    #    hours ago: the marts' watermark; the rest is outside the 3 h lookback.
    with psycopg.connect(warehouse_url) as conn:
        for platform in SHOPS:
            shift = "2 hours" if platform == "tmall" else "1 day"
            conn.execute("update raw.orders set extracted_at = extracted_at - %s::interval"
                         " where platform = %s", (shift, platform))
    assert build("--full-refresh").returncode == 0
    # 1. A newer version of the Tmall order: completed.
    body = fixture("tmall")
    trade = body["trades_sold_increment_get_response"]["trades"]["trade"][0]
    trade.update(status="TRADE_FINISHED", modified="2026-11-14 12:00:09", end_time="2026-11-14 12:00:09")
    for line in trade["orders"]["order"]:
        line["status"] = "TRADE_FINISHED"
    replay("tmall", write(tmp_path, "tmall_later.json", body))
    # 2. An older version of the Douyin order, landing late: must not win.
    body = fixture("douyin")
    order = body["data"]["shop_order_list"][0]
    order.update(order_status=2, update_time=order["pay_time"], finish_time=0, ship_time=0)
    replay("douyin", write(tmp_path, "douyin_older.json", body))
    # 3. A newer JD version whose landing committed late: extracted_at one hour
    #    before the marts' watermark (inside the lookback).
    jd = fixture("jd")["jingdong_pop_order_search_responce"]["searchorderinfo_result"]
    shipped = dict(jd["orderInfoList"][1], orderState="WAIT_GOODS_RECEIVE_CONFIRM",
                   modified="2026-11-11 20:00:09")
    with psycopg.connect(warehouse_url) as conn:
        conn.execute(
            "insert into raw.orders (platform, shop_id, order_id, modified_at, payload,"
            " payload_sha256, extracted_at, run_id)"
            " select 'jd', %s, %s, '2026-11-11 20:00:09+08', %s::jsonb, md5(%s),"
            " (select max(landed_at) from marts.fct_orders) - interval '1 hour', 'late-commit'",
            (SHOPS["jd"], shipped["orderId"], json.dumps(shipped), json.dumps(shipped)))

    result = build()  # incremental
    assert result.returncode == 0, result.stdout[-3000:]
    run_results = json.loads((dbt_project_dir() / "target" / "run_results.json").read_text())
    rebuilt = {r["unique_id"].split(".")[-1]: r["adapter_response"].get("rows_affected")
               for r in run_results["results"] if r["unique_id"].startswith("model.")}
    assert rebuilt["fct_orders"] == 3  # tmall, douyin, jd: not all five
    assert rebuilt["int_order_expected_settlement"] <= 3  # the orders fct_orders rebuilt, at most
    with psycopg.connect(warehouse_url) as conn:
        status = dict(conn.execute("select platform || ':' || order_id, order_status_code"
                                   " from marts.fct_orders").fetchall())
    assert status["tmall:2231958349"] == 40
    assert status["douyin:6919254891236917498"] == 40
    assert status[f"jd:{shipped['orderId']}"] == 30
    incremental = {t: mart_digest(warehouse_url, t) for t in
                   ("fct_orders", "fct_order_items", "intermediate.int_order_expected_settlement")}

    result = build("--full-refresh")
    assert result.returncode == 0, result.stdout[-3000:]
    assert {t: mart_digest(warehouse_url, t) for t in incremental} == incremental


def test_a_contract_terms_change_recomputes_every_expected_payout(replayed, tmp_path,
                                                                  warehouse_url):
    """The expected payouts are kept incrementally with the orders; an edit of
    the contract terms (seeds/platform_terms.csv) recomputes all of them in the
    next ordinary build, as a full refresh would, though no order landed."""
    expected = "intermediate.int_order_expected_settlement"

    def commissions() -> dict:
        with psycopg.connect(warehouse_url) as conn:
            return dict(conn.execute(f"select platform, sum(commission_expected) from {expected}"
                                     " group by 1").fetchall())

    with psycopg.connect(warehouse_url) as conn:  # Douyin's order outside the watermark's lookback
        conn.execute("update raw.orders set extracted_at = extracted_at - interval '1 day'"
                     " where platform = 'douyin'")
    assert build("--full-refresh").returncode == 0
    before = commissions()
    project = tmp_path / "dbt_project"
    shutil.copytree(dbt_project_dir(), project, ignore=shutil.ignore_patterns("target", "logs"))
    terms = project / "seeds" / "platform_terms.csv"
    edited = terms.read_text(encoding="utf-8").replace("douyin,2,0.05,0.01", "douyin,2,0.10,0.01")
    assert edited != terms.read_text(encoding="utf-8")  # Douyin's commission: 5 % -> 10 %
    terms.write_text(edited, encoding="utf-8")

    result = build(project=project)  # incremental
    assert result.returncode == 0, result.stdout[-3000:]
    after = commissions()
    assert after["douyin"] > before["douyin"] > 0
    assert {p: v for p, v in after.items() if p != "douyin"} == \
           {p: v for p, v in before.items() if p != "douyin"}
    incremental = mart_digest(warehouse_url, expected)
    result = build("--full-refresh", project=project)
    assert result.returncode == 0, result.stdout[-3000:]
    assert mart_digest(warehouse_url, expected) == incremental


def test_hourly_runs_test_and_check_the_new_data_daily_runs_everything(replayed, tmp_path,
                                                                       warehouse_url):
    """An hourly run's dbt tests (ORDERHUB_DBT_TEST_SCOPE=recent) and GX mart
    checks (the run's interval) look at the new rows only, so their cost
    follows the hour; a run without the scope looks at every row."""
    from datetime import UTC, datetime

    from expectations.checkpoints import run_check
    from expectations.suites import Interval

    with psycopg.connect(warehouse_url) as conn:  # history: landed a day ago
        conn.execute("update raw.orders set extracted_at = extracted_at - interval '1 day'")
    assert build("--full-refresh").returncode == 0
    body = fixture("tmall")  # the new hour: a newer Tmall version (modified 12:00 Beijing)
    trade = body["trades_sold_increment_get_response"]["trades"]["trade"][0]
    trade.update(status="TRADE_FINISHED", modified="2026-11-14 12:00:09", end_time="2026-11-14 12:00:09")
    replay("tmall", write(tmp_path, "tmall_later.json", body))
    assert build().returncode == 0
    with psycopg.connect(warehouse_url) as conn:  # one defect in the history, one in the hour
        conn.execute("update marts.fct_orders set order_status_code = 99 where platform = 'jd'")
        conn.execute("update marts.fct_orders set paid_amount = paid_amount + 1 where platform = 'tmall'")

    def failed_tests(scope: str) -> set[str]:
        dbt("test", "--select", "fct_orders", "assert_paid_amount_identity", check=False,
            env={**dbt_env(), "ORDERHUB_DBT_TEST_SCOPE": scope})
        results = json.loads((dbt_project_dir() / "target" / "run_results.json").read_text())
        return {r["unique_id"].split(".")[2] for r in results["results"] if r["status"] == "fail"}

    status_test = "relationships_fct_orders_order_status_code__order_status_code__ref_order_status_codes_"
    assert failed_tests("recent") == {"assert_paid_amount_identity"}
    assert failed_tests("all") == {"assert_paid_amount_identity", status_test}

    def failed_checks(interval: Interval) -> set[str]:
        return {f["description"] for f in run_check("marts_validity", interval=interval).failures}

    hour = Interval(datetime(2026, 11, 14, 4, tzinfo=UTC), datetime(2026, 11, 14, 5, tzinfo=UTC))
    in_the_hour = failed_checks(hour)
    assert in_the_hour == {"paid = goods - discounts + shipping, within 0.01"}, in_the_hour
    everything = failed_checks(Interval())
    assert any("order_status_code" in f for f in everything) and in_the_hour < everything, everything


def test_orderhub_docs_builds_and_serves_both_sites(replayed, warehouse_url, tmp_path):
    """`orderhub docs --serve`: dbt's docs as one static page (it opens from
    disk, with the catalog inside), the GX Data Docs, both served on 127.0.0.1."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    import requests

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "orderhub_tools.cli", "docs", "--serve",
                               "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "ORDERHUB_DATABASE_URL": warehouse_url})
    try:
        said = []
        deadline = time.monotonic() + 300
        while not any("serving on" in line for line in said) and time.monotonic() < deadline:
            line = server.stdout.readline()
            assert line, "".join(said)
            said.append(line)
        catalog = json.loads((dbt_project_dir() / "target" / "catalog.json").read_text())
        columns = catalog["nodes"]["model.orderhub.fct_orders"]["columns"]
        assert {"order_status_code", "paid_amount", "buyer_key"} <= set(columns)
        base = f"http://127.0.0.1:{port}"
        assert "/dbt/" in requests.get(base + "/", timeout=10).text
        page = requests.get(base + "/dbt/", timeout=30)
        assert page.ok and "buyer_key" in page.text  # the catalog is inside the page
        assert requests.get(base + "/gx/index.html", timeout=10).ok
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    # the Data Docs render offline: no page fetches anything from elsewhere, and
    # Chromium with no network runs their scripts (bootstrap-table wraps the tables)
    site = data_docs_index().parent
    pages = list(site.rglob("*.html"))
    assert len(pages) > 1 and {p.name: fetched_resources(p.read_text()) for p in pages
                               if fetched_resources(p.read_text())} == {}
    dom = drawn_dom(data_docs_index(), tmp_path / "profile")
    assert 'class="bootstrap-table' in dom  # jQuery, Bootstrap and bootstrap-table ran
    vendor = site / "static" / "vendor"
    assert (vendor / "vega-bundle.js").stat().st_size > 100_000
    # what the copied stylesheets load in turn (Font Awesome's fonts) is there too
    for css in vendor.rglob("*.css"):
        for ref in re.findall(r"""url\(["']?([^)#?"']+)""", css.read_text()):
            if not ref.startswith("data:"):
                assert (css.parent / ref).is_file(), (css, ref)


def test_the_data_docs_copies_are_what_gx_asks_for():
    """Every script and stylesheet GX's templates fetch has a copy (a GX
    upgrade that adds one fails here), and the two GX pins by hash are
    byte for byte the releases it names."""
    import base64
    import hashlib

    import great_expectations

    from expectations.data_docs import CDN, TAG, VENDOR

    templates = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
    fetched = {m.group(2): m.group(0) for t in templates.glob("*.j2")
               for m in TAG.finditer(t.read_text())}
    assert len(fetched) > 10 and set(fetched) <= set(CDN), set(fetched) - set(CDN)
    for path in {p for p in CDN.values() if p and p != "vega-bundle.js"}:
        assert (VENDOR / path).is_file(), path
    pinned = {url: re.search(r'integrity="([^"]+)"', tag) for url, tag in fetched.items()}
    pinned = {url: m.group(1) for url, m in pinned.items() if m}
    assert len(pinned) == 2, pinned  # popper and bootstrap's script
    for url, integrity in pinned.items():
        digest = hashlib.sha384((VENDOR / CDN[url]).read_bytes()).digest()
        assert integrity == "sha384-" + base64.b64encode(digest).decode(), url
