"""Raw landing: append-only tables, COPY, idempotent insert, ledger, quarantine.

One raw table per entity, ``raw.orders`` and ``raw.settlements``, with the
platform in every row and in the key, list-partitioned by platform: one
partition per registered platform (:mod:`orderhub.platforms`), made by
:func:`ensure_schema` when a platform is registered (docs/architecture.md says
why one table rather than one per platform). Every raw row keeps the untouched
payload (JSONB) and a SHA-256 of its canonical JSON text.
``(platform, shop_id, order_id, payload_sha256)`` is unique, so landing the
same order version twice adds nothing. Rows go in through
``COPY`` into a temporary table, then one ``INSERT ... ON CONFLICT DO
NOTHING`` - in the same transaction as the ledger row that describes the
window, so the ledger never claims rows that are not there (nor the reverse).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg

from orderhub.config import database_url

log = logging.getLogger(__name__)

# The raw tables: order versions, settlement lines (issue 5) and deliveries
# (issue 19). A settlement row's order_id is the order it pays out,
# modified_at its settle time; a delivery row's order_id is the shop order it
# carries, modified_at its last status time (the delivery service's answers).
ENTITIES = ("orders", "settlements", "deliveries")

SCHEMA_SQL = """
create schema if not exists raw;
create schema if not exists ops;

create table if not exists ops.extraction_windows (
    platform            text        not null,
    shop_id             text        not null,
    entity              text        not null,
    window_start        timestamptz not null,
    window_end          timestamptz not null,
    api_reported_count  integer,
    orders_received     integer     not null default 0,
    orders_landed       integer     not null default 0,
    rows_inserted       integer     not null default 0,
    rows_quarantined    integer     not null default 0,
    pages               integer     not null default 0,
    attempts            integer     not null default 0,
    outcome             text        not null check (outcome in ('ok', 'partial', 'failed')),
    first_outcome       text        not null,  -- as first landed: 'failed' then 'ok' = repaired
    last_error          text,
    run_id              text        not null,
    first_attempt_at    timestamptz not null default now(),
    last_attempt_at     timestamptz not null default now(),
    primary key (platform, shop_id, entity, window_start, window_end)
);
-- live (the hourly runs, their repairs) or backfill (a sync of a span of history)
alter table ops.extraction_windows add column if not exists sync_mode text not null default 'live';

create table if not exists ops.circuit_breakers (
    platform              text primary key,
    consecutive_failures  integer     not null default 0,
    opened_until          timestamptz,
    times_opened          integer     not null default 0,
    last_error            text
);
-- When the current outage began (the breaker's first opening since its last success).
alter table ops.circuit_breakers add column if not exists open_since timestamptz;

-- What OrderHub has learnt of each platform's clock (orderhub.extract.PlatformClock):
-- the offset its clients stamp requests with after a gateway refused our time.
create table if not exists ops.platform_clocks (
    platform        text primary key,
    offset_seconds  double precision not null,  -- gateway time minus ours
    learnt_at       timestamptz      not null default now(),
    times_learnt    integer          not null default 1
);

-- One row per API call: the platform SLA figures (marts.rpt_platform_sla).
create table if not exists ops.api_calls (
    platform         text          not null,
    shop_id          text          not null,
    endpoint         text          not null,
    called_at        timestamptz   not null,  -- on the platform's clock
    seconds          numeric(10,3) not null,
    outcome          text          not null,  -- ok, or the error kind
    error_code       text,
    backoff_seconds  numeric(10,3) not null default 0,
    run_id           text          not null,
    window_start     timestamptz,
    window_end       timestamptz
);
create index if not exists api_calls_called_idx on ops.api_calls (called_at);

-- The shops OrderHub extracts (from config/shops.yml), kept current by every
-- extraction: the source of marts.dim_shops.
create table if not exists ops.shops (
    platform        text        not null,
    shop_id         text        not null,
    shop_name       text,
    conn_id         text,
    first_seen_at   timestamptz not null default now(),
    last_seen_at    timestamptz not null default now(),
    primary key (platform, shop_id)
);

-- Reconciliation (issue 5). A person's resolution of a review item: appended,
-- never updated; the latest per order and category applies (fct_order_reconciliation).
create table if not exists ops.recon_overrides (
    override_id  bigint generated always as identity primary key,
    platform     text        not null,
    shop_id      text        not null,
    order_id     text        not null,
    category     text        not null,
    resolution   text        not null,
    reason       text        not null,
    resolved_by  text        not null,
    resolved_at  timestamptz not null default now()
);

-- One immutable record per reconciliation run: the rules in force, the
-- inputs and the result, each as counts and hashes (orderhub.reconciliation).
create table if not exists ops.recon_audit (
    audit_id      bigint generated always as identity primary key,
    run_id        text        not null,
    range_start   date        not null,
    range_end     date        not null,
    recorded_at   timestamptz not null default now(),
    rules_hash    text        not null,
    inputs        jsonb       not null,
    inputs_hash   text        not null,
    result        jsonb       not null,
    result_hash   text        not null
);
-- The audit trail is append-only in the database, not only in the docs:
-- a person's resolutions and the run records refuse UPDATE and DELETE.
create or replace function ops.refuse_change() returns trigger
    language plpgsql as $$
begin
    raise exception '% is append-only: its rows are never changed or deleted', TG_TABLE_NAME
        using hint = 'append a newer row instead (the latest applies)';
end $$;
drop trigger if exists recon_audit_immutable on ops.recon_audit;
drop function if exists ops.recon_audit_immutable();
drop trigger if exists append_only on ops.recon_audit;
create trigger append_only before update or delete or truncate on ops.recon_audit
    for each statement execute function ops.refuse_change();
drop trigger if exists append_only on ops.recon_overrides;
create trigger append_only before update or delete or truncate on ops.recon_overrides
    for each statement execute function ops.refuse_change();

-- Pushes the intake refused (issue 17): a signature that did not verify.
-- Counted here, never published; the platform got its error answer.
create table if not exists ops.push_rejections (
    platform     text        not null,
    reason       text        not null,
    body_sha256  text        not null,
    received_at  timestamptz not null default now()
);

-- The brand's warehouse on-hand (issue 18, orderhub.stock): one row per
-- merchant SKU per snapshot; a snapshot landed twice adds nothing.
create table if not exists raw.stock_on_hand (
    warehouse_id    text        not null,
    merchant_sku    text        not null,
    as_of           timestamptz not null,  -- the warehouse system's time of the count
    on_hand         integer     not null check (on_hand >= 0),
    payload         jsonb       not null,
    payload_sha256  text        not null,
    extracted_at    timestamptz not null default now(),
    run_id          text        not null,
    primary key (warehouse_id, merchant_sku, as_of)
);

-- What each shop lists (issue 18, orderhub.stock): every SKU with the quantity
-- the platform offered when its listing API was read (listed_at, on the
-- platform's clock). A snapshot read again at the same moment adds nothing.
create table if not exists raw.stock_listings (
    platform        text        not null,
    shop_id         text        not null,
    product_id      text        not null,
    sku_id          text        not null,
    outer_id        text        not null,
    quantity        integer     not null,
    title           text,
    listed_at       timestamptz not null,
    extracted_at    timestamptz not null default now(),
    run_id          text        not null,
    primary key (platform, shop_id, sku_id, listed_at)
);

-- Every stock call OrderHub makes or proposes (issue 18, orderhub.stock.sync):
-- written before it is sent, completed with the platform's answer.
create table if not exists ops.stock_updates (
    update_id       text        primary key,  -- also the platform's idempotency key, where it takes one
    run_id          text        not null,
    platform        text        not null,
    shop_id         text        not null,
    merchant_sku    text        not null,
    product_id      text        not null,
    sku_id          text        not null,
    offered         integer     not null,  -- what the channel offered when read
    allocation      integer     not null,  -- what it may offer (marts.stock_channel_allocations)
    mode            text        not null check (mode in ('increment', 'full')),
    sent_quantity   integer     not null,  -- the delta, or the quantity
    reason          text        not null,
    status          text        not null check (status in ('proposed', 'sending', 'ok',
                                                           'refused', 'unknown')),
    answer          text,
    created_at      timestamptz not null default now(),
    answered_at     timestamptz
);

create table if not exists ops.quarantine (
    quarantine_id   bigint generated always as identity primary key,
    platform        text        not null,
    shop_id         text        not null,
    entity          text        not null,
    window_start    timestamptz,
    window_end      timestamptz,
    raw_text        text        not null,
    raw_sha256      text        not null,
    reason          text        not null,
    run_id          text        not null,
    quarantined_at  timestamptz not null default now(),
    unique (platform, shop_id, entity, raw_sha256, reason)
);
"""

RAW_TABLE_SQL = """
create sequence if not exists raw.raw_id_seq;
create table if not exists raw.{entity} (
    raw_id          bigint      not null default nextval('raw.raw_id_seq'),
    platform        text        not null,
    shop_id         text        not null,
    order_id        text        not null,
    modified_at     timestamptz not null,
    payload         jsonb       not null,
    payload_sha256  text        not null,
    extracted_at    timestamptz not null default now(),
    run_id          text        not null,
    window_start    timestamptz,
    window_end      timestamptz,
    -- When the version was fetched, on the platform's clock (its Date header):
    -- sync latency = platform_fetched_at - modified_at, both on one clock.
    platform_fetched_at timestamptz,
    -- live: read by the hourly runs and their repairs; backfill: by a sync of
    -- a span of history (health and alerts keep the two apart)
    sync_mode       text        not null default 'live',
    primary key (platform, raw_id),
    unique (platform, shop_id, order_id, payload_sha256)
) partition by list (platform);
alter table raw.{entity} add column if not exists sync_mode text not null default 'live';
-- How the version arrived (issue 17): poll (the order search APIs) or push
-- (a platform message, then the detail API). The first to land a version keeps it.
alter table raw.{entity} add column if not exists intake text not null default 'poll';
create index if not exists {entity}_modified_idx on raw.{entity} (modified_at);
-- Incremental marts read what landed since their watermark.
create index if not exists {entity}_extracted_idx on raw.{entity} (extracted_at);
"""

PARTITION_SQL = ("create table if not exists raw.{entity}__{platform}"
                 " partition of raw.{entity} for values in ('{platform}')")

# What the registry says of each platform, for dim_platforms and the report.
PLATFORMS_SQL = """
create table if not exists ops.platforms (
    platform             text primary key,
    name_en              text,
    name_zh              text,
    order_api            text,
    money_unit           text,
    time_format          text,
    lists_unpaid_orders  boolean,
    has_settlements      boolean,
    colour               text,
    position             integer
);
-- When a sale takes units off the platform's listed quantity: created | paid (issue 18).
alter table ops.platforms add column if not exists stock_reduced_on text;
"""

# Columns a raw row carries besides the identity (the migration copies them).
RAW_COLUMNS = ("platform", "shop_id", "order_id", "modified_at", "payload", "payload_sha256",
               "extracted_at", "run_id", "window_start", "window_end", "platform_fetched_at")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


# The one definition of an open ledger window: not read in full, or fewer
# distinct orders landed than the platform reported (dbt's twin:
# stg_ops__extraction_windows.is_open). Repairs re-pull exactly these.
OPEN_WINDOW = "(outcome <> 'ok' or orders_landed < coalesce(api_reported_count, 0))"


def raw_table(entity: str = "orders") -> str:
    """The raw table of an entity, schema-qualified."""
    if entity not in ENTITIES:
        raise ValueError(f"no raw table for {entity!r}; entities: {ENTITIES}")
    return f"raw.{entity}"


def partition(platform: str, entity: str = "orders") -> str:
    """The raw partition holding one platform's rows of an entity."""
    if not _NAME.match(platform):
        raise ValueError(f"platform name {platform!r}: lowercase letters, digits and _ only")
    return f"{raw_table(entity)}__{platform}"


def relation_exists(conn: psycopg.Connection, relation: str) -> bool:
    """Whether a schema-qualified table or view exists (a mart may not be built yet)."""
    return conn.execute("select to_regclass(%s) is not null", (relation,)).fetchone()[0]


def connect(url: str | None = None) -> psycopg.Connection:
    return psycopg.connect(url or database_url())


def _registry_rows() -> list[tuple]:
    from orderhub.platforms import clients

    rows = []
    for name, cls in clients().items():
        if not _NAME.match(name):
            raise ValueError(f"platform name {name!r}: lowercase letters, digits and _ only")
        rows.append((name, cls.title or name, cls.title_zh or None, cls.order_endpoint or None,
                     cls.money_unit or None, cls.time_format or None, cls.lists_unpaid_orders,
                     cls.has_settlements(), cls.colour, cls.position,
                     cls.stock_reduced_on or None))
    return rows


def schema_version() -> str:
    """The DDL's fingerprint, registered platforms included: ensure_schema
    runs DDL only when it changed (a newly registered platform gets its
    partitions and its ops.platforms row on the next run)."""
    text = (SCHEMA_SQL + RAW_TABLE_SQL + PARTITION_SQL + PLATFORMS_SQL + BI_SQL
            + repr(_registry_rows()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _schema_current(conn: psycopg.Connection, version: str) -> bool:
    if conn.execute("select to_regclass('ops.schema_version')").fetchone()[0] is None:
        return False
    row = conn.execute("select version from ops.schema_version").fetchone()
    return row is not None and row[0] == version


# Every schema OrderHub writes: raw and ops (landing), seeds and the dbt layers.
WAREHOUSE_SCHEMAS = ("raw", "ops", "seeds", "staging", "intermediate", "marts")


# A warehouse marked as production (`orderhub db mark-production`, issue 20):
# a setting of the database itself, so it outlives every schema drop. The
# sandbox never writes to it, and nothing drops its schemas.
PRODUCTION_SETTING = "orderhub.production"


def is_production(conn: psycopg.Connection) -> bool:
    return conn.execute("select current_setting(%s, true)",
                        (PRODUCTION_SETTING,)).fetchone()[0] == "on"


def mark_production(on: bool, url: str | None = None) -> str:
    """Mark (or unmark) the warehouse's database as production; its name."""
    from psycopg import sql

    with psycopg.connect(url or database_url(), autocommit=True) as conn:
        name = conn.execute("select current_database()").fetchone()[0]
        conn.execute(sql.SQL("alter database {} set {} = {}").format(
            sql.Identifier(name), sql.SQL(PRODUCTION_SETTING),
            sql.Literal("on" if on else "off")))
    return name


def refuse_if_production(what: str, url: str | None = None) -> None:
    """A sandbox run, a demo or a reset stops here on a production warehouse."""
    from orderhub.config import UserError

    with psycopg.connect(url or database_url(), connect_timeout=5) as conn:
        if is_production(conn):
            name = conn.execute("select current_database()").fetchone()[0]
            raise UserError(f"the warehouse (database {name}) is marked as production:"
                            f" {what} is refused. Point ORDERHUB_DATABASE_URL at another"
                            f" database, or `orderhub db mark-production --undo` if this one"
                            f" is not production after all")


def drop_warehouse(url: str | None = None) -> None:
    """Drop every schema OrderHub writes, with all it holds (demo --fresh,
    test resets, benchmark setups). Other schemas are left alone. Never on a
    warehouse marked as production."""
    refuse_if_production("dropping its schemas", url)
    with psycopg.connect(url or database_url(), autocommit=True) as conn:
        for schema in WAREHOUSE_SCHEMAS:
            conn.execute(f"drop schema if exists {schema} cascade")


# The role BI tools connect as (issue 20): it reads the marts (whose buyer
# names, phones and addresses are masked or hashed) and nothing else: no raw
# payload, no staging, no ops table. `orderhub db url --bi` prints its URL.
# The default privileges make every relation dbt creates in marts readable by
# it, as dbt replaces tables and views build after build. Its sessions'
# time zone is Beijing's (the warehouse's stays UTC).
BI_ROLE = "orderhub_bi"
BI_SQL = f"""
do $$ begin
    if not exists (select from pg_roles where rolname = '{BI_ROLE}') then
        create role {BI_ROLE} login nosuperuser nocreatedb nocreaterole noinherit;
    end if;
exception when duplicate_object or unique_violation then null;  -- the server's roles:
    -- another database of it made this one at the same moment
end $$;
-- BI sessions on this database see times in Beijing time: created_at::date is
-- the business day. Per database (the role is the server's): two warehouses
-- of one server setting it at once never touch the same catalog row.
do $$ begin
    execute format('alter role {BI_ROLE} in database %I set timezone to %L',
                   current_database(), 'Asia/Shanghai');
exception when insufficient_privilege then
    raise notice 'set the time zone of {BI_ROLE} to Asia/Shanghai as its administrator';
end $$;
create schema if not exists marts;
grant usage on schema marts to {BI_ROLE};
grant select on all tables in schema marts to {BI_ROLE};
alter default privileges in schema marts grant select on tables to {BI_ROLE};
"""


def ensure_bi_role(conn: psycopg.Connection) -> bool:
    """The BI role and its grants, when this user may create roles (the
    embedded warehouse's superuser does; on another server an administrator
    runs BI_SQL once, docs/bi.md). Whether it is in place."""
    exists, may = conn.execute(
        "select exists (select from pg_roles where rolname = %s),"
        " (select rolsuper or rolcreaterole from pg_roles where rolname = current_user)",
        (BI_ROLE,)).fetchone()
    if not (exists or may):
        log.warning("no role %s, and this user may not create it: BI reads as whoever it"
                    " is given (docs/bi.md)", BI_ROLE)
        return False
    conn.execute(BI_SQL)
    return True


def ensure_schema(conn: psycopg.Connection) -> list[str]:
    """Create the raw and ops schemas and tables (idempotent, safe to race),
    a raw partition per registered platform, and migrate a warehouse whose
    raw tables are still one per platform (returns what it migrated).

    Every task calls it, so when the schema is current it only reads
    ops.schema_version: DDL such as ALTER TABLE takes exclusive locks, and run
    while another task is landing it would deadlock against that landing."""
    version = schema_version()
    current = _schema_current(conn, version)
    conn.commit()  # end the read, so the DDL below runs in a transaction of its own
    if current:
        return []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('orderhub.ensure_schema'))")
        if _schema_current(conn, version):  # another task upgraded it meanwhile
            return []
        conn.execute(SCHEMA_SQL)
        conn.execute(PLATFORMS_SQL)
        ensure_bi_role(conn)
        platforms = [row[0] for row in _registry_rows()]
        for entity in ENTITIES:
            conn.execute(RAW_TABLE_SQL.format(entity=entity))
            for platform in platforms:
                conn.execute(PARTITION_SQL.format(entity=entity, platform=platform))
        migrated = _migrate_per_platform_tables(conn)
        with conn.cursor() as cur:
            cur.executemany(
                "insert into ops.platforms (platform, name_en, name_zh, order_api, money_unit,"
                " time_format, lists_unpaid_orders, has_settlements, colour, position,"
                " stock_reduced_on) values (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                " on conflict (platform) do update set name_en = excluded.name_en,"
                " name_zh = excluded.name_zh, order_api = excluded.order_api,"
                " money_unit = excluded.money_unit, time_format = excluded.time_format,"
                " lists_unpaid_orders = excluded.lists_unpaid_orders,"
                " has_settlements = excluded.has_settlements, colour = excluded.colour,"
                " position = excluded.position, stock_reduced_on = excluded.stock_reduced_on",
                _registry_rows())
        conn.execute("create table if not exists ops.schema_version (version text not null)")
        conn.execute("delete from ops.schema_version")
        conn.execute("insert into ops.schema_version values (%s)", (version,))
    return migrated


def _migrate_per_platform_tables(conn: psycopg.Connection) -> list[str]:
    """Raw tables of the layout before issue 16 (``raw.<platform>_<entity>``):
    copy every row into the entity's table, in landing order, check the counts
    and drop the old table (its staging views go with it: dbt builds them
    again). Runs inside ensure_schema's transaction: all or nothing."""
    old = conn.execute(
        "select table_name from information_schema.tables where table_schema = 'raw'"
        " and table_type = 'BASE TABLE' and table_name ~ '^[a-z][a-z0-9_]*_(orders|settlements)$'"
        " and table_name !~ '__' order by 1").fetchall()
    done = []
    columns = ", ".join(RAW_COLUMNS)
    for (table,) in old:
        platform, entity = table.rsplit("_", 1)
        if not _NAME.match(platform):
            continue
        conn.execute(PARTITION_SQL.format(entity=entity, platform=platform))
        before = conn.execute(f"select count(*) from raw.{table}").fetchone()[0]  # noqa: S608 - raw's own tables
        copied = conn.execute(
            f"insert into raw.{entity} ({columns}) select {columns} from raw.{table}"  # noqa: S608
            " order by raw_id on conflict do nothing").rowcount
        if copied != before:
            raise RuntimeError(f"migrating raw.{table}: {copied} of {before} rows copied"
                               " (a version twice?); nothing was changed")
        conn.execute(f"drop table raw.{table} cascade")
        done.append(f"raw.{table} -> raw.{entity}: {copied} rows")
    return done


@dataclass
class RawRow:
    order_id: str
    modified_at: datetime
    payload_text: str  # canonical JSON
    payload_sha256: str


@dataclass
class Rejected:
    raw_text: str
    reason: str


@dataclass
class WindowLoad:
    """One window's worth of extraction, ready to land with its ledger row."""

    platform: str
    shop_id: str
    entity: str
    window_start: datetime
    window_end: datetime
    run_id: str
    rows: list[RawRow] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    api_reported_count: int | None = None
    pages: int = 0
    attempts: int = 0
    outcome: str = "ok"
    last_error: str | None = None
    fetched_at: datetime | None = None  # on the platform's clock
    sync_mode: str = "live"  # or "backfill": a sync of a span of history
    intake: str = "poll"  # or "push": fetched because a push message named the order
    calls: list = field(default_factory=list)  # platforms.base.ApiCall, for ops.api_calls
    # Whose API the calls went to, when not the shop's platform's: a delivery
    # service's (ops.api_calls, so its SLA figures are its own).
    api_owner: str | None = None

    def items_landed(self) -> int:
        """Distinct orders in the window's rows - or, for settlements,
        distinct lines (an order can have several): what the platform's total counts."""
        if self.entity == "settlements":
            return len({(row.order_id, row.payload_sha256) for row in self.rows})
        return len({row.order_id for row in self.rows})


def register_shop(conn: psycopg.Connection, platform: str, shop_id: str, *, name: str = "",
                  conn_id: str = "", refresh: bool = True) -> None:
    """Record a shop in ops.shops; ``refresh`` (an extraction, from the shops
    config) also updates its name and connection - a replay does not."""
    insert = "insert into ops.shops (platform, shop_id, shop_name, conn_id) values (%s, %s, %s, %s)"
    if refresh:
        insert += (" on conflict (platform, shop_id) do update set shop_name = excluded.shop_name,"
                   " conn_id = excluded.conn_id, last_seen_at = now()")
    else:
        insert += " on conflict (platform, shop_id) do nothing"
    conn.execute(insert, (platform, shop_id, name or None, conn_id or None))
    conn.commit()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fault_pause() -> None:
    """Fault injection for the crash test: hold the landing transaction open
    (rows inserted, not committed) so a test can SIGKILL the loader there."""
    pause = os.environ.get("ORDERHUB_FAULT_PAUSE_BEFORE_COMMIT")
    if pause:
        marker = os.environ.get("ORDERHUB_FAULT_PAUSE_MARKER")
        if marker:
            Path(marker).touch()
        time.sleep(float(pause))


def resolve_split(conn: psycopg.Connection, load: WindowLoad, reported: int, landed: int,
                  error: str | None) -> None:
    """A window read as smaller windows: if the ledger has a row for the
    window itself (an open window being repaired), it takes its parts'
    outcome - ok when every part was read, so it is no longer open."""
    with conn.transaction():
        conn.execute(
            """
            update ops.extraction_windows set
                api_reported_count = %s, orders_landed = %s, rows_inserted = 0,
                outcome = %s, last_error = %s, run_id = %s, last_attempt_at = now()
            where platform = %s and shop_id = %s and entity = %s
              and window_start = %s and window_end = %s
            """,
            (reported, landed, "failed" if error else "ok",
             f"split: {error}"[:1000] if error else None, load.run_id, load.platform,
             load.shop_id, load.entity, load.window_start, load.window_end))


def land(conn: psycopg.Connection, load: WindowLoad, *, ledger: bool = True) -> int:
    """Land one window in one transaction; returns the number of new raw rows.
    ``ledger=False`` for replayed files: they describe no API window."""
    table = raw_table(load.entity)
    with conn.transaction():
        inserted = 0
        if load.rows:
            conn.execute(
                "create temporary table if not exists landing_batch ("
                " order_id text, modified_at timestamptz, payload text, payload_sha256 text"
                ") on commit delete rows"
            )
            with conn.cursor() as cur:
                with cur.copy("copy landing_batch (order_id, modified_at, payload, payload_sha256)"
                              " from stdin") as copy:
                    for row in load.rows:
                        copy.write_row((row.order_id, row.modified_at, row.payload_text,
                                        row.payload_sha256))
                cur.execute(
                    f"insert into {table} (platform, shop_id, order_id, modified_at, payload,"  # noqa: S608 - table name from a fixed list
                    " payload_sha256, run_id, window_start, window_end, platform_fetched_at,"
                    " sync_mode, intake)"
                    " select distinct on (order_id, payload_sha256) %s, %s, order_id, modified_at,"
                    " payload::jsonb, payload_sha256, %s, %s, %s, %s, %s, %s from landing_batch"
                    " order by order_id, payload_sha256"
                    " on conflict (platform, shop_id, order_id, payload_sha256) do nothing",
                    (load.platform, load.shop_id, load.run_id, load.window_start, load.window_end,
                     load.fetched_at, load.sync_mode, load.intake),
                )
                inserted = cur.rowcount
        for bad in load.rejected:
            conn.execute(
                "insert into ops.quarantine (platform, shop_id, entity, window_start, window_end,"
                " raw_text, raw_sha256, reason, run_id) values (%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                " on conflict (platform, shop_id, entity, raw_sha256, reason) do nothing",
                (load.platform, load.shop_id, load.entity, load.window_start, load.window_end,
                 bad.raw_text, sha256(bad.raw_text), bad.reason, load.run_id),
            )
        if load.calls:
            with conn.cursor() as cur:
                cur.executemany(
                    "insert into ops.api_calls (platform, shop_id, endpoint, called_at, seconds,"
                    " outcome, error_code, backoff_seconds, run_id, window_start, window_end)"
                    " values (%s, %s, %s, to_timestamp(%s), %s, %s, %s, %s, %s, %s, %s)",
                    [(load.api_owner or load.platform, load.shop_id, c.endpoint, c.called_at,
                      round(c.seconds, 3),
                      c.outcome, c.error_code, round(c.backoff_seconds, 3), load.run_id,
                      load.window_start, load.window_end) for c in load.calls])
        distinct_orders = load.items_landed()
        _fault_pause()
        if not ledger:
            return inserted
        conn.execute(
            """
            insert into ops.extraction_windows as w (platform, shop_id, entity, window_start,
                window_end, api_reported_count, orders_received, orders_landed, rows_inserted,
                rows_quarantined, pages, attempts, outcome, first_outcome, last_error, run_id,
                sync_mode)
            values (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)
            on conflict (platform, shop_id, entity, window_start, window_end) do update set
                api_reported_count = excluded.api_reported_count,
                orders_received = excluded.orders_received,
                orders_landed = excluded.orders_landed,
                rows_inserted = excluded.rows_inserted,
                rows_quarantined = excluded.rows_quarantined,
                pages = excluded.pages,
                attempts = w.attempts + excluded.attempts,
                outcome = excluded.outcome,
                last_error = excluded.last_error,
                run_id = excluded.run_id,
                last_attempt_at = now()
            """,
            (load.platform, load.shop_id, load.entity, load.window_start, load.window_end,
             load.api_reported_count, len(load.rows) + len(load.rejected), distinct_orders,
             inserted, len(load.rejected), load.pages, load.attempts, load.outcome,
             load.outcome, load.last_error, load.run_id, load.sync_mode),
        )
    refresh_statistics(conn, partition(load.platform, load.entity), inserted)
    return inserted


ANALYZE_AFTER_ROWS = 10_000


def refresh_statistics(conn: psycopg.Connection, relation: str, inserted: int) -> None:
    """ANALYZE a raw partition (``relation``) after a landing that
    grew it by a tenth or more (at least ANALYZE_AFTER_ROWS rows), as a bulk
    loader does. The dbt build right after reads those rows: planned on
    statistics from before (autovacuum's analyze comes later), a day of
    100,000 settlement lines in a partition thought empty took a nested loop
    of 100,000 x 100,000 comparisons (6 minutes instead of 1 second)."""
    if inserted < ANALYZE_AFTER_ROWS:
        return
    with conn.transaction():
        tuples = conn.execute("select reltuples from pg_class where oid = to_regclass(%s)",
                              (relation,)).fetchone()
        if tuples is not None and (tuples[0] < 0 or inserted >= 0.1 * tuples[0]):
            conn.execute(f"analyze {relation}")  # a checked name: partition()
