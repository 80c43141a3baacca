"""Every bad input gets a clear answer (issue 21): one or two plain lines on
stderr, a non-zero exit, no traceback, checked before any work starts; and
nothing is written that should not be. Each class of mistake a new user made
is here, run as the user runs it: the `orderhub` command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.truth import reset

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parent / "fixtures" / "replay"


def orderhub(*args: str, env: dict | None = None, timeout: float = 120):
    environment = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    return subprocess.run([sys.executable, "-m", "orderhub_tools.cli", *args],
                          env={**environment, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def refused(result, *phrases: str) -> None:
    """Exit non-zero, the message on stderr, no traceback, no warning."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


@pytest.mark.parametrize("value", ["2026-13-45", "yesterday"])
def test_a_malformed_time_is_named(value):
    result = orderhub("run", "--start", value, "--end", "2026-11-11T02:00")
    refused(result, f"'{value}' is not a time", "2026-11-11T09:00")


@pytest.mark.parametrize("command", [
    ["run"], ["demo"], ["extract", "--platform", "pdd"], ["report", "--out", "/tmp/r.html"],
    ["recon", "summary"], ["sandbox", "truth", "--out", "/tmp/t.jsonl"]])
def test_a_reversed_range_is_refused_before_any_work(command):
    result = orderhub(*command, "--start", "2026-11-11T03:00", "--end", "2026-11-11T01:00")
    refused(result, "--end (2026-11-11T01:00) must be after --start (2026-11-11T03:00)")


@pytest.mark.parametrize("content, phrase", [
    ("shops:\n  - {platform: kuaishou, shop_id: k1, conn_id: c}\n", "unknown platform 'kuaishou'"),
    ("shops:\n  - {platform: tmall, shop_id: t1\n", "not valid YAML"),
    ("shops:\n  - {platform: tmall, shop_id: t1}\n", "shop #1 lacks conn_id"),
    ("shops: 3\n", "expected a list under 'shops:'"),
    ("shops:\n  - {platform: mall, shop_id: m1, conn_id: c, delivery: dada}\n",
     "unknown delivery service 'dada'"),
    ("shops:\n  - {platform: mall, shop_id: m1, conn_id: c, delivery: sf_same_city}\n",
     "delivery sf_same_city needs a delivery_conn_id"),
])
def test_a_broken_shops_file_is_named(tmp_path, content, phrase):
    path = tmp_path / "shops.yml"
    path.write_text(content)
    result = orderhub("run", "--start", "2026-11-11T00:00", "--end", "2026-11-11T01:00",
                      env={"ORDERHUB_SHOPS_FILE": str(path)})
    refused(result, str(path), phrase)


def test_a_flash_sale_in_a_world_without_stock_channels_is_refused():
    """The tea chain's stores have no stock API: a sale there would sell
    nothing, so asking for one is an error, not a demo without it."""
    result = orderhub("demo", "--world", "tea", "--live", "10", "--flash-sale")
    refused(result, "--flash-sale: no shop of the tea world has a stock API")


def test_an_unreachable_warehouse_is_said_at_once():
    began = time.monotonic()
    result = orderhub("run", "--start", "2026-11-11T00:00", "--end", "2026-11-11T01:00",
                      env={"ORDERHUB_DATABASE_URL": "postgresql://nobody:pw@127.0.0.1:9/none"})
    refused(result, "cannot reach the warehouse at 127.0.0.1:9/none", "orderhub db start")
    assert "pw" not in result.stderr  # never the password
    assert time.monotonic() - began < 20  # before any DAG run (they take 25 s to fail)


def test_a_port_out_of_range_and_a_missing_report_folder():
    refused(orderhub("sandbox", "serve", "--port", "99999"), "not a TCP port")


def test_airflow_on_a_taken_port_is_refused_before_anything_starts():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused(orderhub("airflow", "--port", str(port)), f"port {port} on 127.0.0.1 is taken",
                "--port")


def test_a_report_into_a_missing_folder_is_written(tmp_path, empty):
    out = tmp_path / "new" / "folder" / "report.html"
    window = ("--start", "2026-11-11T00:00", "--end", "2026-11-11T03:00")
    result = orderhub("report", "--out", str(out), *window, env=empty)
    assert result.returncode == 0, result.stderr
    assert out.exists() and "Warning" not in result.stderr
    # without a window it reports the last 24 hours of data, and there is none yet
    refused(orderhub("report", "--out", str(out), env=empty), "no order has landed yet")
    refused(orderhub("report", "--out", str(out), "--start", "2026-11-11T00:00", env=empty),
            "give both --start and --end")


def test_debug_shows_the_traceback():
    result = orderhub("--debug", "run", "--start", "nope", "--end", "2026-11-11T01:00")
    assert result.returncode != 0 and "Traceback" in result.stderr and "UserError" in result.stderr


# -- replay: safe and complete ------------------------------------------------------

def fixture(platform: str) -> dict:
    return json.loads((FIXTURES / f"{platform}_orders.json").read_text(encoding="utf-8"))


def answers(tmp_path: Path) -> dict[str, tuple[str, Path]]:
    """Saved answers of the platforms' other order APIs (list and detail), made
    from the documentation-shaped answers of the APIs the poll uses."""
    tmall = fixture("tmall")["trades_sold_increment_get_response"]["trades"]["trade"]
    pdd = fixture("pdd")["order_sn_increment_get_response"]["order_sn_list"]
    douyin = fixture("douyin")["data"]["shop_order_list"]
    bodies = {
        "taobao.trades.sold.get": ("tmall", {"trades_sold_get_response": {
            "total_results": len(tmall), "trades": {"trade": tmall}}}),
        "taobao.trade.fullinfo.get": ("tmall", {"trade_fullinfo_get_response": {
            "trade": tmall[0]}}),
        "pdd.order.list.get": ("pdd", {"order_list_get_response": {
            "order_list": pdd, "total_count": len(pdd), "has_next": False}}),
        "pdd.order.information.get": ("pdd", {"order_info_get_response": {"order_info": pdd[0]}}),
        "order.orderDetail": ("douyin", {"code": 10000, "msg": "success",
                                         "data": {"shop_order_detail": douyin[0]}}),
    }
    out = {}
    for api, (platform, body) in bodies.items():
        path = tmp_path / f"{api}.json"
        path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
        out[api] = (platform, path)
    return out


@pytest.fixture()
def empty(warehouse_url):
    reset(warehouse_url)
    return {"ORDERHUB_DATABASE_URL": warehouse_url}


def test_replay_reads_every_order_api_of_the_platform(tmp_path, empty, warehouse_url):
    for api, (platform, path) in answers(tmp_path).items():
        result = orderhub("replay", "--platform", platform, "--shop", f"{platform}-docs",
                          str(path), env=empty)
        assert result.returncode == 0, (api, result.stdout, result.stderr)
        assert ": landed " in result.stdout and " 0 orders" not in result.stdout, result.stdout
    with psycopg.connect(warehouse_url) as conn:
        landed = dict(conn.execute("select platform, count(distinct order_id) from raw.orders"
                                   " group by 1").fetchall())
    assert landed["tmall"] >= 1 and landed["pdd"] >= 1 and landed["douyin"] == 1
    # ... and the marts are built from them as a DAG's dbt task builds them.
    built = orderhub("dbt", "build", env=empty, timeout=900)
    assert built.returncode == 0 and "marts built; the gates passed" in built.stdout, \
        built.stdout[-3000:] + built.stderr
    with psycopg.connect(warehouse_url) as conn:
        marts = dict(conn.execute("select platform, count(*) from marts.fct_orders"
                                  " group by 1").fetchall())
    assert marts == landed


def test_replay_refuses_bad_files_one_by_one_and_lands_the_good(tmp_path, empty, warehouse_url):
    with psycopg.connect(warehouse_url) as conn:  # a real shop, named by the shops config
        from orderhub.landing import ensure_schema, register_shop

        ensure_schema(conn)
        register_shop(conn, "tmall", "tmall-flagship", name="天猫旗舰店", conn_id="c")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("<html>502 Bad Gateway</html>")
    error = tmp_path / "error.json"
    error.write_text(json.dumps({"error_response": {"code": 27, "msg": "Invalid session",
                                                    "sub_code": "invalid-sessionkey"}}))
    other = tmp_path / "jd.json"
    other.write_text(json.dumps(fixture("jd")))  # JD's answer, replayed as Tmall
    good = FIXTURES / "tmall_orders.json"
    result = orderhub("replay", "--platform", "tmall", "--shop", "tmall-flagship",
                      str(tmp_path / "missing.json"), str(garbage), str(error), str(other),
                      str(good), env=empty)
    lines = result.stdout.splitlines()
    assert result.returncode == 1 and "4 of 5 files refused" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].endswith("missing.json: refused: cannot read it (No such file or directory)")
    assert "garbage.json: refused: " in lines[1] and "unparseable" in lines[1]
    assert "error.json: refused: it is tmall's error answer: code 27, Invalid session" in lines[2]
    assert "jd.json: refused: not an order answer of tmall's APIs" in lines[3]
    assert lines[4].startswith(f"{good}: landed ")
    with psycopg.connect(warehouse_url) as conn:
        name = conn.execute("select shop_name from ops.shops where platform = 'tmall'"
                            " and shop_id = 'tmall-flagship'").fetchone()[0]
    assert name == "天猫旗舰店"  # a replay never renames a shop


def test_a_failed_replay_registers_no_shop(tmp_path, empty, warehouse_url):
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{}")
    result = orderhub("replay", "--platform", "pdd", "--shop", "nobody", str(garbage), env=empty)
    assert result.returncode == 1
    with psycopg.connect(warehouse_url) as conn:
        assert conn.execute("select count(*) from ops.shops where shop_id = 'nobody'"
                            ).fetchone()[0] == 0


# -- overrides: audited -------------------------------------------------------------

def test_an_override_needs_an_open_difference_and_the_trail_is_append_only(empty, warehouse_url):
    result = orderhub("recon", "resolve", "--platform", "tmall", "--shop", "s", "--order", "1",
                      "--category", "no_such_category", "--resolution", "ok", "--reason", "r",
                      "--by", "me", env=empty)
    refused(result, "unknown category 'no_such_category'")
    result = orderhub("recon", "resolve", "--platform", "tmall", "--shop", "s", "--order", "1",
                      "--category", "rounding", "--resolution", "ok", "--reason", "r",
                      "--by", "me", env=empty)
    refused(result, "nothing is reconciled yet")
    with psycopg.connect(warehouse_url) as conn:
        conn.execute("insert into ops.recon_overrides (platform, shop_id, order_id, category,"
                     " resolution, reason, resolved_by) values ('tmall', 's', '1', 'rounding',"
                     " 'ok', 'r', 'me')")
        conn.commit()
        for statement in ("delete from ops.recon_overrides",
                          "update ops.recon_overrides set reason = 'changed'",
                          "truncate ops.recon_overrides", "delete from ops.recon_audit"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
            conn.rollback()
        assert conn.execute("select count(*) from ops.recon_overrides").fetchone()[0] == 1


def test_no_command_warns_about_the_environment():
    result = orderhub("db", "url")
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_extract_shows_failed_windows_as_failed(tmp_path, empty):
    """Both windows fail (a gateway in outage): the bar says so, not 100 % done;
    and `orderhub status` shows the shop with its open windows and the error."""
    from orderhub_tools.runner import SandboxTarget
    from orderhub_tools.sandbox.server import SandboxSpec, serve

    shops = tmp_path / "shops.yml"
    shops.write_text("shops:\n  - {platform: pdd, shop_id: pdd-down, conn_id: orderhub_pdd_down}\n")
    state = SandboxTarget.state_file()
    saved = state.read_text() if state.exists() else None
    server = serve(SandboxSpec(seed=2, shops=[("pdd", "pdd-down")], scale=0.02, faults="outage"))
    try:
        server.sandbox.clock.set(1_800_000_000)
        state.write_text(json.dumps({"url": f"http://127.0.0.1:{server.server_address[1]}",
                                     "seed": 2, "scale": 0.02}))
        result = orderhub("extract", "--platform", "pdd", "--start", "2026-11-11T00:00",
                          "--end", "2026-11-11T01:00",
                          env={**empty, "ORDERHUB_SHOPS_FILE": str(shops),
                               "ORDERHUB_BREAKER_PATIENCE_SECONDS": "0",
                               "ORDERHUB_RETRY_BASE_SECONDS": "0.05"})
    finally:
        server.shutdown()
        state.unlink(missing_ok=True) if saved is None else state.write_text(saved)
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stdout.split("\r")[-1]
    assert "window(s) FAILED" in last and "windows_failed" in result.stdout, result.stdout
    status = orderhub("status", env={**empty, "ORDERHUB_SHOPS_FILE": str(shops)}, timeout=300)
    assert status.returncode == 1, status.stdout + status.stderr
    row = next(line for line in status.stdout.splitlines() if line.startswith("pdd "))
    assert row.split()[:4] == ["pdd", "pdd-down", "orders", "open"], status.stdout
    assert "http-504" in row, row  # the outage's answer, as the ledger holds it
    assert "open windows: pdd/pdd-down orders" in status.stdout


def test_check_says_plainly_which_shop_connection_is_wrong(tmp_path, empty):
    """`orderhub check`: one signed call per shop against the sandbox's
    gateways. A good connection answers; a wrong app secret is said to be the
    signature; a missing connection is named with how to add it; exit 1.
    A connection added to the metadata DB (`airflow connections add`) is found
    like one in the environment (issue 20: one way for connections)."""
    from orderhub.config import Shop
    from orderhub_tools.runner import (
        SandboxTarget,
        airflow,
        airflow_env,
        airflow_home,
        ensure_airflow_db,
    )
    from orderhub_tools.sandbox.server import SandboxSpec, serve

    shops = [Shop("tmall", "tmall-ok", "orderhub_tmall_ok"),
             Shop("pdd", "pdd-badkey", "orderhub_pdd_badkey"),
             Shop("douyin", "4400001", "orderhub_douyin_missing"),
             Shop("jd", "10086421", "orderhub_jd_in_metadata_db")]
    shops_yml = tmp_path / "shops.yml"
    shops_yml.write_text("shops:\n" + "".join(
        f"  - {{platform: {s.platform}, shop_id: '{s.shop_id}', conn_id: {s.conn_id}}}\n"
        for s in shops))
    state = SandboxTarget.state_file()
    saved = state.read_text() if state.exists() else None
    state.unlink(missing_ok=True)  # no running sandbox: the connections below are the ones used
    server = serve(SandboxSpec(seed=2, shops=[(s.platform, s.shop_id) for s in shops], scale=0.01))
    try:
        server.sandbox.clock.set(1_800_000_000)
        conns = SandboxTarget(f"http://127.0.0.1:{server.server_address[1]}", 2).connections(
            [*shops[:2], shops[3]])
        bad = json.loads(conns["AIRFLOW_CONN_ORDERHUB_PDD_BADKEY"])
        conns["AIRFLOW_CONN_ORDERHUB_PDD_BADKEY"] = json.dumps({**bad, "password": "not-it"})
        # the JD shop's connection lives in the project's Airflow metadata DB only
        airflow_db = airflow_env()
        ensure_airflow_db(airflow_db)
        airflow("connections", "add", shops[3].conn_id, "--conn-json",
                conns.pop("AIRFLOW_CONN_ORDERHUB_JD_IN_METADATA_DB"), env=airflow_db,
                capture=True)
        env = {**empty, **conns, "ORDERHUB_SHOPS_FILE": str(shops_yml),
               "AIRFLOW_HOME": str(airflow_home())}
        result = orderhub("check", env=env)
        one = orderhub("check", "--shop", "tmall-ok", env=env)
    finally:
        airflow("connections", "delete", shops[3].conn_id, env=airflow_env(), capture=True,
                check=False)
        server.shutdown()
        if saved is not None:
            state.write_text(saved)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines()[:4]}
    assert " ok " in lines["tmall-ok"] and "signed order search" in lines["tmall-ok"], lines
    assert "FAILED" in lines["pdd-badkey"] and "signature" in lines["pdd-badkey"], lines
    assert "FAILED" in lines["4400001"] and "no Airflow connection orderhub_douyin_missing" \
        in lines["4400001"], lines
    assert " ok " in lines["10086421"], lines  # found in the metadata DB
    assert "2 of 4 shops answered" in result.stdout
    assert "not-it" not in result.stdout + result.stderr  # a secret is never printed
    assert one.returncode == 0 and "1 of 1 shops answered" in one.stdout, one.stdout


def test_a_production_warehouse_refuses_the_sandbox_the_demo_and_a_drop(warehouse_url):
    """`orderhub db mark-production`: with a sandbox running, `run` (without
    --real) and `extract` refuse to use it; `demo` refuses; no code path drops
    the warehouse's schemas. Unmarked, the same database may be dropped.
    `run --real` refuses a connection that points at a sandbox."""
    from urllib.parse import urlsplit, urlunsplit

    from orderhub.config import UserError
    from orderhub.landing import drop_warehouse
    from orderhub_tools.runner import SandboxTarget
    from orderhub_tools.sandbox.server import SandboxSpec, serve

    parts = urlsplit(warehouse_url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    url = urlunsplit(parts._replace(path="/orderhub_production_check"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("drop database if exists orderhub_production_check")
        conn.execute("create database orderhub_production_check")
    env = {"ORDERHUB_DATABASE_URL": url}
    state = SandboxTarget.state_file()
    saved = state.read_text() if state.exists() else None
    server = serve(SandboxSpec(seed=2, shops=[("pdd", "pdd-tea")], scale=0.01))
    try:
        state.write_text(json.dumps({"url": f"http://127.0.0.1:{server.server_address[1]}",
                                     "seed": 2, "scale": 0.01}))
        marked = orderhub("db", "mark-production", env=env)
        assert marked.returncode == 0 and "is marked as production" in marked.stdout, marked
        span = ("--start", "2026-11-11T00:00", "--end", "2026-11-11T01:00")
        refused(orderhub("run", *span, env=env), "marked as production", "--real")
        # --real never talks to a sandbox, even through a connection left pointing at one
        from orderhub.config import load_shops

        pdd_tea = [shop for shop in load_shops() if shop.shop_id == "pdd-tea"]
        leftover = SandboxTarget(f"http://127.0.0.1:{server.server_address[1]}", 2).connections(
            pdd_tea)
        refused(orderhub("run", "--real", *span, env={**env, **leftover}),
                "--real runs against real gateways only", pdd_tea[0].conn_id)
        refused(orderhub("extract", "--platform", "pdd", *span, env=env),
                "marked as production", "sandbox")
        refused(orderhub("demo", "--fresh", env=env), "marked as production", "demo")
        with pytest.raises(UserError, match="marked as production"):
            drop_warehouse(url)
        assert orderhub("db", "mark-production", "--undo", env=env).returncode == 0
        drop_warehouse(url)  # no longer production
    finally:
        server.shutdown()
        state.unlink(missing_ok=True) if saved is None else state.write_text(saved)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("drop database if exists orderhub_production_check with (force)")


def test_a_long_dag_run_says_what_it_is_doing():
    """demo and run read ``airflow dags test``'s log as it comes: a failed
    task is said at once, a quiet run says how far it is."""
    from orderhub_tools.runner import TaskProgress

    said: list[str] = []
    progress = TaskProgress(said.append, every=0)
    for line in (
            "[DAG TEST] starting task_id=plan_repairs map_index=-1 [airflow]",
            "Task instance state updated new_state=success rows_affected=1",
            "[DAG TEST] end task task_id=plan_repairs map_index=-1 [airflow]",
            "[DAG TEST] starting task_id=repair_shop map_index=3 [airflow]",
            "Task instance state updated new_state=failed rows_affected=1",
            "[DAG TEST] end task task_id=repair_shop map_index=3 [airflow]"):
        progress.read(line)
    assert "    repair_shop[3] failed" in said
    assert any("2 tasks done" in text for text in said), said
    assert progress.saw_failure and progress.failed == ["repair_shop[3]"]
