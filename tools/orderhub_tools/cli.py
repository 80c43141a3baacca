"""The ``orderhub`` command. Times are ISO 8601; without an offset, Asia/Shanghai."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta

from orderhub.config import (
    UserError,
    load_shops,
    sandbox_world,
    shops_file,
    time_range,
    worlds_dir,
)
from orderhub.platforms import client_class
from orderhub.platforms import names as platform_names
from orderhub_tools.sandbox.faults import CHOICES
from orderhub_tools.sandbox.world import DEFAULT_SEED, DEMO_SCALE, WORLDS

DEFAULT_START = "2026-11-11T00:00:00+08:00"
DEFAULT_END = "2026-11-11T03:00:00+08:00"
# The tea chain's world (`orderhub demo --world tea`): its shops file, and a
# lunch hour to show (Double 11 is not its day).
TEA_WINDOW = ("2026-11-11T11:00:00+08:00", "2026-11-11T14:00:00+08:00")


def quiet_environment() -> None:
    """No warning from the environment on every command: a machine without a
    login session has no XDG_RUNTIME_DIR, which libraries that keep runtime
    files warn about; OrderHub's home holds one of its own."""
    import os

    if not os.environ.get("XDG_RUNTIME_DIR"):
        from orderhub.config import home

        runtime = home() / "run"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def airflow_lookups() -> None:
    """Every command looks connections up as Airflow's own scheduler and API
    server do: ``AIRFLOW_CONN_*`` variables, a configured secrets backend, then
    the metadata DB, the project's (``.orderhub/airflow``, the one ``orderhub
    airflow`` serves and ``orderhub run`` runs on) unless ``AIRFLOW_HOME`` names
    another. Outside a task, Airflow's SDK would skip the metadata DB."""
    import os

    from orderhub.config import home

    if "AIRFLOW_HOME" not in os.environ:
        folder = home() / "airflow"
        folder.mkdir(exist_ok=True)
        os.environ["AIRFLOW_HOME"] = str(folder)
        os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                              f"sqlite:///{folder / 'airflow.db'}")
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")


def _spec(args):
    from orderhub_tools.sandbox.server import SandboxSpec

    shops = load_shops()
    flash = getattr(args, "flash_sale", None)
    return SandboxSpec(seed=args.seed, shops=[(s.platform, s.shop_id) for s in shops],
                       scale=args.scale, faults=getattr(args, "faults", "none"),
                       shop_faults={s.shop_id: s.faults for s in shops if s.faults},
                       flash_sale={"start": flash} if flash else None, world=sandbox_world(),
                       deliveries={s.shop_id: s.delivery for s in shops if s.delivery})


def cmd_db(args) -> int:
    from orderhub import warehouse
    from orderhub.landing import mark_production as warehouse_mark

    if args.action == "start":
        print(warehouse.start())
    elif args.action == "stop":
        warehouse.stop()
    elif args.action == "migrate":
        from orderhub.landing import connect, ensure_schema

        with connect() as conn:
            migrated = ensure_schema(conn)
        print("\n".join(migrated) if migrated else
              "nothing to migrate: raw is one table per entity already")
        if migrated:
            print("dbt builds staging and the marts again at the next run (`dbt build`)")
    elif args.action == "mark-production":
        name = warehouse_mark(not args.undo)
        print(f"database {name} is {'no longer ' if args.undo else ''}marked as production"
              + ("" if args.undo else ": no sandbox run, demo or schema drop will touch it"))
    elif args.bi:
        from urllib.parse import urlsplit, urlunsplit

        from orderhub.config import database_url
        from orderhub.landing import BI_ROLE

        # the same server and database, as the read-only BI role (no password:
        # the embedded warehouse trusts local connections; elsewhere, add it)
        parts = urlsplit(database_url())
        host = parts.netloc.rsplit("@", 1)[-1]
        print(urlunsplit(parts._replace(netloc=f"{BI_ROLE}@{host}")))
    else:
        from orderhub.config import database_url

        print(database_url())
    return 0


def cmd_sandbox_serve(args) -> int:
    import signal

    from orderhub_tools.runner import SandboxTarget
    from orderhub_tools.sandbox.server import serve

    server = serve(_spec(args), host=args.host, port=args.port)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    SandboxTarget.state_file().write_text(json.dumps({"url": url, "seed": args.seed,
                                                      "scale": args.scale}))
    print(f"sandbox (seed {args.seed}, scale {args.scale}) listening on {url}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    return 0


def _iso(ts: int | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def cmd_sandbox_truth(args) -> int:
    from orderhub.config import parse_time
    from orderhub_tools.sandbox.settlement import reconciliation_truth
    from orderhub_tools.sandbox.stock import recorded_world
    from orderhub_tools.sandbox.world import World

    first, last = time_range(args.start, args.end)
    if args.kind == "stock":
        return stock_truth(args, first, last)
    if args.kind == "reconciliation":
        first, last = whole_days(first, last)
    spec = _spec(args)
    # the last demo's flash sale, if it ran in this world: its buyers' orders are orders
    world = (recorded_world(spec.seed, spec.shops, spec.scale)
             or World(spec.seed, spec.shops, spec.scale, kind=spec.world))
    start, end = int(first.timestamp()), int(last.timestamp())
    if args.kind == "reconciliation":
        # [start, end): the settlement days reconciled (whole Beijing days)
        rows = reconciliation_truth(world, start, end)
        noun = "orders and settlement lines with a difference"
    elif args.kind == "deliveries":
        from orderhub.config import ExtractionSettings
        from orderhub_tools.sandbox.delivery import deliveries_truth

        # as the last run for the window saw them: at its end plus the safety lag
        at = (parse_time(args.at) if args.at
              else last + ExtractionSettings.from_env().safety_lag).timestamp()
        rows = deliveries_truth(world, spec.deliveries, start, end, int(at))
        noun = "deliveries"
    else:
        rows = world.truth(start, end)
        noun = "orders"
    with open(args.out, "w", encoding="utf-8") as out:
        for row in rows:
            row = {k: (_iso(v) if k.endswith("_at") else str(v) if k.endswith(("_amount", "_fee"))
                       else v) for k, v in row.items()}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} {noun} -> {args.out}")
    return 0


def stock_truth(args, first: datetime, last: datetime) -> int:
    """Per merchant SKU, the units sold beyond the supply: what the running
    sandbox's flash sale saw (OrderHub's stock updates included); with none
    running, the last demo's sale in this world played again with the stock
    calls it applied; else a flash sale over [start, end) that nobody kept
    in step."""
    from orderhub_tools.runner import SandboxTarget
    from orderhub_tools.sandbox.stock import FlashSale, Stock, recorded_world, sale_record_file
    from orderhub_tools.sandbox.world import World

    running = SandboxTarget.discover()
    state = requests_json(running.url + "/_sandbox/stock") if running else {}
    spec = _spec(args)
    recorded = None if running else recorded_world(spec.seed, spec.shops, spec.scale)
    if state.get("sale"):
        rows, source = state["truth"], f"the running sandbox at {running.url}"
    elif recorded is not None:
        rows = recorded.stock.truth()
        source = (f"the last demo's flash sale, played again with the stock calls it applied"
                  f" ({sale_record_file()})")
    else:
        sale = FlashSale(start=int(first.timestamp()),
                         minutes=(last - first).total_seconds() / 60)
        rows = Stock(World(spec.seed, spec.shops, spec.scale), sale).truth()
        source = ("a flash sale over the window that nobody kept in step"
                  f" ({'the running sandbox has none' if running else 'no sandbox running'})")
    with open(args.out, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps({**row, "first_oversold_at": _iso(row["first_oversold_at"])},
                                 ensure_ascii=False) + "\n")
    print(f"stock truth from {source}")
    print(f"{'merchant_sku':<13}{'supply':>7}{'sold':>6}{'oversold':>9}")
    for row in rows:
        print(f"{row['merchant_sku']:<13}{row['supply']:>7}{row['sold']:>6}{row['oversold']:>9}")
    print(f"{len(rows)} SKUs, {sum(r['oversold'] for r in rows)} units oversold -> {args.out}")
    return 0


def requests_json(url: str) -> dict:
    import requests

    answer = requests.get(url, timeout=10)
    answer.raise_for_status()
    return answer.json()


def whole_days(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """A range of settlement days: whole Beijing days (a platform's bill is
    one); a range that is not is widened to the days it touches, and said so."""
    from orderhub_tools.runner import beijing_midnight

    first = beijing_midnight(start)
    last = beijing_midnight(end)
    if last < end:
        last += timedelta(days=1)
    if (first, last) != (start, end):
        print(f"(whole Beijing days: [{first.date()}, {last.date()}))", file=sys.stderr)
    return first, last


def check_warehouse() -> None:
    """A precondition of every command that writes: the warehouse answers
    (in seconds, before any DAG run starts)."""
    import psycopg

    from orderhub.config import database_url

    with psycopg.connect(database_url(), connect_timeout=5):
        pass


def sandbox_connections() -> None:
    """Against a running sandbox (``orderhub sandbox serve``/``demo``), the
    shops' connections point at it (as ``AIRFLOW_CONN_*`` of this process)."""
    import os

    from orderhub_tools.runner import SandboxTarget

    sandbox = SandboxTarget.discover()
    if sandbox:
        from orderhub.landing import refuse_if_production

        refuse_if_production(f"using the running sandbox ({sandbox.url})")
        os.environ.update(sandbox.connections(load_shops()))


def cmd_nats(args) -> int:
    from orderhub.push import broker

    if args.action == "start":
        print(broker.start())
    elif args.action == "stop":
        broker.stop()
    else:
        print(broker.nats_url())
    return 0


def cmd_intake(args) -> int:
    from orderhub.config import database_url
    from orderhub.platforms import client_class
    from orderhub.push import broker
    from orderhub.push.intake import Intake, delivery_apps, push_apps, serve

    shops = load_shops()
    if not any(client_class(shop.platform).push_transport or shop.delivery for shop in shops):
        raise UserError("no configured shop is on a platform that pushes or delivers with a"
                        " service that calls back (config/shops.yml)")
    sandbox_connections()
    missing: list[str] = []
    apps = push_apps(shops, missing)
    deliveries, delivery_shops = delivery_apps(shops, missing)
    check_warehouse()
    url = broker.start()
    print(f"intake: http://{args.host}:{args.port}/push/<platform>"
          f" ({', '.join(sorted(apps))}) -> {url}"
          + (f"; /delivery/<service> ({', '.join(sorted(deliveries))})" if deliveries else ""),
          flush=True)
    if missing:
        print(f"not served until their connections exist (then restart): {', '.join(missing)}",
              flush=True)
    serve(Intake(url, database_url(), apps, delivery_apps=deliveries,
                 delivery_shops=delivery_shops, missing_connections=missing),
          args.host, args.port)
    return 0


def cmd_stream(args) -> int:
    import asyncio
    import signal

    from orderhub.config import database_url
    from orderhub.push import broker
    from orderhub.push.stream import Stream

    shops = load_shops()
    sandbox_connections()
    check_warehouse()
    url = broker.start()
    stream = Stream(shops, database_url(), url, batch=args.batch)
    print(f"stream: {url} -> {database_url().rsplit('@', 1)[-1]}", flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stream.run(stop)

    asyncio.run(main())
    return 0


def cmd_run(args) -> int:
    from orderhub_tools.runner import SandboxTarget, run

    start, end = time_range(args.start, args.end,
                            allow_empty=bool(args.history_days or args.settlement_days))
    load_shops()  # a broken shops file stops here, not inside Airflow
    check_warehouse()
    sandbox = SandboxTarget.discover() if not args.real else None
    if args.real:
        from orderhub_tools.runner import sandbox_gateways

        pointing = sandbox_gateways(load_shops())
        if pointing:
            raise UserError("--real runs against real gateways only, but these connections"
                            " point at a platform sandbox: " + ", ".join(
                                f"{conn_id} ({url})" for conn_id, url in pointing)
                            + ". Give them the platforms' gateway URLs, or run without --real")
    if sandbox:
        from orderhub.landing import refuse_if_production

        refuse_if_production(f"a run against the running sandbox ({sandbox.url}) without"
                             f" --real")
        print(f"sandbox at {sandbox.url} (seed {sandbox.seed}): connections point there")
    report = run(start, end, sandbox=sandbox,
                 repair=not args.no_repair,
                 settle=timedelta(hours=args.settle_hours) if args.settle_hours else None,
                 history=timedelta(days=args.history_days),
                 settlement_days=args.settlement_days)
    print_run_report(report)
    return 0 if report.complete else 1


def print_run_report(report) -> None:
    """What a by-hand run did, and - when it could not complete - what is
    still open and why (the ledger's own words)."""
    from orderhub_tools.runner import airflow_home

    print(f"{len(report.runs)} DAG runs ({report.failed_runs} failed); windows failed first:"
          f" {report.windows_failed_first}, repaired: {report.windows_repaired},"
          f" still open: {report.windows_open}")
    if report.open_windows:
        print("still open after the repairs (ops.extraction_windows; the hourly orders_repair"
              " re-pulls them, or `orderhub extract`):")
        for line in report.describe_open():
            print(line)
    if report.runs and not report.runs[-1][2]:
        print(f"the last DAG run ({report.runs[-1][0]}) failed: its output is in"
              f" {airflow_home() / f'last_{report.runs[-1][0]}.log'}")


def cmd_demo(args) -> int:
    from orderhub.landing import refuse_if_production
    from orderhub_tools.demo import demo

    refuse_if_production("the demo (its sandbox orders)")
    if args.world != "brand":
        # a world is a shops file: every command of the run (and Airflow's) reads it
        os.environ["ORDERHUB_SHOPS_FILE"] = str(worlds_dir() / f"{args.world}.yml")
    default_start, default_end = TEA_WINDOW if args.world == "tea" else (DEFAULT_START,
                                                                          DEFAULT_END)
    args.start = args.start or default_start
    args.scale = args.scale if args.scale is not None else (1.0 if args.world == "tea" else DEMO_SCALE)

    if args.live is not None and args.live <= 0:
        raise UserError("--live takes the seconds of wall time to push (> 0)")
    if args.flash_sale is True and not args.live:
        raise UserError("--flash-sale runs during the live segment: give --live SECONDS too")
    live = args.live or 0
    if live and args.end is None:
        # the live segment on its own: the poll catches up on its span only
        from orderhub.config import parse_time

        start = parse_time(args.start)
        end = start + timedelta(seconds=live * args.speed)
        settlement_days = args.settlement_days if args.settlement_days is not None else 0
    else:
        start, end = time_range(args.start, args.end or default_end)
        settlement_days = args.settlement_days if args.settlement_days is not None else 2
        if start + timedelta(seconds=live * args.speed) > end:
            raise UserError("the live segment must end inside the demo's window (--end)")
    shops = load_shops()
    if args.flash_sale is True and not any(client_class(s.platform).stock_endpoint for s in shops):
        raise UserError(f"--flash-sale: no shop of the {args.world} world has a stock API"
                        " to sell it on (the sale needs channels to keep in step)")
    check_warehouse()
    return demo(seed=args.seed, start=start, end=end, fresh=args.fresh, scale=args.scale,
                faults=args.faults, settlement_days=settlement_days, live_seconds=live,
                live_speed=args.speed, flash_sale=bool(live) and args.flash_sale is not False,
                repair=not args.no_repair)


def cmd_airflow(args) -> int:
    from orderhub_tools.local_airflow import serve_airflow

    load_shops()  # a broken shops file stops here, not inside Airflow
    check_warehouse()
    return serve_airflow(args.port, unpause=args.unpause, sandbox=args.sandbox)


def cmd_extract(args) -> int:
    from orderhub.extract import extract_shop

    start, end = time_range(args.start, args.end)
    shops = [s for s in load_shops() if s.platform == args.platform
             and (args.shop is None or s.shop_id == args.shop)]
    if not shops:
        raise UserError(f"no configured shop matches {args.platform}/{args.shop or '*'}"
                        " (config/shops.yml)")
    check_warehouse()
    sandbox_connections()
    run_id = f"manual__{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    failed = 0
    for shop in shops:
        def progress(upto, result, shop=shop):
            done = (upto - start) / (end - start)
            bar = "#" * int(done * 30)
            failed = f", {result.windows_failed} window(s) FAILED" if result.windows_failed else ""
            print(f"\r{shop.platform}/{shop.shop_id} [{bar:<30}] {done:5.0%} read{failed}",
                  end="", flush=True)

        result = extract_shop(shop, start, end, run_id=run_id, progress=progress)
        failed += result.windows_failed
        print(f"\n  {result.as_dict()}")
    return 1 if failed else 0


def cmd_stock_sync(args) -> int:
    from orderhub.stock import sync

    check_warehouse()
    sandbox_connections()
    run_id = f"stock__{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    result = sync(run_id, dry_run=args.dry_run, raise_offers=args.raise_offers)
    print(result.line())
    print("every call and proposal: ops.stock_updates"
          + (" (dry run: nothing sent)" if args.dry_run else ""))
    return 1 if result.refused or result.unknown else 0


def cmd_stock_follow(args) -> int:
    import signal
    import time

    from orderhub.stock import follow

    check_warehouse()
    sandbox_connections()
    ends = time.monotonic() + args.seconds if args.seconds else None
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def stop() -> bool:
        return bool(stopping) or (ends is not None and time.monotonic() >= ends)

    def report(result) -> None:
        print(f"{datetime.now(UTC).strftime('%H:%M:%S')} {result.line()}", flush=True)

    print(f"stock follow: a rebalancing pass on every landed batch of orders, at least every"
          f" {args.every:g} s" + (" (dry run: nothing sent)" if args.dry_run else "")
          + "; Ctrl-C ends it", flush=True)
    try:
        changed = follow(every=args.every, stop=stop, dry_run=args.dry_run, report=report)
    except KeyboardInterrupt:
        return 0
    print(f"stock follow: {len(changed)} passes reported;"
          f" {sum(r.moved for r in changed)} units moved between channels;"
          f" every call: ops.stock_updates")
    return 0


def cmd_check(args) -> int:
    """Each shop's connection tested with one signed call (orderhub.check)."""
    from orderhub.check import check_shop

    sandbox_connections()
    shops = [s for s in load_shops()
             if not args.shop or args.shop in (s.shop_id, f"{s.platform}/{s.shop_id}")]
    if not shops:
        print(f"no shop {args.shop} in {shops_file()}", file=sys.stderr)
        return 2
    checks = [check_shop(shop) for shop in shops]
    for check in checks:
        print(check.line(), flush=True)
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)} of {len(checks)} shops answered"
          + (f"; fix {', '.join(c.shop.conn_id for c in failed)}" if failed else ""))
    return 1 if failed else 0


def cmd_status(args) -> int:
    """One row per shop and entity (marts.rpt_shop_status); 1 when a shop
    has open ledger windows."""
    from orderhub.landing import connect
    from orderhub.report import STATUS_COLUMNS, shop_status
    from orderhub.transform import ensure_views

    check_warehouse()
    ensure_views("rpt_shop_status")
    with connect() as conn:
        rows = shop_status(conn)
    if args.shop:
        rows = [r for r in rows if args.shop in (r[1], f"{r[0]}/{r[1]}")]
    table = [STATUS_COLUMNS] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(STATUS_COLUMNS) - 1)]
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[-1])
    if not rows:
        print("no shops yet: the first run (`orderhub run`, or a DAG run) registers them")
    failing = [f"{r[0]}/{r[1]} {r[2]}" for r in rows if r[3] == "open windows"]
    if failing:
        print(f"open windows: {', '.join(failing)} (the repair DAG reads them again;"
              " ops.extraction_windows has each one)")
    return 1 if failing else 0


def cmd_replay(args) -> int:
    from pathlib import Path

    from orderhub.replay import replay

    shop = args.shop
    if shop is None:
        candidates = [s.shop_id for s in load_shops() if s.platform == args.platform]
        if len(candidates) != 1:
            raise UserError(f"--shop is needed: {args.platform} has shops {candidates}")
        shop = candidates[0]
    check_warehouse()
    results = replay(args.platform, shop, [Path(f) for f in args.files], kind=args.kind)
    for result in results:
        print(result.line())
    refused = sum(not r.landed for r in results)
    if refused:
        print(f"{refused} of {len(results)} files refused; the others landed", file=sys.stderr)
    return 1 if refused else 0


def cmd_bench(args) -> int:
    import os

    from orderhub import warehouse
    from orderhub_tools import bench

    if not os.environ.get("ORDERHUB_DATABASE_URL"):
        warehouse.start()
    os.environ["ORDERHUB_DATABASE_URL"] = bench.bench_database()
    print(f"benchmark database: {os.environ['ORDERHUB_DATABASE_URL']}")
    only = tuple(s.strip() for s in args.scenarios.split(",")) if args.scenarios \
        else bench.SCENARIOS
    unknown = [s for s in only if s not in bench.SCENARIOS]
    if unknown:
        raise UserError(f"no benchmark scenario {', '.join(unknown)}"
                        f" (there are: {', '.join(bench.SCENARIOS)})")
    info, results = bench.run_bench(scale=args.scale, runs=args.runs, only=only)
    print(bench.render(info, results, args.scale))
    if not args.no_write:
        if args.scale == 1:  # a partial run at full scale updates its rows of the table
            bench.write(info, bench.merged(results, only), args.scale)
            name = "benchmarks"
        else:  # another scale keeps its own table beside the full one
            name = f"benchmarks-scale{args.scale:g}-scenarios{'-'.join(map(str, only))}"
            bench.write(info, results, args.scale, name=name)
        print(f"written: docs/{name}.md, docs/{name}.json")
    return 0


def cmd_docs(args) -> int:
    import great_expectations as gx

    from expectations.checkpoints import data_docs_index, gx_home
    from expectations.data_docs import make_offline
    from orderhub.config import dbt_project_dir
    from orderhub.transform import dbt

    # --static: one HTML file with the manifest and catalog inside, which a
    # browser opens from disk (index.html fetches them, which file:// forbids)
    result = dbt("docs", "generate", "--static", check=False)
    if result.returncode != 0:
        print(result.stdout[-3000:], file=sys.stderr)
        return result.returncode
    dbt_docs = dbt_project_dir() / "target" / "static_index.html"
    print(f"dbt docs: {dbt_docs}")
    gx.get_context(mode="file", project_root_dir=str(gx_home())).build_data_docs()
    make_offline(data_docs_index().parent)  # styles, scripts and fonts from the site itself
    print(f"GX Data Docs: {data_docs_index()}")
    if args.serve:
        serve_docs(dbt_docs, data_docs_index().parent, args.port)
    return 0


def serve_docs(dbt_docs, gx_site, port: int) -> None:
    """Both sites on 127.0.0.1 until Ctrl-C: / links them, /dbt/ is dbt's
    static page, /gx/ the Data Docs folder."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    index = (b"<!doctype html><meta charset=utf-8><title>OrderHub docs</title>"
             b"<h1>OrderHub docs</h1><ul><li><a href=/dbt/>dbt docs: models, columns,"
             b" lineage</a><li><a href=/gx/index.html>GX Data Docs: the checkpoints'"
             b" results</a></ul>")

    class Docs(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            if self.path in ("/", "/index.html"):
                self._send(index, "text/html; charset=utf-8")
            elif self.path.split("?")[0] in ("/dbt", "/dbt/"):
                self._send(dbt_docs.read_bytes(), "text/html; charset=utf-8")
            elif self.path.startswith("/gx/"):
                self.path = self.path[len("/gx"):]
                super().do_GET()
            else:
                self.send_error(404)

        def _send(self, body: bytes, kind: str):
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port),
                                 functools.partial(Docs, directory=str(gx_site)))
    print(f"serving on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def cmd_recon_resolve(args) -> int:
    from orderhub.reconciliation import resolve

    resolve(args.platform, args.shop, args.order, args.category, args.resolution, args.reason,
            args.by)
    print("recorded in ops.recon_overrides; applied at the next dbt build (settlements_daily)")
    return 0


def cmd_recon_summary(args) -> int:
    from orderhub.reconciliation import print_summary, summary

    first, last = whole_days(*time_range(args.start, args.end))
    print_summary(summary(first.date(), last.date()))
    return 0


def cmd_report(args) -> int:
    from pathlib import Path

    from orderhub.config import PLATFORM_TZ, database_url
    from orderhub.landing import connect
    from orderhub.report import last_day_of_data, write_report

    if (args.start is None) != (args.end is None):
        raise UserError("give both --start and --end, or neither (the last 24 hours of data)")
    if args.start is None:
        check_warehouse()
        with connect(database_url()) as conn:
            window = last_day_of_data(conn)
        if window is None:
            raise UserError("no order has landed yet: nothing to report (`orderhub run` first)")
        start, end = window
    else:
        start, end = time_range(args.start, args.end)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out = write_report(out, start, end)
    shown = [t.astimezone(PLATFORM_TZ).isoformat() for t in (start, end)]
    print(f"report: {out.resolve()} ([{shown[0]}, {shown[1]}))")
    return 0


def cmd_dbt_build(args) -> int:
    """The marts built as a DAG's dbt task builds them: dbt build, then the gates."""
    from orderhub.config import database_url, pii_salt
    from orderhub.orchestration import build_marts
    from orderhub.transform import ensure_manifest

    check_warehouse()
    ensure_manifest()
    failed = build_marts(database_url(), pii_salt(), reconciliation=args.reconciliation,
                         scope="all", echo=lambda out: print(out[-4000:]))
    if failed:
        print(f"dbt failed: {', '.join(failed)} (the errors are above)", file=sys.stderr)
        return 1
    print("marts built; the gates passed")
    return 0


def cmd_dbt_freshness(args) -> int:
    """dbt source freshness on the raw tables: when each last landed a row,
    against its warn and error bounds (models/staging/_staging__sources.yml)."""
    import json

    from orderhub.config import dbt_project_dir
    from orderhub.transform import dbt

    check_warehouse()
    sources = dbt_project_dir() / "target" / "sources.json"
    sources.unlink(missing_ok=True)  # never an earlier run's answer
    result = dbt("source", "freshness", check=False)
    if not sources.exists():
        print(result.stdout[-3000:], file=sys.stderr)
        return 1
    results = sorted(json.loads(sources.read_text())["results"], key=lambda r: r["unique_id"])
    for r in results:
        name = r["unique_id"].split(".", 2)[2]
        bounds = r.get("criteria") or {}
        limits = ", ".join(f"{kind.split('_')[0]} after {b['count']} {b['period']}s"
                           for kind, b in bounds.items() if kind.endswith("_after") and b)
        if r.get("max_loaded_at", "").startswith("0001-"):
            landed = "nothing landed yet"
        elif "max_loaded_at_time_ago_in_s" in r:
            landed = f"newest row landed {r['max_loaded_at_time_ago_in_s'] / 3600:.1f} h ago"
        else:
            landed = r.get("message") or "could not be read"
        print(f"{name}: {r['status']} ({landed}; {limits})")
    return 1 if any(r["status"] in ("error", "runtime error") for r in results) else 0


def cmd_mapping_check(args) -> int:
    from dataclasses import asdict

    from orderhub.config import database_url
    from orderhub.landing import connect
    from orderhub.mapping import check

    with connect(database_url()) as conn:
        report = check(conn)
    if args.json:
        print(json.dumps(asdict(report), ensure_ascii=False, indent=2, default=str))
    else:
        print(report.render())
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    quiet_environment()
    airflow_lookups()
    parser = argparse.ArgumentParser(prog="orderhub", description=__doc__)
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of any failure, expected or not")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="the embedded warehouse")
    db.add_argument("action", choices=["start", "stop", "url", "migrate", "mark-production"],
                    help="migrate: bring the warehouse's raw and ops tables up to date"
                         " (every run does it too); mark-production: the sandbox never"
                         " writes to this database and nothing drops its schemas (--undo)")
    db.add_argument("--undo", action="store_true", help="with mark-production: unmark it")
    db.add_argument("--bi", action="store_true",
                    help="with url: the URL BI tools use, as the read-only role orderhub_bi"
                         " (the marts and nothing else; docs/bi.md)")
    db.set_defaults(func=cmd_db)

    nats = sub.add_parser("nats", help="the local NATS JetStream server (push intake)")
    nats.add_argument("action", choices=["start", "stop", "url"])
    nats.set_defaults(func=cmd_nats)

    intake = sub.add_parser("intake", help="receive platform pushes (webhooks, long connections)"
                                           " into JetStream")
    intake.add_argument("--host", default="127.0.0.1")
    intake.add_argument("--port", type=port, default=8090)
    intake.set_defaults(func=cmd_intake)

    stream = sub.add_parser("stream", help="land pushed orders: JetStream -> detail API -> raw")
    stream.add_argument("--batch", type=int, default=200, help="messages per micro-batch")
    stream.set_defaults(func=cmd_stream)

    sandbox = sub.add_parser("sandbox", help="the platform sandbox")
    sandbox_sub = sandbox.add_subparsers(dest="sandbox_command", required=True)
    for name, func in (("serve", cmd_sandbox_serve), ("truth", cmd_sandbox_truth)):
        p = sandbox_sub.add_parser(name)
        p.add_argument("--seed", type=int, default=DEFAULT_SEED)
        p.add_argument("--scale", type=float, default=1.0, help="order volume multiplier")
        p.set_defaults(func=func)
        if name == "serve":
            p.add_argument("--port", type=port, default=0)
            p.add_argument("--faults", default="none", choices=list(CHOICES))
            p.add_argument("--host", default="127.0.0.1")
            p.add_argument("--flash-sale", metavar="START",
                           help="open a flash sale on scarce SKUs at START (ISO time):"
                                " 10 minutes, 3 SKUs of 30 units listed on every channel")
        else:
            p.add_argument("--at", help="deliveries: their state at this time (default: the"
                                         " end plus the safety lag, when the last run asked)")
            p.add_argument("--kind", default="orders",
                           choices=["orders", "reconciliation", "stock", "deliveries"],
                           help="orders: their state; reconciliation: the category of every"
                                " order or settlement line that must show a difference;"
                                " stock: per merchant SKU, the units sold beyond the supply"
                                " (the running sandbox's flash sale, or one over the window"
                                " that nobody kept in step); deliveries: the deliveries of the"
                                " window's orders by a shop's delivery service (SF same-city)")
            p.add_argument("--start", required=True)
            p.add_argument("--end", required=True)
            p.add_argument("--out", required=True)

    run = sub.add_parser("run", help="run the DAGs through Airflow for every hour in a range")
    run.add_argument("--start", required=True)
    run.add_argument("--end", required=True)
    run.add_argument("--real", action="store_true",
                     help="ignore a running sandbox; use the connections Airflow has")
    run.add_argument("--no-repair", action="store_true", help="skip the closing orders_repair run")
    run.add_argument("--settle-hours", type=float, default=0,
                     help="run orders_repair once more this many hours later (late updates)")
    run.add_argument("--history-days", type=float, default=0,
                     help="first sync this many days of order history before --start"
                          " (one orders_repair run with a span)")
    run.add_argument("--settlement-days", type=int, default=0,
                     help="then reconcile this many whole days before --start"
                          " (one settlements_daily run with a span)")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="warehouse + sandbox + DAG runs + a summary")
    demo.add_argument("--seed", type=int, default=DEFAULT_SEED)
    demo.add_argument("--world", default="brand", choices=list(WORLDS),
                      help="brand: the brand's shops (config/shops.yml); tea: a tea chain's"
                           " stores on Meituan and Ele.me and its mini-program shop"
                           " (config/worlds/tea.yml), lunch and afternoon peaks")
    demo.add_argument("--scale", type=float, default=None,
                      help="order volume multiplier (default 0.1, tea 1.0; 1.0: a full-size"
                           " brand; see make bench)")
    demo.add_argument("--settlement-days", type=int, default=None,
                      help="reconcile this many days before --start (0: orders only;"
                           " default 2, or 0 for a --live segment on its own)")
    demo.add_argument("--start", default=None,
                      help=f"default {DEFAULT_START} (tea: {TEA_WINDOW[0]})")
    demo.add_argument("--end", default=None, help=f"default {DEFAULT_END} (tea: {TEA_WINDOW[1]})")
    demo.add_argument("--live", type=float, default=None, metavar="SECONDS",
                      help="first push this many seconds of wall time as it happens (Douyin"
                           " webhooks, TMC/PDD long connections -> orderhub intake -> NATS"
                           " JetStream -> orderhub stream);"
                           " without --end, only that span, then the poll catches up on it")
    demo.add_argument("--speed", type=float, default=1.0,
                      help="the live segment's sandbox clock speed (x wall time)")
    demo.add_argument("--flash-sale", action=argparse.BooleanOptionalAction, default=None,
                      help="a flash sale on 3 scarce SKUs during the live segment (the default"
                           " with --live), the channels kept in step by `orderhub stock sync`"
                           " before it opens; prints what sold twice with and without it")
    demo.add_argument("--fresh", action="store_true", help="start from an empty warehouse")
    demo.add_argument("--no-repair", action="store_true",
                      help="leave out the closing orders_repair run (as `orderhub run --no-repair`)")
    demo.add_argument("--faults", default="none", choices=list(CHOICES),
                      help="sandbox fault profile (docs/sandbox.md)")
    demo.set_defaults(func=cmd_demo)

    local = sub.add_parser("airflow", help="Airflow's UI, scheduler, DAG processor and triggerer"
                                           " on 127.0.0.1, in the foreground (make airflow)")
    local.add_argument("--port", type=port, default=8080, help="the UI and API's port")
    local.add_argument("--unpause", action="store_true",
                       help="unpause the three DAGs (they start paused)")
    local.add_argument("--sandbox", action="store_true",
                       help="serve the last demo's sandbox (seed, scale, shops) and point the"
                            " shops' connections at it; without it, Airflow's connections")
    local.set_defaults(func=cmd_airflow)

    extract = sub.add_parser("extract", help="re-pull a range by hand (same code as the DAG)")
    extract.add_argument("--platform", required=True)
    extract.add_argument("--shop")
    extract.add_argument("--start", required=True)
    extract.add_argument("--end", required=True)
    extract.set_defaults(func=cmd_extract)

    stock = sub.add_parser("stock", help="stock across channels (docs/stock.md)")
    stock_sub = stock.add_subparsers(dest="stock_command", required=True)
    stock_sync = stock_sub.add_parser(
        "sync", help="one pass: count the warehouse, read every channel of"
                     " seeds/stock_channels.csv, bring offers down to their allocations")
    stock_sync.add_argument("--dry-run", action="store_true",
                            help="write the proposals to ops.stock_updates, send nothing")
    stock_sync.add_argument("--raise", dest="raise_offers", action="store_true",
                            help="also raise offers below their allocation (safe only when"
                                 " every sale has landed: before or after a sale)")
    stock_sync.set_defaults(func=cmd_stock_sync)
    stock_follow = stock_sub.add_parser(
        "follow", help="during a sale: rebalancing passes, woken by each landed batch of"
                       " orders, moving units a channel has not sold to channels running out"
                       " (never raising what the channels offer together)")
    stock_follow.add_argument("--every", type=float, default=30.0,
                              help="seconds between passes when nothing lands (default 30)")
    stock_follow.add_argument("--for", dest="seconds", type=float, default=0,
                              help="stop after this many seconds (default: until stopped)")
    stock_follow.add_argument("--dry-run", action="store_true",
                              help="write the proposals to ops.stock_updates, send nothing")
    stock_follow.set_defaults(func=cmd_stock_follow)

    check = sub.add_parser("check", help="test each shop's connection with one signed call"
                                         " and say plainly what is wrong")
    check.add_argument("--shop", help="only this shop (its id, or platform/id)")
    check.set_defaults(func=cmd_check)

    status = sub.add_parser("status", help="every shop and entity: last sync, what landed in"
                                           " the last 24 h, open windows, last error, push"
                                           " latency (marts.rpt_shop_status)")
    status.add_argument("--shop", help="only this shop (its id, or platform/id)")
    status.set_defaults(func=cmd_status)

    replay = sub.add_parser("replay", help="land saved API responses through the normal loader")
    replay.add_argument("--platform", required=True, choices=platform_names())
    replay.add_argument("--kind", default="orders", choices=["orders"])
    replay.add_argument("--shop", help="shop id (needed when the platform has several)")
    replay.add_argument("files", nargs="+")
    replay.set_defaults(func=cmd_replay)

    bench = sub.add_parser("bench", help="benchmarks: OrderHub vs the limit and the alternatives")
    bench.add_argument("--scale", type=float, default=1.0, help="data volume multiplier")
    bench.add_argument("--runs", type=int, default=3, help="runs per scenario (median)")
    bench.add_argument("--scenarios", help="comma-separated scenarios: 1, 2, 3, 4, 5a, 5b, 6, push"
                                            " (default: all)")
    bench.add_argument("--no-write", action="store_true", help="print only (no docs/benchmarks.*)")
    bench.set_defaults(func=cmd_bench)

    docs = sub.add_parser("docs", help="build dbt docs and the GX Data Docs; print their paths")
    docs.add_argument("--serve", action="store_true",
                      help="then serve both on 127.0.0.1 until Ctrl-C")
    docs.add_argument("--port", type=port, default=8081)
    docs.set_defaults(func=cmd_docs)

    report = sub.add_parser("report", help="a self-contained HTML run report with charts")
    report.add_argument("--out", default="report.html")
    report.add_argument("--start", default=None,
                        help="default: the 24 hours up to the newest order landed")
    report.add_argument("--end", default=None)
    report.set_defaults(func=cmd_report)

    recon = sub.add_parser("recon", help="reconciliation: summaries and resolving review items")
    recon_sub = recon.add_subparsers(dest="recon_command", required=True)
    resolve = recon_sub.add_parser("resolve", help="resolve a review item (ops.recon_overrides)")
    for name in ("platform", "shop", "order", "category", "resolution", "reason", "by"):
        resolve.add_argument(f"--{name}", required=True)
    resolve.set_defaults(func=cmd_recon_resolve)
    recon_summary = recon_sub.add_parser("summary", help="consistency, differences, review queue")
    recon_summary.add_argument("--start", required=True, help="first day reconciled")
    recon_summary.add_argument("--end", required=True, help="day after the last")
    recon_summary.set_defaults(func=cmd_recon_summary)

    dbt = sub.add_parser("dbt", help="dbt, the way the DAGs run it")
    dbt_sub = dbt.add_subparsers(dest="dbt_command", required=True)
    dbt_build = dbt_sub.add_parser(
        "build", help="build the marts as a DAG's dbt task does (dbt build, then the gate tests):"
                      " after a replay, or by hand")
    dbt_build.add_argument("--reconciliation", action="store_true",
                           help="also rebuild the reconciliation marts (as settlements_daily)")
    dbt_build.set_defaults(func=cmd_dbt_build)
    dbt_sub.add_parser(
        "freshness", help="dbt source freshness: when each raw table last landed a row, against"
                          " its bounds (exit 1 past an error bound)").set_defaults(func=cmd_dbt_freshness)

    mapping = sub.add_parser("mapping", help="the field and status mapping seeds")
    mapping_sub = mapping.add_subparsers(dest="mapping_command", required=True)
    mapping_check = mapping_sub.add_parser(
        "check", help="unmapped statuses, missing required fields and unread payload fields,"
                      " with seed rows to paste (exit 1 on unmapped or missing)")
    mapping_check.add_argument("--json", action="store_true", help="machine-readable output")
    mapping_check.set_defaults(func=cmd_mapping_check)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as error:  # noqa: BLE001 - the one place expected failures become messages
        if args.debug:
            raise
        message = explain(error)
        if message is None:
            raise  # a genuine bug: the traceback is what is needed
        print(f"orderhub {args.command}: error: {message}", file=sys.stderr)
        return 2


def explain(error: Exception) -> str | None:
    """The plain words for an expected failure (None: not an expected one)."""
    import psycopg

    from orderhub.config import UserError
    from orderhub.platforms import PlatformError

    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, psycopg.OperationalError):
        from orderhub.config import database_url

        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return (f"cannot reach the warehouse at {_where(database_url())}: {first}."
                " Start it (`orderhub db start`) or set ORDERHUB_DATABASE_URL.")
    if isinstance(error, PlatformError):
        return f"the platform refused: {error}"
    if isinstance(error, FileNotFoundError | PermissionError | IsADirectoryError):
        return f"{error.strerror}: {error.filename}"
    return None


def _where(url: str) -> str:
    """host:port/database of a URL, never its password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (0-65535; 0: any free one)")
    return value


if __name__ == "__main__":
    sys.exit(main())
