"""Keeping the channels in step, one pass (issue 18, items 2-4 so far): the
warehouse counted, every channel's listing read, and each channel's offer of
a flash sale's SKUs brought down to its allocation through the platforms'
stock APIs, recorded in ops.stock_updates. Before the sale opens, that alone
makes the sale end with no unit oversold, where the same sale without
OrderHub oversells. Driven through the real clients against the sandbox, on a
real warehouse built by dbt."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest

from orderhub.config import parse_time
from orderhub.landing import connect, ensure_schema
from orderhub.transform import dbt, ensure_manifest
from orderhub_tools.runner import SandboxTarget
from orderhub_tools.sandbox.server import SandboxSpec, serve
from orderhub_tools.sandbox.stock import FlashSale, Stock
from orderhub_tools.sandbox.world import World
from tests.truth import reset

pytestmark = pytest.mark.integration

T0 = parse_time("2026-11-11T00:00:00+08:00")
SALE = {"start": int(T0.timestamp()), "minutes": 4.0, "skus": 2, "on_hand": 20, "rate": 20.0}
# seeds/stock_channels.csv: one shop per platform; Tmall's has priority
SHARES = {"tmall": Decimal("0.30"), "jd": Decimal("0.20"), "pdd": Decimal("0.25"),
          "douyin": Decimal("0.25")}


def allocation(available: int) -> dict[str, int]:
    """Each channel's share rounded down; the priority channel takes the rest."""
    split = {p: int(available * share) for p, share in SHARES.items()}
    split["tmall"] += available - sum(split.values())
    return split


def expected(server) -> dict:
    """What every channel may offer of every SKU before any sale: the
    warehouse's count split by the shares (no order holds anything yet)."""
    from orderhub_tools.sandbox.stock import warehouse_answer

    counts = warehouse_answer(server.sandbox.world, server.sandbox.clock())["items"]
    return {(p, item["sku"]): allocation(item["on_hand"])[p] for item in counts for p in SHARES}


@pytest.fixture(scope="module")
def flash(warehouse_url, shops):
    reset(warehouse_url)
    spec = SandboxSpec(seed=5, shops=[(s.platform, s.shop_id) for s in shops], scale=0.01,
                       flash_sale=SALE)
    server = serve(spec)
    server.sandbox.clock.set((T0 - timedelta(minutes=5)).timestamp())  # before the sale
    target = SandboxTarget(f"http://127.0.0.1:{server.server_address[1]}", spec.seed)
    mp = pytest.MonkeyPatch()
    for name, value in target.connections(shops).items():
        mp.setenv(name, value)
    with connect() as conn:
        ensure_schema(conn)
    ensure_manifest()
    built = dbt("build", check=False)
    assert built.returncode == 0, built.stdout[-3000:]
    yield server
    mp.undo()
    server.shutdown()


def quantities(server) -> dict:
    """What each flash-sale channel offers of each SKU now."""
    stock = server.sandbox.world.stock
    return {(lst.platform, lst.merchant.code): lst.quantity for lst in stock.listings
            if lst.channel in stock.channels}


def updates(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("select platform, merchant_sku, offered, allocation, mode,"
                            " sent_quantity, status from ops.stock_updates"
                            " order by platform, merchant_sku, created_at").fetchall()


def test_a_dry_run_proposes_every_change_and_sends_none(flash, warehouse_url):
    from orderhub.stock import sync

    before = quantities(flash)
    share = expected(flash)
    beyond = {key for key, offered in before.items() if offered > share[key]}
    # every flash SKU (20 offered on each of the 4 channels); the catalog's 999
    # are within the share of the warehouse's 5,000 or so
    assert {sku for _, sku in beyond} == {"FS-001", "FS-002"} and len(beyond) == 8
    result = sync("dry", dry_run=True)
    assert (result.shops, result.proposed, result.sent) == (4, len(beyond), 0)
    assert quantities(flash) == before
    proposed = updates(warehouse_url)
    assert {row[-1] for row in proposed} == {"proposed"} and len(proposed) == len(beyond)
    for platform, sku, offered, allocated, mode, sent, _ in proposed:
        assert (offered, allocated) == (before[(platform, sku)], share[(platform, sku)])
        # a delta where the platform takes one; JD only sets a quantity
        assert (mode, sent) == (("full", allocated) if platform == "jd"
                                else ("increment", allocated - offered))


def test_a_pass_brings_every_channel_to_its_allocation_and_the_sale_oversells_nothing(
        flash, warehouse_url):
    from orderhub.stock import sync

    before, share = quantities(flash), expected(flash)
    result = sync("live")
    assert (result.sent, result.refused, result.unknown) == (8, 0, 0)
    # down to the share where beyond it; the rest left alone (raising is --raise)
    settled = {key: min(offered, share[key]) for key, offered in before.items()}
    assert quantities(flash) == settled
    assert {key: n for key, n in settled.items() if key[1].startswith("FS-")} == {
        (p, f"FS-00{i}"): n for p, n in {"tmall": 6, "jd": 4, "pdd": 5, "douyin": 5}.items()
        for i in (1, 2)}  # 20 units: 6 + 4 + 5 + 5
    assert [row[-1] for row in updates(warehouse_url)].count("ok") == 8
    with psycopg.connect(warehouse_url) as conn:  # the channels were read again after the pass
        offers = {(p, sku): n for p, sku, n in conn.execute(
            "select platform, merchant_sku, offered from marts.stock_offers"
            " where merchant_sku like 'FS-%'")}
    assert offers == {key: n for key, n in settled.items() if key[1].startswith("FS-")}
    again = sync("again")  # nothing is offered beyond its allocation any more
    assert (again.proposed, again.sent) == (0, 0)
    assert quantities(flash) == settled
    # Before the sale every sale has landed (there is none): raising is safe,
    # and brings the catalog's offers up to their shares.
    raised = sync("raise", raise_offers=True)
    assert raised.sent == sum(1 for key in before if before[key] < share[key]) > 0
    assert quantities(flash) == share

    flash.sandbox.clock.set((T0 + timedelta(minutes=30)).timestamp())  # the sale plays out
    rows = flash.sandbox.world.stock.truth()
    assert [(r["merchant_sku"], r["oversold"]) for r in rows] == [("FS-001", 0), ("FS-002", 0)]
    assert all(r["sold"] > 0 for r in rows)
    # The same sale, nobody keeping the channels in step: units sold twice.
    shops = flash.sandbox.spec.shops
    alone = Stock(World(5, shops, 0.01), FlashSale(**SALE)).truth()
    assert all(r["oversold"] > 0 for r in alone)


# A gateway that applies a call and then loses its answer (`lost`: a 504
# after the work), or fails before doing it (HTTP 5xx: `flaky`).
CHANNEL_FAULTS = {"tmall": "lost", "jd": "flaky", "pdd": "lost", "douyin": "lost"}


def test_passes_against_faulty_gateways_remove_no_unit_twice(flash, warehouse_url, shops):
    """Every channel's gateway faulty: answers lost after the platform applied
    the change, 5xx before it did, listings cut off. A change whose outcome
    is unknown is not sent again blind; the next pass reads the channel
    first. Passes until one finds nothing to change: every offer is exactly
    its share (one unit lower anywhere would be a change applied twice), and
    the sale oversells nothing."""
    from orderhub.stock import sync
    from orderhub.transform import ensure_views

    reset(warehouse_url)
    pairs = [(s.platform, s.shop_id) for s in shops]
    spec = SandboxSpec(seed=5, shops=pairs, scale=0.01, flash_sale=SALE,
                       shop_faults={shop: CHANNEL_FAULTS[p] for p, shop in pairs
                                    if p in CHANNEL_FAULTS})
    server = serve(spec)
    server.sandbox.clock.set((T0 - timedelta(minutes=5)).timestamp())
    mp = pytest.MonkeyPatch()
    target = SandboxTarget(f"http://127.0.0.1:{server.server_address[1]}", spec.seed)
    for name, value in target.connections(shops).items():
        mp.setenv(name, value)
    try:
        ensure_views("stock_channel_allocations", "stock_offers")
        before, share = quantities(server), expected(server)
        passes = []
        for i in range(12):
            # a few seconds between passes: a read in the same second as the
            # last is the same read, and its unanswered changes are not re-sent
            server.sandbox.clock.set((T0 - timedelta(minutes=5, seconds=-5 * i)).timestamp())
            passes.append(sync(f"faulty-{i}"))
            if not (passes[-1].proposed or passes[-1].unknown or passes[-1].skipped):
                break
        assert not (passes[-1].proposed or passes[-1].unknown or passes[-1].skipped), [
            p.line() for p in passes]
        assert quantities(server) == {key: min(n, share[key]) for key, n in before.items()}
        unknown = {row[0] for row in updates(warehouse_url) if row[-1] == "unknown"}
        # the faults were met: changes applied with their answers lost, and 5xx before JD's
        assert {"tmall", "pdd", "douyin"} & unknown and "jd" in unknown, unknown
        assert any("listings" in skipped for p in passes for skipped in p.skipped)
        server.sandbox.clock.set((T0 + timedelta(minutes=30)).timestamp())
        assert [r["oversold"] for r in server.sandbox.world.stock.truth()] == [0, 0]
    finally:
        mp.undo()
        server.shutdown()


# A sale a Douyin live stream drives: buyers there come 4x as fast, so Douyin
# runs out of its share first while Tmall still has units.
FOLLOWED_SALE = {**SALE, "minutes": 3.0, "rate": 6.0, "demand": {"douyin": 4.0}}
FOLLOW_SPEED = 10.0  # the live span's sandbox seconds per wall second


def test_a_sale_followed_live_with_every_push_fault_on_oversells_nothing(warehouse_url, shops):
    """The whole push path runs through the sale (sandbox pushes with every
    push fault on -> `orderhub intake` -> NATS -> `orderhub stream` -> raw),
    and `orderhub stock follow` runs rebalancing passes woken by what it lands.
    Units move from Tmall to the channels running out while buyers still come,
    and no unit is sold twice: a pass never raises what the channels offer
    together, so late, lost or doubled pushes cannot make it oversell."""
    import threading

    from orderhub.push import broker
    from orderhub.stock import follow, sync
    from orderhub.transform import ensure_views
    from orderhub_tools.live import PushStack, run_live

    reset(warehouse_url)
    pairs = [(s.platform, s.shop_id) for s in shops]
    sale = FlashSale(**FOLLOWED_SALE)
    server = serve(SandboxSpec(seed=5, shops=pairs, scale=0.01, flash_sale=FOLLOWED_SALE))
    target = SandboxTarget(f"http://127.0.0.1:{server.server_address[1]}", 5)
    start = T0 - timedelta(seconds=30)
    server.sandbox.clock.set((start - timedelta(seconds=30)).timestamp())
    mp = pytest.MonkeyPatch()
    for name, value in target.connections(shops).items():
        mp.setenv(name, value)
    done, passes = threading.Event(), []
    follower = threading.Thread(target=lambda: follow(every=2, poll=0.2, stop=done.is_set,
                                                      report=passes.append))
    stack = None
    try:
        ensure_views("stock_channel_allocations", "stock_offers")
        assert sync("before-the-sale").sent == 8  # 2 SKUs on 4 channels, down to their shares
        broker.start()
        broker.reset()
        stack = PushStack(target.connections(shops)).start()
        follower.start()
        span = run_live(target.url, stack, start, (sale.end - start.timestamp()) / FOLLOW_SPEED,
                        speed=FOLLOW_SPEED, faults="push")
    finally:
        done.set()
        if follower.is_alive():
            follower.join(timeout=60)
        if stack is not None:
            stack.stop()
        mp.undo()
    try:
        server.sandbox.clock.set(sale.end + 3600)  # played out: unpaid orders closed
        truth = server.sandbox.world.stock.truth()
    finally:
        server.shutdown()
    assert set(span.pushes["faults"]) >= {"lost", "dup", "disorder", "burst", "storm"}, span.pushes
    with psycopg.connect(warehouse_url) as conn:
        pushed = conn.execute("select count(*) from raw.orders where intake = 'push'").fetchone()[0]
        moves = conn.execute(
            "select platform, sum(sent_quantity) from ops.stock_updates where status = 'ok'"
            " and reason like '%%rebalancing%%' group by platform").fetchall()
    assert pushed > 0
    # (a follower raising offers to allocations from what it has landed, as
    # `orderhub stock sync --raise` would, sells 3 and 7 units twice here)
    assert [row["oversold"] for row in truth] == [0, 0], truth
    moved = dict(moves)
    # units left Tmall (the only channel whose answer proves they did) for
    # the others, and never more than left
    assert moved.get("tmall", 0) < 0 and sum(moved.values()) <= 0, moved
    assert moved.get("douyin", 0) > 0, moved
    assert sum(p.moved for p in passes) == sum(v for v in moved.values() if v > 0)
    assert not any(p.refused for p in passes), [p.line() for p in passes]
    # Douyin sold beyond the share it had when the sale opened (5 of 20 a SKU)
    douyin = [c["sold"] for row in truth for name, c in row["channels"].items()
              if name.startswith("douyin/")]
    assert max(douyin) > 5, truth


def test_follow_goes_on_after_a_pass_that_failed(warehouse_url, monkeypatch):
    """A pass that cannot run (an hourly build has dropped the stock views for
    a moment, the warehouse system is down) is reported, and the next landed
    batch wakes the next pass."""
    import orderhub.stock as stock
    import orderhub.transform as transform

    calls = []

    def flaky_sync(run_id, **options):
        calls.append(options)
        if len(calls) == 1:
            raise psycopg.errors.UndefinedTable('relation "marts.stock_offers" does not exist')
        return stock.SyncResult(shops=4, proposed=1, sent=1)

    monkeypatch.setattr(stock, "sync", flaky_sync)
    monkeypatch.setattr(transform, "ensure_views", lambda *models: None)
    reported = []
    stock.follow(every=0, poll=0, stop=lambda: len(calls) >= 2, report=reported.append)
    assert [c["rebalance"] for c in calls] == [True, True]
    assert [r.line() for r in reported] == [
        'stock sync: the pass failed: relation "marts.stock_offers" does not exist',
        "stock sync: 4 channels read, 1 changes (1 sent, 0 refused, 0 unknown)"]


@pytest.fixture(scope="module")
def oversold(flash, warehouse_url, shops):
    """The same flash sale in a sandbox nobody keeps in step, played out, its
    channels' orders extracted and landed, the warehouse counted, dbt built.
    (After the tests on ``flash``: it takes the warehouse over.)"""
    from orderhub.extract import extract_shop
    from orderhub.stock import Warehouse, land_snapshot
    from orderhub_tools.sandbox.stock import WAREHOUSE_PATH, warehouse_token

    reset(warehouse_url)
    spec = SandboxSpec(seed=5, shops=[(s.platform, s.shop_id) for s in shops], scale=0.01,
                       flash_sale=SALE)
    server = serve(spec)
    server.sandbox.clock.set((T0 + timedelta(minutes=30)).timestamp())  # the sale is over
    url = f"http://127.0.0.1:{server.server_address[1]}"
    mp = pytest.MonkeyPatch()
    for name, value in SandboxTarget(url, spec.seed).connections(shops).items():
        mp.setenv(name, value)
    try:
        channels = set(server.sandbox.world.stock.channels)
        for shop in shops:
            if (shop.platform, shop.shop_id) in channels:
                landed = extract_shop(shop, T0 - timedelta(hours=1), T0 + timedelta(minutes=25),
                                      run_id="flash-sale")
                assert landed.windows_failed == 0
        with connect() as conn:
            land_snapshot(conn, Warehouse(url + WAREHOUSE_PATH, warehouse_token(5)).inventory(),
                          "flash-sale")
        built = dbt("build", check=False)
        assert built.returncode == 0, built.stdout[-3000:]
        yield server
    finally:
        mp.undo()
        server.shutdown()


def test_the_oversold_incidents_are_the_units_the_sandbox_sold_twice(oversold, warehouse_url):
    """`orderhub sandbox truth --kind stock` and OrderHub's incident mart agree,
    and each oversold SKU raises an alert."""
    from orderhub.alerts import evaluate

    truth = {row["merchant_sku"]: row["oversold"]
             for row in oversold.sandbox.world.stock.truth()}
    assert all(units > 0 for units in truth.values())
    with psycopg.connect(warehouse_url) as conn:
        incidents = dict(conn.execute("select merchant_sku, oversold_units"
                                      " from marts.fct_oversold_incidents").fetchall())
        history = conn.execute("select count(*) from marts.fct_stock_position_history"
                               " where oversold > 0").fetchone()[0]
        alerts = evaluate(conn, T0, T0 + timedelta(hours=1), None)
    assert incidents == truth
    assert history == len(truth)  # one build so far
    oversold_alerts = {a.subject.split(":")[0]: a.value for a in alerts if a.kind == "oversold"}
    assert oversold_alerts == {sku: f"{units} units sold twice" for sku, units in truth.items()}
    # ... and they are the SKUs at risk: sold out (nothing available) and sold twice;
    # the catalog's 4,800 offered of 5,000 or so on hand are not.
    with psycopg.connect(warehouse_url) as conn:
        risk = {sku: (available, oversold) for sku, available, oversold in conn.execute(
            "select merchant_sku, available_to_sell, oversold_now from marts.rpt_oversell_risk")}
    assert risk == {sku: (0, True) for sku in truth}
    assert [a for a in alerts if a.kind == "oversell_risk"] == []  # they have their own


def test_the_run_report_shows_the_scarce_skus(oversold, tmp_path):
    from orderhub.report import write_report

    page = write_report(tmp_path / "report.html", T0, T0 + timedelta(hours=1)).read_text()
    section = page.split("Stock: the scarcest SKUs")[1].split("</section>")[0]
    truth = {row["merchant_sku"]: row for row in oversold.sandbox.world.stock.truth()}
    rows = [r for r in section.split("<tr>") if "FS-00" in r]
    assert [r.split("<td>")[1].split("<")[0] for r in rows] == sorted(truth)  # the scarcest first
    for row in rows:
        cells = [c.split("</td>")[0] for c in row.split("<td>")[1:]]
        assert cells[2] == str(truth[cells[0]]["supply"]) and cells[7] == str(
            truth[cells[0]]["oversold"]) and cells[8].startswith("oversold")


def test_a_channel_offering_beyond_what_is_available_raises_a_risk_alert(oversold,
                                                                        warehouse_url, shops):
    """Somebody lists 10,000 of a catalog product on one shop by hand: at the
    next read of its listings the SKU is at risk, and said so."""
    from orderhub.alerts import evaluate
    from orderhub.platforms import Credentials, client_for
    from orderhub.stock import snapshot_listings

    shop = next(s for s in shops if s.platform == "tmall")
    api = client_for("tmall", Credentials.from_airflow(shop.conn_id))
    listing = next(s.listing for s in api.listed_skus() if s.listing.outer_id == "TEA-003")
    api.set_stock(listing, 10_000)
    with psycopg.connect(warehouse_url) as conn:
        snapshot_listings(conn, shop, "by-hand")
        risk = conn.execute("select merchant_sku, offered, available_to_sell,"
                            " offered_beyond_available from marts.rpt_oversell_risk"
                            " where merchant_sku like 'TEA-%'").fetchall()
        alerts = [a for a in evaluate(conn, T0, T0 + timedelta(hours=1), None)
                  if a.kind == "oversell_risk"]
    assert len(risk) == 1 and risk[0][0] == "TEA-003" and risk[0][3]
    offered, available = risk[0][1], risk[0][2]
    assert offered == 10_000 > available  # the only listing read in this world
    assert [(a.subject, a.value) for a in alerts] == [
        (f"TEA-003: the channels offer {offered} of {available} available",
         f"{offered - available} units offered beyond")]
