"""The platform registry (issue 16): a platform is data and four files.

A throw-away platform ("xshop": signed GET calls, money in fen, Unix seconds)
is added to a copy of the project by writing exactly four files - its client,
its sandbox gateway, its rows in the mapping seed, its shop row - and git
shows that nothing else changed. Then the copy's own code extracts its orders
from the copy's sandbox, the copy's dbt project builds them, and fct_orders
equals the sandbox truth on every standard column.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from orderhub.config import REPO_ROOT, load_shops
from orderhub.mapping import read_seed
from orderhub.platforms import clients, names
from orderhub_tools.sandbox import gateways

pytestmark = pytest.mark.integration

CLIENT = '''
"""X Shop: a throw-away platform for the registry test. Signed GET calls
(md5 of the secret and the sorted parameters), money in fen, Unix seconds."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from orderhub.platforms.base import HttpRequest, Page, PlatformClient, PlatformError


def sign(params: dict[str, str], secret: str) -> str:
    text = secret + "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sig")
    return hashlib.md5(text.encode()).hexdigest()


class XshopClient(PlatformClient):
    platform = "xshop"
    title = "X Shop"
    money_unit = "integer fen"
    time_format = "Unix seconds"
    number_unit = "fen"
    colour = "#9467bd"
    position = 60
    max_window = timedelta(hours=1)
    order_endpoint = "orders.list"
    identity_paths = ("$.id", "$.mtime")

    def order_search_request(self, start, end, page, page_size):
        c = self.credentials
        params = {"app": c.app_key, "token": c.access_token, "ts": str(int(self.now())),
                  "from": str(int(start.timestamp())), "to": str(int(end.timestamp())),
                  "page": str(page), "size": str(page_size)}
        params["sig"] = sign(params, c.app_secret)
        return HttpRequest("GET", c.gateway_url + "/orders", params=params)

    def parse_order_search(self, text):
        body = self.parse_json(text)
        if body.get("err"):
            kind = {"busy": "throttled", "ts": "clock"}.get(body["err"], "api")
            raise PlatformError("xshop", body["err"], body["err"], kind=kind,
                                retryable=kind != "api", retry_after=1.0)
        return Page(orders=body["data"]["list"], total=int(body["data"]["total"]))

    def order_identity(self, order):
        return str(order["id"]), datetime.fromtimestamp(order["mtime"], UTC)
'''

GATEWAY = '''
"""Sandbox X Shop gateway (the registry test's throw-away platform)."""

from __future__ import annotations

from orderhub.platforms.xshop import sign
from orderhub_tools.sandbox import world as w
from orderhub_tools.sandbox.gateway import Gateway, fen


class XshopGateway(Gateway):
    platform = "xshop"
    prefix = "/xshop/"
    connection_path = "/xshop"
    base_rate = 30.0

    @staticmethod
    def order_id(digits, hour):
        return "X" + digits[:12]

    def token(self, query, form):
        return query.get("token")

    def request_time(self, query, form):
        ts = query.get("ts", "")
        return float(ts) if ts.isdigit() else None

    def handle(self, path, query, form, body):
        if sign(query, self.credentials.app_secret) != query.get("sig"):
            return 200, {"err": "sig"}
        shop_id = self.shop_for(query.get("token"))
        if shop_id is None:
            return 200, {"err": "token"}
        orders, total = self.page(shop_id, int(query["from"]), int(query["to"]),
                                  int(query["page"]), int(query["size"]))
        return 200, {"data": {"total": total, "list": orders}}

    def throttled(self, ban_seconds):
        return {"err": "busy"}

    def clock_refused(self):
        return {"err": "ts"}

    def render(self, order, version):
        return {
            "id": order.order_id, "state": order.kind(version),
            "ctime": order.created_time, "mtime": order.modified(version),
            "ptime": order.event_time(w.PAID, version),
            "stime": order.event_time(w.SHIPPED, version),
            "etime": order.closed_time(version),
            "goods": fen(order.goods_amount), "discount": fen(order.discount_amount),
            "post": fen(order.shipping_fee), "paid": fen(order.paid_amount),
            "lines": [{"sku": line.sku.sku_id, "n": line.quantity, "amt": fen(line.amount)}
                      for line in order.lines],
        }
'''

STATES = {"created": (10, 0), "cancelled": (50, 0), "paid": (20, 0), "refund_requested": (20, 1),
          "refunded": (50, 2), "shipped": (30, 0), "completed": (40, 0),
          "aftersale_requested": (40, 1), "aftersale_refunded": (40, 2)}
FIELDS = [("order", "line_items", "$.lines", "", "true"),
          ("order", "raw_order_status", "$.state", "", "true"),
          ("order", "raw_refund_status", "", "", "false"),
          ("order", "created_at", "$.ctime", "unix_seconds", "true"),
          ("order", "paid_at", "$.ptime", "unix_seconds", "false"),
          ("order", "shipped_at", "$.stime", "unix_seconds", "false"),
          ("order", "finished_at", "$.etime", "unix_seconds", "false"),
          ("order", "updated_at", "$.mtime", "unix_seconds", "true"),
          ("order", "goods_amount", "$.goods", "fen", "true"),
          ("order", "discount_amount", "$.discount", "fen", "true"),
          ("order", "shipping_fee", "$.post", "fen", "true"),
          ("order", "paid_amount", "$.paid", "fen", "true"),
          ("order_item", "sku_id", "$.sku", "", "true"),
          ("order_item", "quantity", "$.n", "", "true"),
          ("order_item", "line_amount", "$.amt", "fen", "true")]
SEED_ROWS = "".join(
    [f"xshop,field,{e},{f},{p},{u},,{'-' if f == 'raw_refund_status' else ''},{r},,,,,\n"
     for e, f, p, u, r in FIELDS]
    + [f"xshop,status,,,,,,,,{state},-,{o},{r},\n" for state, (o, r) in STATES.items()])
SHOP_ROW = "  - {platform: xshop, shop_id: \"x-1\", conn_id: orderhub_xshop_1, name: X}\n"

# What the copy's own code does with the new platform (run with the copy first
# on the path): extract an hour of its shop from the copy's sandbox, build the
# copy's dbt project, and compare fct_orders with the sandbox's truth.
RUN = '''
import json, sys
from datetime import timedelta
import psycopg
import orderhub, orderhub_tools
from orderhub.config import Shop, parse_time
from orderhub.extract import extract_shop
from orderhub.platforms import names
from orderhub.transform import dbt
from orderhub_tools.sandbox import gateways, shop_credentials
from orderhub_tools.sandbox.server import SandboxSpec, serve

copy = sys.argv[1]
assert orderhub.__file__.startswith(copy) and orderhub_tools.__file__.startswith(copy)
assert "xshop" in names() and "xshop" in gateways()
t0, t1 = parse_time("2026-11-11T00:00"), parse_time("2026-11-11T01:00")
server = serve(SandboxSpec(seed=3, shops=[("xshop", "x-1")], scale=0.2))
server.sandbox.clock.set((t1 + timedelta(minutes=3)).timestamp())
creds = shop_credentials(f"http://127.0.0.1:{server.server_address[1]}", 3, "xshop", "x-1", ["x-1"])
result = extract_shop(Shop("xshop", "x-1", "c"), t0, t1, run_id="registry", credentials=creds)
truth = server.sandbox.world.truth(int(t0.timestamp()), int(t1.timestamp()))
server.shutdown()
built = dbt("build", check=False)
columns = ["order_id", "order_status_code", "refund_status_code", "created_at", "paid_at",
           "shipped_at", "updated_at", "goods_amount", "discount_amount", "shipping_fee",
           "paid_amount"]
with psycopg.connect(sys.argv[2]) as conn:
    partitions = [r[0] for r in conn.execute(
        "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid"
        " where i.inhparent = 'raw.orders'::regclass order by 1")]
    rows = conn.execute(f"select {', '.join(columns)} from marts.fct_orders"
                        " where platform = 'xshop' order by order_id").fetchall() \\
        if built.returncode == 0 else []
    items = conn.execute("select count(*) from marts.fct_order_items where platform = 'xshop'"
                         ).fetchone()[0] if built.returncode == 0 else 0
def iso(v):
    from datetime import UTC, datetime
    return None if v is None else datetime.fromtimestamp(v, UTC).isoformat()
expected = [[r["order_id"], r["order_status_code"], r["refund_status_code"], iso(r["created_at"]),
             iso(r["paid_at"]), iso(r["shipped_at"]), iso(r["updated_at"]), str(r["goods_amount"]),
             str(r["discount_amount"]), str(r["shipping_fee"]), str(r["paid_amount"])]
            for r in sorted(truth, key=lambda r: r["order_id"])]
actual = [[v.isoformat() if hasattr(v, "isoformat") else (str(v) if v is not None and not
           isinstance(v, int) else v) for v in row] for row in rows]
print(json.dumps({"landed": result.orders_landed, "failed": result.windows_failed,
                  "built": built.returncode, "dbt": built.stdout[-2500:],
                  "partitions": partitions, "expected": expected, "actual": actual,
                  "items": items}))
'''


def project_files() -> list[str]:
    """The project's files as a clean clone has them (tracked and new, not ignored)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return [f for f in listed.splitlines() if (REPO_ROOT / f).is_file()]


def git(copy: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=copy, capture_output=True, text=True, check=True,
                          env=env).stdout


def test_a_new_platform_is_four_files_and_works_end_to_end(tmp_path, warehouse_url):
    copy = tmp_path / "project"
    for name in project_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, copy / name)
    git(copy, "init", "-q")
    git(copy, "add", "-A")
    git(copy, "commit", "-qm", "the project as it is")

    (copy / "plugins/orderhub/platforms/xshop.py").write_text(textwrap.dedent(CLIENT).lstrip())
    (copy / "tools/orderhub_tools/sandbox/xshop.py").write_text(textwrap.dedent(GATEWAY).lstrip())
    with (copy / "dbt_project/seeds/platform_mapping.csv").open("a", encoding="utf-8") as f:
        f.write(SEED_ROWS)
    with (copy / "config/shops.yml").open("a", encoding="utf-8") as f:
        f.write(SHOP_ROW)

    git(copy, "add", "-A")
    touched = sorted(line[3:] for line in git(copy, "status", "--porcelain").splitlines())
    print("files touched to add a platform:", *touched, sep="\n  ")
    assert touched == ["config/shops.yml", "dbt_project/seeds/platform_mapping.csv",
                       "plugins/orderhub/platforms/xshop.py",
                       "tools/orderhub_tools/sandbox/xshop.py"]
    assert len(touched) <= 4

    # The copy's code, its sandbox and its dbt project, against a database of its own.
    url = warehouse_url.rsplit("/", 1)[0] + "/orderhub_registry"
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("drop database if exists orderhub_registry with (force)")
        conn.execute("create database orderhub_registry")
    env = {**os.environ, "ORDERHUB_DATABASE_URL": url,
           "PYTHONPATH": os.pathsep.join([str(copy / "plugins"), str(copy / "tools"), str(copy)]),
           "ORDERHUB_SHOPS_FILE": str(copy / "config/shops.yml"),
           "ORDERHUB_SOURCES_DIR": str(copy / "config/sources"),
           "ORDERHUB_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", RUN, str(copy), url], env=env,
                         capture_output=True, text=True, cwd=copy)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["failed"] == 0 and result["landed"] > 0, result
    assert "orders__xshop" in result["partitions"]  # its raw partition, made by the first run
    assert result["built"] == 0, result["dbt"]
    assert result["expected"] and result["actual"] == result["expected"]
    assert result["items"] > 0


def test_every_registered_platform_has_a_gateway_and_mapping_rows_and_no_more():
    mapped = {row["platform"] for row in read_seed("platform_field_map")}
    assert set(names()) == mapped == set(gateways())
    assert {shop.platform for shop in load_shops()} == set(names())
    assert list(clients()) == list(names())  # one order everywhere: position, then name


def test_the_runtime_package_never_imports_the_tooling():
    """What Airflow workers import (the DAG files and every runtime module)
    pulls in no sandbox, demo, bench or by-hand runner."""
    code = textwrap.dedent('''
        import importlib, pkgutil, sys
        import orderhub, expectations
        for pkg in (orderhub, expectations):
            for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
                importlib.import_module(m.name)
        from orderhub.platforms import clients
        clients()
        bad = sorted(m for m in sys.modules if m.startswith("orderhub_tools"))
        print("tooling imported:", bad)
        sys.exit(1 if bad else 0)
    ''')
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
