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


def shops_file() -> Path:
    return Path(os.environ.get("ORDERHUB_SHOPS_FILE", REPO_ROOT / "config" / "shops.yml"))


def load_shops(path: Path | None = None) -> list[Shop]:
    """The configured shops. Unknown platforms (not in the registry,
    :mod:`orderhub.platforms`) are an error, not a skip."""
    from orderhub.platforms import names
    data = yaml.safe_load((path or shops_file()).read_text(encoding="utf-8")) or {}
    shops = []
    for row in data.get("shops", []):
        shop = Shop(
            platform=row["platform"],
            shop_id=str(row["shop_id"]),
            conn_id=row["conn_id"],
            name=row.get("name", ""),
            faults=row.get("faults", ""),
        )
        if shop.platform not in names():
            raise ValueError(f"shop {shop.shop_id}: unknown platform {shop.platform!r}"
                             f" (known: {', '.join(names())})")
        shops.append(shop)
    keys = [(s.platform, s.shop_id) for s in shops]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate (platform, shop_id) in {path or shops_file()}")
    return shops


def parse_time(text: str) -> datetime:
    """ISO 8601; without an offset the time means Asia/Shanghai."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=PLATFORM_TZ)
    return value


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
