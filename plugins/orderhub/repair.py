"""Repair: the standing version of the article's emergency re-pull script.

Every hour ``orders_repair`` re-pulls, per shop,

* every window the ledger marks ``failed`` or ``partial``, or that landed fewer
  distinct orders than the platform reported ("short"), exactly as recorded, so
  its ledger row turns ``ok``; and
* a rolling span of the last ``ORDERHUB_REPAIR_HOURS`` hours (default 4) before
  the run's interval end, which catches updates that became visible late: an
  update up to L hours late is re-read after it shows only if the span is at
  least L + 1 hours (the repair runs hourly), so 4 hours catches updates up to
  3 hours late (the article's script re-pulled 3 hours, which misses some of
  those: a version modified at 09:30 that shows at 12:29 is re-read only by the
  repairs at 10, 11 and 12 o'clock, all before it showed).

Re-pulling is idempotent: versions already in raw add nothing.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from orderhub.config import Shop, load_shops, parse_time
from orderhub.landing import OPEN_WINDOW, connect, ensure_schema

# One SQL answers "which windows of which shop are not yet complete?"
OPEN_WINDOWS_ALL_SQL = f"""
select platform, shop_id, entity, window_start, window_end, outcome, api_reported_count,
       orders_landed, attempts, last_error
from ops.extraction_windows
where {OPEN_WINDOW}
order by platform, shop_id, entity, window_start
"""  # noqa: S608 - a constant predicate
OPEN_WINDOWS_SQL = OPEN_WINDOWS_ALL_SQL.replace("where ", "where entity = %s and ", 1)


def rolling_span() -> timedelta:
    return timedelta(hours=float(os.environ.get("ORDERHUB_REPAIR_HOURS", 4)))


def open_windows(url: str | None = None, until: datetime | None = None,
                 entity: str = "orders") -> list[dict]:
    with connect(url) as conn:
        ensure_schema(conn)
        cur = conn.execute(OPEN_WINDOWS_SQL, (entity,))
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return [r for r in rows if until is None or r["window_end"] <= until]


def plan(end: datetime, *, url: str | None = None, shops: list[Shop] | None = None,
         span: timedelta | None = None, entity: str = "orders") -> list[dict]:
    """What to re-pull for a repair run whose interval ends at ``end``: one
    entry per shop, ``spans`` as ISO pairs (XCom-friendly): the ledger's open
    windows of ``entity``, and the span before ``end``."""
    shops = shops or load_shops()
    if entity == "settlements":  # a brand's own shop has no settlement API
        from orderhub.platforms import client_class

        shops = [shop for shop in shops if client_class(shop.platform).has_settlements()]
    span = span if span is not None else rolling_span()
    pending = open_windows(url, until=end, entity=entity)
    out = []
    for shop in shops:
        spans = [(w["window_start"], w["window_end"]) for w in pending
                 if (w["platform"], w["shop_id"]) == (shop.platform, shop.shop_id)]
        if span > timedelta(0):
            spans.append((end - span, end))
        if spans:
            out.append({"shop": shop.__dict__,
                        "spans": [(a.isoformat(), b.isoformat()) for a, b in spans],
                        "open_windows": len(spans) - (1 if span > timedelta(0) else 0)})
    return out


def plan_run(params: dict | None, interval_start: datetime, interval_end: datetime, *,
             url: str | None = None, shops: list[Shop] | None = None,
             entity: str = "orders") -> list[dict]:
    """What one orders_repair (or settlements_daily) DAG run re-pulls: with
    params ``start``/``end`` (a manual run: a historical sync, a by-hand
    run's repair), that span and the open windows before its end (with
    ``open_only``, the open windows alone: a repair's retry), whatever
    the run's own data interval is; without them (the hourly schedule), the
    open windows and the rolling span before the interval's end (a day's
    bills for settlements: the interval itself). The DAG tasks call this."""
    params = params or {}
    if params.get("start") and params.get("end"):
        start, end = parse_time(params["start"]), parse_time(params["end"])
        span = timedelta(0) if params.get("open_only") else end - start
        jobs = plan(end, url=url, shops=shops, span=span, entity=entity)
        mode = sync_mode(params)
    elif entity == "settlements":
        jobs = plan(interval_end, url=url, shops=shops, span=interval_end - interval_start,
                    entity=entity)
        mode = "live"
    else:
        jobs = plan(interval_end, url=url, shops=shops, entity=entity)
        mode = "live"
    return [{**job, "sync_mode": mode} for job in jobs]


def sync_mode(params: dict | None) -> str:
    """A run's sync mode: a manual run with a span syncs history ("backfill"),
    unless it says it is part of the live cycle (params live: a by-hand run's
    partial hours and closing repair); every scheduled run is "live"."""
    params = params or {}
    if params.get("start") and params.get("end") and not params.get("live"):
        return "backfill"
    return "live"


def run_job(job: dict, run_id: str, entity: str = "orders", **kwargs):
    """One shop's re-pull of a :func:`plan` entry: what the DAGs' mapped
    repair and settlement tasks run (``kwargs`` go to ``extract_windows``)."""
    from orderhub.extract import extract_windows

    spans = [(parse_time(a), parse_time(b)) for a, b in job["spans"]]
    shop = Shop(**job["shop"])
    mode = job.get("sync_mode", "live")
    result = extract_windows(shop, spans, run_id=run_id, entity=entity, sync_mode=mode, **kwargs)
    if entity != "orders" or not shop.delivery:
        return result
    # The shop's deliveries: of the same spans, and their own open windows.
    from orderhub.extract import extract_deliveries

    until = max(b for _, b in spans)
    spans += [(w["window_start"], w["window_end"])
              for w in open_windows(kwargs.get("database_url"), until=until, entity="deliveries")
              if (w["platform"], w["shop_id"]) == (shop.platform, shop.shop_id)]
    return result.add_deliveries(extract_deliveries(shop, spans, run_id=run_id, sync_mode=mode,
                                                    **kwargs))
