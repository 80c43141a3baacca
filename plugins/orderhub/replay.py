"""``orderhub replay``: land saved API responses through the normal loader.

A file holds the exact JSON a gateway returned for an order search (one page).
It is read by the same platform client that reads live answers (envelope,
errors, Decimal money), turned into raw rows by the same code, and landed by
the same idempotent loader - so recorded or exported data is standardized
offline exactly as live data is. Replays write no ledger rows: a file is not
an API window, and the repair DAG must not try to "complete" it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orderhub.extract import to_rows
from orderhub.landing import WindowLoad, connect, ensure_schema, land, register_shop, sha256
from orderhub.platforms import Credentials, client_for


@dataclass
class ReplayResult:
    file: str
    orders: int
    inserted: int
    quarantined: int


def replay(platform: str, shop_id: str, files: list[Path], *, kind: str = "orders",
           url: str | None = None) -> list[ReplayResult]:
    if kind != "orders":
        raise ValueError(f"replay knows orders only (not {kind!r}) for now")
    # No gateway is called: the client only reads envelopes here.
    client = client_for(platform, Credentials("replay://", "", "", ""))
    results = []
    with connect(url) as conn:
        ensure_schema(conn)
        register_shop(conn, platform, shop_id, name="replayed responses")
        for path in files:
            text = Path(path).read_text(encoding="utf-8")
            page = client.parse_order_search(text)
            rows, rejected = to_rows(client, page.orders)
            stamps = [r.modified_at for r in rows]
            load = WindowLoad(platform, shop_id, kind, min(stamps, default=None),
                              max(stamps, default=None), f"replay__{sha256(text)[:16]}",
                              rows=rows, rejected=rejected)
            inserted = land(conn, load, ledger=False)
            results.append(ReplayResult(str(path), len(rows), inserted, len(rejected)))
    return results
