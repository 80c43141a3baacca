"""Stock (issue 18): the brand's warehouse on-hand and what each shop lists,
landed into raw.

The warehouse system answers ``GET <url>`` with a bearer token::

    {"warehouse_id": "WH-1", "as_of": "2026-11-10T16:00:00Z",
     "items": [{"sku": "FS-001", "on_hand": 30, ...}, ...]}

``sku`` is the brand's merchant SKU (dbt_project/seeds/merchant_skus.csv).
Its connection is the Airflow connection ``orderhub_wms`` (host = the URL,
password = the token), looked up like the shops' connections; without it the
snapshot is skipped, and said so.

Each item lands as one row of ``raw.stock_on_hand`` keyed by (warehouse,
SKU, as_of): a snapshot landed twice adds nothing. An item that is not a SKU
with a whole, non-negative on-hand goes to ``ops.quarantine`` with the reason,
and the good items still land.

Each shop whose platform has a listing API (``PlatformClient.listed_skus``)
lands what it offers now into ``raw.stock_listings``, one row per SKU keyed
by the platform's time of the read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import psycopg
import requests

from orderhub.config import parse_time

log = logging.getLogger(__name__)
WAREHOUSE_CONN_ID = "orderhub_wms"


class WarehouseError(Exception):
    """The warehouse system could not be read (its answer, in plain words)."""


@dataclass(frozen=True)
class Warehouse:
    url: str  # the inventory API
    token: str = field(repr=False)

    @classmethod
    def from_airflow(cls, conn_id: str = WAREHOUSE_CONN_ID) -> Warehouse | None:
        """The connection through Airflow (metadata DB, secrets backend or
        ``AIRFLOW_CONN_ORDERHUB_WMS``); None when there is none."""
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            return None
        return cls(conn.host, conn.password or "")

    def inventory(self, timeout: float = 30.0) -> dict[str, Any]:
        try:
            answer = requests.get(self.url, headers={"Authorization": f"Bearer {self.token}"},
                                  timeout=timeout)
        except requests.RequestException as exc:
            raise WarehouseError(f"warehouse at {self.url}: {type(exc).__name__}") from None
        if answer.status_code != 200:
            raise WarehouseError(f"warehouse at {self.url}: HTTP {answer.status_code}"
                                 f" {answer.text[:200]}")
        try:
            body = answer.json()
            body["warehouse_id"], body["items"]  # noqa: B018 - the shape is checked here
        except (ValueError, KeyError, TypeError) as exc:
            raise WarehouseError(f"warehouse at {self.url}: not an inventory answer"
                                 f" ({type(exc).__name__}: {exc})") from None
        return body


@dataclass
class SnapshotLoad:
    warehouse_id: str
    as_of: datetime
    items: int
    inserted: int
    quarantined: int

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "as_of": self.as_of.isoformat()}


def _problem(item: Any) -> str | None:
    """Why an inventory item cannot land, or None."""
    if not isinstance(item, dict):
        return "not an object"
    if not isinstance(item.get("sku"), str) or not item["sku"].strip():
        return "no sku"
    units = item.get("on_hand")
    if isinstance(units, bool) or not isinstance(units, int):
        return f"on_hand {units!r} is not a whole number"
    if units < 0:
        return f"on_hand {units} is negative"
    return None


def _columns(rows: list[tuple], width: int) -> list[list]:
    """Rows as columns, for one ``insert ... select from unnest(...)``."""
    return [list(column) for column in zip(*rows, strict=True)] or [[] for _ in range(width)]


def land_snapshot(conn: psycopg.Connection, body: dict[str, Any], run_id: str) -> SnapshotLoad:
    """Land one inventory answer: good items into raw.stock_on_hand, bad ones
    into ops.quarantine, in one transaction."""
    warehouse_id = str(body["warehouse_id"])
    try:
        as_of = parse_time(str(body["as_of"]))
    except (KeyError, ValueError) as exc:
        raise WarehouseError(f"warehouse {warehouse_id}: the snapshot has no valid as_of"
                             f" ({exc})") from None
    good, bad = [], []
    for item in body["items"]:
        text = json.dumps(item, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(text.encode()).hexdigest()
        problem = _problem(item)
        if problem:
            bad.append((warehouse_id, text, digest, f"stock_on_hand: {problem}", run_id))
        else:
            good.append((warehouse_id, item["sku"].strip(), as_of, item["on_hand"], text, digest,
                         run_id))
    with conn.transaction(), conn.cursor() as cur:
        # set-based: one statement per table, however many items
        cur.execute("insert into raw.stock_on_hand (warehouse_id, merchant_sku, as_of, on_hand,"
                    " payload, payload_sha256, run_id)"
                    " select * from unnest(%s::text[], %s::text[], %s::timestamptz[], %s::int[],"
                    " %s::jsonb[], %s::text[], %s::text[])"
                    " on conflict do nothing", _columns(good, 7))
        inserted = max(cur.rowcount, 0)
        if bad:
            cur.execute("insert into ops.quarantine (platform, shop_id, entity, raw_text,"
                        " raw_sha256, reason, run_id)"
                        " select 'warehouse', shop_id, 'stock_on_hand', raw_text, raw_sha256,"
                        " reason, run_id from unnest(%s::text[], %s::text[], %s::text[],"
                        " %s::text[], %s::text[]) as q(shop_id, raw_text, raw_sha256, reason,"
                        " run_id) on conflict do nothing", _columns(bad, 5))
    return SnapshotLoad(warehouse_id, as_of, len(body["items"]), inserted, len(bad))


def land_listings(conn: psycopg.Connection, platform: str, shop_id: str, skus: list,
                  listed_at: datetime, run_id: str) -> int:
    """One shop's listed SKUs (``ListedSku``) as read at ``listed_at``. Read
    again within the same second (the platform's clock has seconds), the
    later read wins; the same read landed again changes nothing."""
    # one row per SKU id (a read that lists one twice: its last line)
    rows = list({sku.listing.sku_id: (sku.listing.product_id, sku.listing.sku_id,
                                      sku.listing.outer_id, sku.quantity, sku.title)
                 for sku in skus}.values())
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("insert into raw.stock_listings (platform, shop_id, product_id, sku_id,"
                    " outer_id, quantity, title, listed_at, run_id)"
                    " select %s, %s, product_id, sku_id, outer_id, quantity, title, %s, %s"
                    " from unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::text[])"
                    " as l(product_id, sku_id, outer_id, quantity, title)"
                    " on conflict (platform, shop_id, sku_id, listed_at) do update"
                    " set quantity = excluded.quantity"
                    " where stock_listings.quantity <> excluded.quantity",
                    (platform, shop_id, listed_at, run_id,
                     *_columns(rows, 5)))
        return max(cur.rowcount, 0)


def read_listings(conn: psycopg.Connection, client, shop_id: str, run_id: str) -> tuple[int, int]:
    """Read one shop's listings through its client (one attempt: a snapshot
    is an observation, and the next read reads again) and land them, stamped
    with the platform's clock; (SKUs read, rows inserted). A PlatformError
    propagates."""
    skus = client.listed_skus()
    listed_at = datetime.fromtimestamp(int(client.platform_now()), UTC)
    return len(skus), land_listings(conn, client.platform, shop_id, skus, listed_at, run_id)


def snapshot_listings(conn: psycopg.Connection, shop, run_id: str) -> dict[str, Any]:
    """Read one shop's listings (its connection from Airflow) and land them."""
    from orderhub.platforms import Credentials, client_for

    client = client_for(shop.platform, Credentials.from_airflow(shop.conn_id))
    skus, inserted = read_listings(conn, client, shop.shop_id, run_id)
    return {"shop": f"{shop.platform}/{shop.shop_id}", "skus": skus, "inserted": inserted}


def snapshot_stock(run_id: str) -> dict[str, Any]:
    """What the hourly DAG's ``snapshot_stock`` task does: the warehouse's
    on-hand (connection ``orderhub_wms``; skipped, and said so, without one)
    and every listing shop's SKUs. A shop whose listing cannot be read (one
    attempt) is named in the result and logged; the others still land, and
    the orders of the run are not held up by it."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from orderhub.config import load_shops
    from orderhub.landing import connect, ensure_schema
    from orderhub.platforms import PlatformError, client_class

    out: dict[str, Any] = {"listings": [], "failed": []}
    with connect() as conn:
        ensure_schema(conn)
        warehouse = Warehouse.from_airflow()
        out["warehouse"] = (land_snapshot(conn, warehouse.inventory(), run_id).as_dict()
                            if warehouse is not None else
                            f"skipped: no connection {WAREHOUSE_CONN_ID}")
        for shop in load_shops():
            if not client_class(shop.platform).listing_endpoint:
                continue
            try:
                out["listings"].append(snapshot_listings(conn, shop, run_id))
            except (PlatformError, AirflowNotFoundException) as error:
                log.warning("%s/%s: listings not read: %s", shop.platform, shop.shop_id, error)
                out["failed"].append(f"{shop.platform}/{shop.shop_id}: {error}")
    return out


# -- keeping channels in step ---------------------------------------------------------
# A channel's offer is moved to its allocation by a delta where the platform
# takes one: a sale OrderHub has not learnt of yet is already off the count
# the delta changes, so it is never given back (docs/stock.md). JD only sets.
PLAN_SQL = """
select o.platform, o.shop_id, o.merchant_sku, o.product_id, o.sku_id, o.outer_sku_id,
       o.offered, a.allocation, o.listed_at, a.share, a.priority, a.available_to_sell
from marts.stock_offers as o
join marts.stock_channel_allocations as a
    on a.merchant_sku = o.merchant_sku and a.platform = o.platform and a.shop_id = o.shop_id
where o.platform = %s and o.shop_id = %s
    and a.allocation is not null  -- a SKU no warehouse counted: unknown, left alone
order by o.merchant_sku, o.sku_id
"""


class Offer(NamedTuple):
    """One channel's offer of one merchant SKU at the pass's read, and its
    allocation (marts.stock_channel_allocations)."""

    platform: str
    shop_id: str
    merchant_sku: str
    product_id: str
    sku_id: str
    outer_id: str
    offered: int
    allocation: int
    listed_at: datetime
    share: Decimal
    priority: bool
    available: int


@dataclass
class SyncResult:
    shops: int = 0
    proposed: int = 0
    sent: int = 0
    refused: int = 0
    unknown: int = 0
    moved: int = 0  # units moved from one channel to another (rebalancing)
    skipped: list[str] = field(default_factory=list)
    failed: str = ""  # a pass that could not run (orderhub stock follow goes on)

    def line(self) -> str:
        if self.failed:
            return f"stock sync: the pass failed: {self.failed}"
        return (f"stock sync: {self.shops} channels read, {self.proposed} changes"
                f" ({self.sent} sent, {self.refused} refused, {self.unknown} unknown)"
                + (f", {self.moved} units moved between channels" if self.moved else "")
                + (f"; skipped: {'; '.join(self.skipped)}" if self.skipped else ""))


def sync(run_id: str, *, dry_run: bool = False, raise_offers: bool = False,
         rebalance: bool = False, shops=None) -> SyncResult:
    """One pass of keeping the channels in step: the warehouse counted, every
    channel of seeds/stock_channels.csv read, and each listed SKU offered
    beyond its allocation brought down to it (all reductions first).

    ``raise_offers`` also raises the SKUs offered below their allocation,
    after every reduction of that SKU succeeded. It is safe only when every
    sale of the channels has landed (before a sale opens, or after it): a
    channel's offer read now already lacks the sales OrderHub has not yet
    landed, and raising it to an allocation computed without them gives those
    units back (docs/stock.md). Reductions are always safe.

    ``rebalance`` is the pass to run *during* a sale (``orderhub stock
    follow``): instead of splitting what OrderHub knows is available, it moves
    units a channel has not sold to a channel running out, and never raises
    the channels' total (see :func:`_rebalance`), so it is safe however late
    OrderHub learns of a sale.

    Every call is written to ops.stock_updates before it is sent; ``dry_run``
    writes the proposals only. A call whose outcome is unknown (a timeout, a
    5xx) is not retried: the next pass reads the channel again first, so a
    retried change never removes stock twice."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from orderhub.config import load_shops
    from orderhub.landing import connect, ensure_schema
    from orderhub.platforms import Credentials, PlatformError, client_for

    result = SyncResult()
    plans: list[tuple[Any, Offer]] = []
    with connect() as conn:
        ensure_schema(conn)
        warehouse = Warehouse.from_airflow()
        if warehouse is not None:
            land_snapshot(conn, warehouse.inventory(), run_id)
        channels = set(conn.execute("select platform, shop_id from seeds.stock_channels"))
        for shop in shops or load_shops():
            if (shop.platform, shop.shop_id) not in channels:
                continue
            try:
                client = client_for(shop.platform, Credentials.from_airflow(shop.conn_id))
            except AirflowNotFoundException:
                result.skipped.append(f"{shop.platform}/{shop.shop_id}: no connection"
                                      f" {shop.conn_id}")
                continue
            if not client.stock_endpoint:
                result.skipped.append(f"{shop.platform}/{shop.shop_id}: no stock API")
                continue
            try:
                read_listings(conn, client, shop.shop_id, run_id)
            except PlatformError as error:
                result.skipped.append(f"{shop.platform}/{shop.shop_id}: listings: {error}")
                continue
            result.shops += 1
            plans += [(client, Offer(*row)) for row in conn.execute(
                PLAN_SQL, (shop.platform, shop.shop_id))]
            conn.commit()
        sent_before = result.sent
        if rebalance:
            _rebalance(conn, plans, run_id, dry_run, result)
        else:
            failed: set[str] = set()  # SKUs with a reduction not known to have applied
            for client, offer in plans:
                if offer.offered > offer.allocation and _move(
                        conn, client, offer, offer.allocation, run_id, dry_run, result) is None:
                    failed.add(offer.merchant_sku)
            for client, offer in plans:
                if raise_offers and offer.offered < offer.allocation \
                        and offer.merchant_sku not in failed:
                    _move(conn, client, offer, offer.allocation, run_id, dry_run, result)
        if result.sent > sent_before:  # read the changed channels again: stock_offers is now
            for client, shop_id in {id(c): (c, o.shop_id) for c, o in plans}.values():
                try:
                    read_listings(conn, client, shop_id, run_id)
                except PlatformError as error:
                    result.skipped.append(f"{client.platform}/{shop_id}: re-read: {error}")
    return result


# Rebalancing acts on a SKU when a channel offers less than this part of its
# share of what the channels still offer (a channel running out).
RUNNING_OUT = 0.5


def split(pool: int, offers: list[Offer]) -> list[int]:
    """``pool`` units split by the offers' shares (renormalised over them):
    each its share rounded down, and the units the rounding leaves to the
    largest remainders (ties: the priority channel, then the larger share).
    Unlike marts.stock_channel_allocations, whose priority channel takes every
    unit the rounding leaves, this keeps a small pool's units spread out."""
    total = sum(o.share for o in offers)
    if not offers or total <= 0:
        return [0] * len(offers)
    exact = [pool * o.share / total for o in offers]
    targets = [int(x) for x in exact]
    order = sorted(range(len(offers)), key=lambda i: (exact[i] - targets[i], offers[i].priority,
                                                      offers[i].share), reverse=True)
    for i in order[:pool - sum(targets)]:
        targets[i] += 1
    return targets


def _rebalance(conn: psycopg.Connection, plans: list[tuple[Any, Offer]], run_id: str,
               dry_run: bool, result: SyncResult) -> None:
    """During a sale, per merchant SKU: units a channel has not sold are moved
    to the channels running out of it, and the channels' total is never raised.

    A platform sells from its own count, and OrderHub learns of a sale seconds
    later (or, with push faults, minutes). What the channels offer together
    is at most what is available once the pass before the sale ran; a sale
    lowers both by the same units, whether OrderHub knows of it or not. So
    this pass takes nothing from what OrderHub knows of sales: it splits what
    the channels offer *now* (their counts, read this pass) by their shares
    (capped by available_to_sell, should the warehouse count fall), and

    * moves only on channels whose stock API takes deltas (JD only sets a
      quantity, which would give back its sales in flight: it keeps its offer);
    * lowers a channel by a delta and counts a unit as freed only when the
      platform's answer proves it left: the count after the change is above 0
      (a delta is applied to the platform's own count, never below 0, so a
      count left over means the whole delta applied). A platform that answers
      only "done" (PDD, Douyin) is not lowered to feed another;
    * raises the channels running out by deltas, by at most the units freed.

    When available_to_sell is below what the channels offer (units lost from
    the warehouse), every channel above its target is lowered and nothing
    raised, as the ordinary pass would."""
    by_sku: dict[str, list[tuple[Any, Offer]]] = {}
    for client, offer in plans:
        if client.stock_increments:
            by_sku.setdefault(offer.merchant_sku, []).append((client, offer))
    fixed = {}  # what the channels that only set a quantity offer, per SKU
    for client, offer in plans:
        if not client.stock_increments:
            fixed[offer.merchant_sku] = fixed.get(offer.merchant_sku, 0) + offer.offered
    for sku, movable in by_sku.items():
        offers = [o for _, o in movable]
        offered = sum(o.offered for o in offers)
        pool = min(offered, max(0, offers[0].available - fixed.get(sku, 0)))
        targets = split(pool, offers)
        if pool < offered:  # the warehouse has less than is offered: lower, raise nothing
            for (client, offer), target in zip(movable, targets, strict=True):
                if offer.offered > target:
                    _move(conn, client, offer, target, run_id, dry_run, result)
            continue
        if not any(o.offered < RUNNING_OUT * t for o, t in zip(offers, targets, strict=True)):
            continue
        freed = 0
        for (client, offer), target in zip(movable, targets, strict=True):
            if offer.offered > target and client.stock_answer_counts:
                left = _move(conn, client, offer, target, run_id, dry_run, result)
                if left is not None and (dry_run or left > 0):
                    freed += offer.offered - target
        wanting = sorted((t - o.offered, i) for i, (o, t) in enumerate(zip(offers, targets, strict=True))
                         if o.offered < t)
        for want, i in reversed(wanting):
            give = min(want, freed)
            if give <= 0:
                break
            client, offer = movable[i]
            if _move(conn, client, offer, offer.offered + give, run_id, dry_run, result) \
                    is not None:
                result.moved += give
            freed -= give  # a raise whose answer never came may have applied: not given twice


def _move(conn: psycopg.Connection, client, offer: Offer, target: int, run_id: str,
          dry_run: bool, result: SyncResult) -> int | None:
    """Move one listed SKU's offer from what was read to ``target`` (one
    call, recorded). None: not known to have applied; else the count the
    platform answered it left (-1: it did not say; a dry run's proposal: -1)."""
    import uuid

    from orderhub.platforms import PlatformError
    from orderhub.platforms.base import StockListing

    increment = client.stock_increments
    sent = target - offer.offered if increment else target
    reason = (f"offers {offer.offered}, may offer {target}"
              + (f" ({'over' if offer.offered > target else 'under'} its allocation)"
                 if target == offer.allocation else " (rebalancing during a sale)"))
    # The same change of the same read gets the same id: a pass re-run on the
    # same read re-sends the same key (Doudian then changes nothing). A dry
    # run's proposal is not a call: it has ids of its own.
    update_id = str(uuid.uuid5(uuid.NAMESPACE_URL,
                               f"orderhub-stock|{offer.platform}|{offer.shop_id}|{offer.sku_id}"
                               f"|{offer.listed_at.isoformat()}|{offer.offered}|{target}"
                               f"|{'proposal' if dry_run else 'call'}"))
    status = "proposed" if dry_run else "sending"
    inserted = conn.execute(
        "insert into ops.stock_updates (update_id, run_id, platform, shop_id, merchant_sku,"
        " product_id, sku_id, offered, allocation, mode, sent_quantity, reason, status)"
        " values (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) on conflict do nothing",
        (update_id, run_id, offer.platform, offer.shop_id, offer.merchant_sku,
         offer.product_id, offer.sku_id, offer.offered, target,
         "increment" if increment else "full", sent, reason, status)).rowcount
    conn.commit()
    if not inserted:  # this very change of this very read was decided before: its outcome
        # (one whose answer never came is not sent again on the same read: the
        # next read, a second later at the least, decides again). What it left
        # is not kept: -1, never proof that units left.
        earlier = conn.execute("select status from ops.stock_updates where update_id = %s",
                               (update_id,)).fetchone()[0]
        if earlier in ("unknown", "sending"):
            result.unknown += 1
        return -1 if earlier in ("ok", "proposed") else None
    result.proposed += 1
    if dry_run:
        return -1
    listing = StockListing(offer.product_id, offer.sku_id, offer.outer_id)
    answer = None
    try:
        answer = client.set_stock(listing, sent, increment=increment, request_id=update_id)
        status, text = "ok", "" if answer is None else f"now {answer}"
        result.sent += 1
    except PlatformError as error:
        unknown = error.kind in ("transport", "server", "malformed")
        status, text = ("unknown" if unknown else "refused"), str(error)
        if unknown:
            result.unknown += 1
        else:
            result.refused += 1
    conn.execute("update ops.stock_updates set status = %s, answer = %s, answered_at = now()"
                 " where update_id = %s", (status, text, update_id))
    conn.commit()
    if status != "ok":
        return None
    return -1 if answer is None else answer


# -- following a sale -----------------------------------------------------------------
# What wakes a rebalancing pass: orders landed since the last one (the push
# path lands a channel's order seconds after the sale; the index on
# extracted_at makes this a lookup, not a scan).
WAKE_SQL = "select max(extracted_at) from raw.orders"
# The views a pass reads (dbt models; orderhub.transform.ensure_views).
STOCK_VIEWS = ("stock_channel_allocations", "stock_offers")


def follow(*, every: float = 30.0, poll: float = 0.5, stop=None, dry_run: bool = False,
           report=None) -> list[SyncResult]:
    """``orderhub stock follow``: rebalancing passes (:func:`sync` with
    ``rebalance``) for as long as a sale runs, each woken by the orders the
    push path (``orderhub stream``) or a poll landed since the last pass, and
    at least every ``every`` seconds. ``stop()`` true ends it (the CLI: its
    ``--for`` or a signal). Returns the passes that changed something (or
    skipped channels the pass before did not); ``report(result)`` is called
    with each of them as it ends.

    The passes do not depend on the push path for their safety, only for
    their timing: a pass reads the channels' own counts (docs/stock.md)."""
    import time

    from orderhub.landing import connect, ensure_schema
    from orderhub.transform import ensure_views

    stop = stop or (lambda: False)
    changed: list[SyncResult] = []
    seen, last, skipped = None, float("-inf"), []
    with connect() as conn:
        ensure_schema(conn)
    watch = None  # one connection for the wake-up reads, opened again after a failure
    try:
        while not stop():
            try:
                if watch is None:
                    watch = connect()
                    watch.autocommit = True  # each read sees what landed since the last
                landed = watch.execute(WAKE_SQL).fetchone()[0]
            except psycopg.Error as error:
                log.warning("stock follow: cannot read what landed: %s", error)
                if watch is not None:
                    watch.close()
                watch, landed = None, seen
            if landed != seen or time.monotonic() - last >= every:
                seen, last = landed, time.monotonic()
                try:
                    # an hourly build replacing fct_orders drops the stock views until
                    # it builds them again; a `dbt run` of another model may not
                    ensure_views(*STOCK_VIEWS)
                    result = sync(f"stock_follow__{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%f')}",
                                  rebalance=True, dry_run=dry_run)
                except (psycopg.Error, WarehouseError, requests.RequestException,
                        RuntimeError) as error:  # this pass; the next one reads everything again
                    log.warning("stock follow: pass failed: %s", error)
                    result = SyncResult(failed=str(error).splitlines()[0])
                if result.proposed or result.unknown or result.failed \
                        or result.skipped != skipped:
                    changed.append(result)
                    if report:
                        report(result)
                skipped = result.skipped
            time.sleep(poll)
    finally:
        if watch is not None:
            watch.close()
    return changed
