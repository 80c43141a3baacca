"""``orderhub replay``: land saved API responses through the normal loader.

A file holds the exact JSON a gateway returned for one of the platform's
order APIs: the search the poll uses, the plain list API, the increment API or
the detail API (``order_responses`` on each client; a list of orders or one
order). It is read by the same platform client that reads live answers
(envelope, errors, Decimal money), turned into raw rows by the same code, and
landed by the same idempotent loader - so recorded or exported data is
standardized offline exactly as live data is.

Every file is validated before anything is written for it, and judged on its
own: it lands, or it is refused with the reason (unreadable, not JSON, not an
order answer of that platform, the platform's error answer with its code and
message), and the next file is read either way. The shop is registered only
when a file lands, and never renamed. Replays write no ledger rows: a file is
not an API window, and the repair DAG must not try to "complete" it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orderhub.extract import to_rows
from orderhub.landing import WindowLoad, connect, ensure_schema, land, register_shop, sha256
from orderhub.platforms import Credentials, PlatformError, client_for


@dataclass
class ReplayResult:
    file: str
    landed: bool
    orders: int = 0
    inserted: int = 0
    quarantined: int = 0
    reason: str = ""  # why it was refused

    def line(self) -> str:
        if not self.landed:
            return f"{self.file}: refused: {self.reason}"
        return (f"{self.file}: landed {self.orders} orders, {self.inserted} new raw rows,"
                f" {self.quarantined} quarantined")


def read_orders(client, path: Path) -> list[dict]:
    """The orders of a saved answer, or PlatformError/OSError/ValueError saying why not."""
    text = path.read_text(encoding="utf-8")
    return client.parse_order_response(text), text


def replay(platform: str, shop_id: str, files: list[Path], *, kind: str = "orders",
           url: str | None = None) -> list[ReplayResult]:
    if kind != "orders":
        raise ValueError(f"replay knows orders only (not {kind!r}) for now")
    # No gateway is called: the client only reads envelopes here.
    client = client_for(platform, Credentials("replay://", "", "", ""))
    results = []
    with connect(url) as conn:
        ensure_schema(conn)
        for path in map(Path, files):
            try:
                orders, text = read_orders(client, path)
            except OSError as exc:
                results.append(ReplayResult(str(path), False,
                                            reason=f"cannot read it ({exc.strerror})"))
                continue
            except UnicodeDecodeError:
                results.append(ReplayResult(str(path), False, reason="not UTF-8 text"))
                continue
            except PlatformError as error:
                reason = (error.message if error.kind == "malformed" else
                          f"it is {platform}'s error answer: code {error.code}, {error.message}")
                results.append(ReplayResult(str(path), False, reason=reason))
                continue
            rows, rejected = to_rows(client, orders)
            register_shop(conn, platform, shop_id, refresh=False)
            stamps = [r.modified_at for r in rows]
            load = WindowLoad(platform, shop_id, kind, min(stamps, default=None),
                              max(stamps, default=None), f"replay__{sha256(text)[:16]}",
                              rows=rows, rejected=rejected)
            inserted = land(conn, load, ledger=False)
            results.append(ReplayResult(str(path), True, len(rows), inserted, len(rejected)))
    return results
