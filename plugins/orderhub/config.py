"""Configuration, read from one place.

* ``ORDERHUB_DATABASE_URL`` - the warehouse. Unset: the embedded PostgreSQL
  under ``.orderhub/`` (see :mod:`orderhub.warehouse`).
* ``ORDERHUB_HOME`` - where local state lives (default ``<repo>/.orderhub``).
* ``ORDERHUB_SHOPS_FILE`` - the shops config (default ``<repo>/config/shops.yml``).
* ``ORDERHUB_PII_SALT`` - salt for hashing buyer personal data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


class UserError(ValueError):
    """Something the user gave is wrong (an argument, a config file, a file to
    replay) or a precondition does not hold (the warehouse is unreachable).
    The message says what and what to do; the CLI prints it without a
    traceback and exits non-zero. Programming errors stay exceptions."""
PLATFORM_TZ = ZoneInfo("Asia/Shanghai")  # every platform here speaks Beijing time


def home() -> Path:
    path = Path(os.environ.get("ORDERHUB_HOME", REPO_ROOT / ".orderhub"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def dbt_project_dir() -> Path:
    return REPO_ROOT / "dbt_project"


def database_url() -> str:
    """The warehouse URL: ``ORDERHUB_DATABASE_URL`` or the embedded server."""
    url = os.environ.get("ORDERHUB_DATABASE_URL")
    if url:
        return url
    from orderhub import warehouse

    return warehouse.embedded_url()


def pii_salt() -> str:
    """The salt for hashing buyer personal data: ``ORDERHUB_PII_SALT`` (set it in
    production, and keep it: changing it changes every buyer hash), else a
    random salt made once for this checkout in ``.orderhub/pii_salt``."""
    salt = os.environ.get("ORDERHUB_PII_SALT")
    if salt:
        return salt
    path = home() / "pii_salt"
    if not path.exists():
        import secrets

        path.write_text(secrets.token_hex(16))
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass(frozen=True)
class Shop:
    platform: str
    shop_id: str
    conn_id: str
    name: str = ""
    faults: str = ""  # the sandbox's fault profile for this shop (chaos tests); "" in production
    # Who delivers the shop's own orders (issue 19): a delivery service
    # (orderhub.delivery, e.g. sf_same_city) and its Airflow connection.
    delivery: str = ""
    delivery_conn_id: str = ""


def shops_file() -> Path:
    return Path(os.environ.get("ORDERHUB_SHOPS_FILE", REPO_ROOT / "config" / "shops.yml"))


def worlds_dir() -> Path:
    """The sandbox's other worlds: a shops file each (``config/worlds/<name>.yml``)."""
    return REPO_ROOT / "config" / "worlds"


def sandbox_world(path: Path | None = None) -> str:
    """Which sandbox world a shops file's shops live in (its top-level
    ``world:``; default "brand"): what the sandbox generates for them. A
    production shops file needs none."""
    path = path or shops_file()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return "brand"  # load_shops says what is wrong with the file
    return str(data.get("world") or "brand") if isinstance(data, dict) else "brand"


def load_shops(path: Path | None = None) -> list[Shop]:
    """The configured shops. Unknown platforms (not in the registry,
    :mod:`orderhub.platforms`) are an error, not a skip; so is a file that is
    missing, not YAML, or whose shops lack a platform, shop_id or conn_id
    (:class:`UserError`, naming the file and the shop)."""
    from orderhub.platforms import names

    path = path or shops_file()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise UserError(f"shops file {path} does not exist (ORDERHUB_SHOPS_FILE)") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where else ""
        raise UserError(f"shops file {path}{line}: not valid YAML"
                        f" ({getattr(exc, 'problem', None) or exc})") from None
    rows = data.get("shops") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise UserError(f"shops file {path}: expected a list under 'shops:'")
    shops = []
    for n, row in enumerate(rows, 1):
        missing = [key for key in ("platform", "shop_id", "conn_id")
                   if not isinstance(row, dict) or not row.get(key)]
        if missing:
            raise UserError(f"shops file {path}: shop #{n} lacks {', '.join(missing)}"
                            " (each shop needs platform, shop_id and conn_id)")
        shop = Shop(platform=str(row["platform"]), shop_id=str(row["shop_id"]),
                    conn_id=str(row["conn_id"]), name=row.get("name", ""),
                    faults=row.get("faults", ""), delivery=str(row.get("delivery") or ""),
                    delivery_conn_id=str(row.get("delivery_conn_id") or ""))
        if shop.platform not in names():
            raise UserError(f"shops file {path}: shop {shop.shop_id}: unknown platform"
                            f" {shop.platform!r} (known: {', '.join(names())})")
        if shop.delivery:
            from orderhub.delivery import services

            if shop.delivery not in services():
                raise UserError(f"shops file {path}: shop {shop.shop_id}: unknown delivery"
                                f" service {shop.delivery!r} (known: {', '.join(services())})")
            if not shop.delivery_conn_id:
                raise UserError(f"shops file {path}: shop {shop.shop_id}: delivery"
                                f" {shop.delivery} needs a delivery_conn_id")
        shops.append(shop)
    keys = [(s.platform, s.shop_id) for s in shops]
    if len(keys) != len(set(keys)):
        raise UserError(f"shops file {path}: a (platform, shop_id) appears twice")
    return shops


def parse_time(text: str) -> datetime:
    """ISO 8601; without an offset the time means Asia/Shanghai."""
    try:
        value = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise UserError(f"{text!r} is not a time: ISO 8601, such as 2026-11-11T09:00"
                        " (Beijing time) or 2026-11-11T09:00+08:00") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=PLATFORM_TZ)
    return value


def time_range(start: str, end: str, *, allow_empty: bool = False) -> tuple[datetime, datetime]:
    """``--start``/``--end`` as times, checked before any work: start before end."""
    a, b = parse_time(start), parse_time(end)
    if b < a or (b == a and not allow_empty):
        raise UserError(f"--end ({end}) must be after --start ({start})")
    return a, b


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


@dataclass(frozen=True)
class ExtractionSettings:
    """How far behind the platform clock a window must end, and how far back
    each run re-reads. Defaults follow PDD's documented 3-minute rule."""

    safety_lag: timedelta = timedelta(minutes=3)
    lookback: timedelta = timedelta(0)

    @classmethod
    def from_env(cls) -> ExtractionSettings:
        return cls(
            safety_lag=timedelta(seconds=int(os.environ.get("ORDERHUB_SAFETY_LAG_SECONDS", 180))),
            lookback=timedelta(seconds=int(os.environ.get("ORDERHUB_LOOKBACK_SECONDS", 0))),
        )
