"""Run a checkpoint against the warehouse, keep its results, and judge it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import great_expectations as gx
import psycopg
from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.data_context.types.base import ProgressBarsConfig
from psycopg.types.json import Jsonb

from expectations.data_docs import make_offline
from expectations.suites import Interval, Validation, checks
from orderhub.config import database_url, home


@dataclass
class CheckOutcome:
    name: str
    success: bool  # no critical expectation failed
    evaluated: int
    failures: list[dict] = field(default_factory=list)  # every failed expectation

    @property
    def critical_failures(self) -> list[dict]:
        return [f for f in self.failures if f["severity"] == "critical"]

    def summary(self) -> str:
        lines = [f"checkpoint {self.name}: {self.evaluated} expectations, "
                 f"{len(self.failures)} failed ({len(self.critical_failures)} critical)"]
        for f in self.failures:
            what = f.get("description") or f"{f['expectation']} {f['kwargs']}"
            lines.append(f"  [{f['severity']}] {f.get('suite', '')}: {what}: {f['observed']}"
                         + (f" e.g. {f['examples']}" if f.get("examples") else ""))
        return "\n".join(lines)


def _sqlalchemy_url(url: str) -> str:
    # GX talks to Postgres through SQLAlchemy (psycopg2 driver).
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _examples(result: dict, limit: int = 5) -> list:
    """A few offending values or rows, as GX reports them, JSON-friendly."""
    rows = (result.get("details") or {}).get("unexpected_rows") or result.get("partial_unexpected_list")
    return [{k: str(v) for k, v in row.items()} if isinstance(row, dict) else str(row)
            for row in list(rows or [])[:limit]]


RESULTS_SQL = """
create schema if not exists ops;
create table if not exists ops.validation_results (
    result_id       bigint generated always as identity primary key,
    run_id          text        not null,
    checkpoint      text        not null,
    suite           text        not null,
    table_name      text        not null,
    expectation     text        not null,
    description     text,
    severity        text        not null,
    success         boolean     not null,
    observed        text,
    unexpected      jsonb,       -- a few offending rows or values
    interval_start  timestamptz,
    interval_end    timestamptz,
    validated_at    timestamptz not null default now()
);
create index if not exists validation_results_run_idx on ops.validation_results (run_id);
"""


def gx_home() -> Path:
    """The file-backed GX project: suites, results and Data Docs
    (``.orderhub/gx/gx/uncommitted/data_docs/local_site/index.html``)."""
    return home() / "gx"


def data_docs_index() -> Path:
    return gx_home() / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def _forget(name: str) -> None:
    """Drop what earlier runs stored of a checkpoint (its definition and its
    validation definitions): it is rebuilt from code on every run, and a stored
    one can name tables that no longer exist (the raw tables of one platform
    each, before issue 16), which GX fails to load. Results and Data Docs stay."""
    root = gx_home() / "gx"
    (root / "checkpoints" / f"{name}.json").unlink(missing_ok=True)
    for stored in (root / "validation_definitions").glob(f"{name}:*.json"):
        stored.unlink()


def _whole_table(asset):
    try:
        return asset.get_batch_definition("whole_table")
    except (KeyError, LookupError, ValueError):
        return asset.add_batch_definition_whole_table("whole_table")


def _batch(source, validation: Validation, interval: Interval):
    """The table's batch, or - for a validation scoped to the interval - the
    batch of a query asset of the interval's rows, its query replaced each
    run. The table's batch is always there, so validation definitions that
    earlier runs stored still resolve."""
    name = f"{validation.schema}.{validation.table}"
    try:
        table = source.get_asset(name)
    except LookupError:
        table = source.add_table_asset(name=name, table_name=validation.table,
                                       schema_name=validation.schema)
    batch = _whole_table(table)
    if validation.scope is None:
        return batch
    try:
        source.delete_asset(f"{name} (interval)")
    except LookupError:
        pass
    return _whole_table(source.add_query_asset(name=f"{name} (interval)",
                                               query=validation.batch_query(interval)))


def run_check(name: str, url: str | None = None, interval: Interval | None = None,
              run_id: str | None = None) -> CheckOutcome:
    """Run one checkpoint, keep every expectation's result in
    ops.validation_results and refresh the GX Data Docs (offline ones)."""
    url = url or database_url()
    interval = interval or Interval()
    run_id = run_id or f"manual__{datetime.now(UTC).isoformat()}"
    _forget(name)
    context = gx.get_context(mode="file", project_root_dir=str(gx_home()))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # quiet task logs
    source = context.data_sources.add_or_update_postgres(
        "warehouse", connection_string=_sqlalchemy_url(url))
    validations = []
    for validation in checks()[name]:
        batch = _batch(source, validation, interval)
        suite = context.suites.add_or_update(validation.suite(interval))
        validations.append(context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=f"{name}:{validation.schema}.{validation.table}",
                                    data=batch, suite=suite)))
    checkpoint = context.checkpoints.add_or_update(gx.Checkpoint(
        name=name, validation_definitions=validations,
        actions=[UpdateDataDocsAction(name="update_data_docs")],
        # COMPLETE: failures carry the offending rows (we keep a few).
        result_format={"result_format": "COMPLETE"}))
    started = time.time()
    result = checkpoint.run()
    # the pages this run wrote load their styles and scripts from the site itself
    # (a second's slack: file times come from a coarser clock)
    make_offline(data_docs_index().parent, since=started - 1)
    failures, rows = [], []
    for run_result in result.run_results.values():
        suite_name = run_result.suite_name
        table = run_result.asset_name if hasattr(run_result, "asset_name") else ""
        for r in run_result.results:
            config = r.expectation_config
            severity = getattr(config, "severity", None)
            severity = str(getattr(severity, "value", severity) or "critical")
            record = {
                "expectation": config.type,
                # What the expectation checks, in words (column expectations: type and column).
                "description": getattr(config, "description", None) or " ".join(
                    [config.type] + [f"{k}={v}" for k, v in config.kwargs.items()
                                     if k in ("column", "column_list", "value_set")]),
                "kwargs": {k: v for k, v in config.kwargs.items() if k != "batch_id"},
                "severity": severity,
                "observed": r.result.get("observed_value", r.result.get("unexpected_count")),
                "examples": _examples(r.result),
                "suite": suite_name,
            }
            rows.append((run_id, name, suite_name, table or "", config.type, record["description"],
                         severity, bool(r.success), None if record["observed"] is None
                         else str(record["observed"]), Jsonb(record["examples"]),
                         interval.start, interval.end))
            if not r.success:
                failures.append(record)
    with psycopg.connect(url) as conn:
        conn.execute(RESULTS_SQL)
        with conn.cursor() as cur:
            cur.executemany(
                "insert into ops.validation_results (run_id, checkpoint, suite, table_name,"
                " expectation, description, severity, success, observed, unexpected,"
                " interval_start, interval_end) values (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", rows)
    success = not any(f["severity"] == "critical" for f in failures)
    return CheckOutcome(name, success, len(rows), failures)
