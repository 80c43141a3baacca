"""Comparing the warehouse with the sandbox's truth (shared by the tests)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import psycopg

from orderhub.config import parse_time
from orderhub.landing import drop_warehouse
from orderhub_tools.sandbox.world import STANDARD_COLUMNS

STANDARD = STANDARD_COLUMNS


def cli_truth(seed: int, scale: float, start, end, out: Path, shops_file: Path | None = None,
              env: dict | None = None) -> list[dict]:
    """The truth through the CLI, exactly as a user asks for it, parsed back."""
    cmd = [sys.executable, "-m", "orderhub_tools.cli", "sandbox", "truth", "--seed", str(seed),
           "--scale", str(scale), "--start", start.isoformat(), "--end", end.isoformat(),
           "--out", str(out)]
    if shops_file is not None:
        env = {**(env if env is not None else os.environ), "ORDERHUB_SHOPS_FILE": str(shops_file)}
    subprocess.run(cmd, check=True, env=env)
    return [normalise(json.loads(line)) for line in out.read_text().splitlines()]


def normalise(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if key.endswith("_at") and value is not None:
            value = parse_time(value)
        elif key.endswith(("_amount", "_fee")):
            value = Decimal(value)
        out[key] = value
    return out


def fct_orders(url: str) -> list[dict]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(f"select {', '.join(STANDARD)} from marts.fct_orders"
                           " order by platform, shop_id, order_id")
        return [dict(zip(STANDARD, row, strict=True)) for row in cur.fetchall()]


def differences(actual_rows: list[dict], expected_rows: list[dict]) -> dict:
    """Missing, unexpected, duplicated orders and column differences."""
    def key(r):
        return (r["platform"], r["shop_id"], r["order_id"])

    actual = {key(r): r for r in actual_rows}
    expected = {key(r): r for r in expected_rows}
    return {
        "missing": sorted(set(expected) - set(actual)),
        "unexpected": sorted(set(actual) - set(expected)),
        "duplicated": len(actual_rows) - len(actual),
        "columns": [(k, c, actual[k][c], expected[k][c]) for k in sorted(set(actual) & set(expected))
                    for c in STANDARD if actual[k][c] != expected[k][c]],
    }


def mart_digest(url: str, table: str, exclude: tuple[str, ...] = ()) -> str:
    """SHA-256 of a mart's rows (sorted), leaving out ``exclude`` columns.
    ``table`` is in marts unless it names its schema."""
    relation = table if "." in table else f"marts.{table}"
    with psycopg.connect(url) as conn:
        row = "t::text" if not exclude else f"(to_jsonb(t) - array{list(exclude)}::text[])::text"
        rows = conn.execute(f"select {row} from {relation} t order by 1").fetchall()
    return hashlib.sha256("\n".join(r[0] for r in rows).encode()).hexdigest()


def raw_counts(url: str) -> dict:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("select platform, count(*) from raw.orders group by 1"
                                 " order by 1").fetchall())


def reset(url: str) -> None:
    drop_warehouse(url)
