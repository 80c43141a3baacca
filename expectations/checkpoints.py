"""Run a suite as a GX checkpoint against the warehouse, and judge it."""

from __future__ import annotations

from dataclasses import dataclass, field

import great_expectations as gx
from great_expectations.data_context.types.base import ProgressBarsConfig

from expectations.suites import CHECKS
from orderhub.config import database_url


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
            lines.append(f"  [{f['severity']}] {f['expectation']} {f['kwargs']}: {f['observed']}"
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


def run_check(name: str, url: str | None = None) -> CheckOutcome:
    schema, table, suite_factory = CHECKS[name]
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # quiet task logs
    source = context.data_sources.add_postgres("warehouse",
                                               connection_string=_sqlalchemy_url(url or database_url()))
    asset = source.add_table_asset(name=table, table_name=table, schema_name=schema)
    batch = asset.add_batch_definition_whole_table("whole_table")
    suite = context.suites.add(suite_factory())
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{name}_validation", data=batch, suite=suite))
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(name=f"{name}_checkpoint", validation_definitions=[validation],
                      # COMPLETE: failures carry the offending rows (we keep a few).
                      result_format={"result_format": "COMPLETE"}))
    result = checkpoint.run()
    failures, evaluated = [], 0
    for run_result in result.run_results.values():
        for r in run_result.results:
            evaluated += 1
            if not r.success:
                config = r.expectation_config
                failures.append({
                    "expectation": config.type,
                    "kwargs": {k: v for k, v in config.kwargs.items() if k != "batch_id"},
                    "severity": str(getattr(config, "severity", "critical").value
                                    if hasattr(getattr(config, "severity", None), "value")
                                    else getattr(config, "severity", "critical")),
                    "observed": r.result.get("observed_value", r.result.get("unexpected_count")),
                    "examples": _examples(r.result),
                })
    success = not any(f["severity"] == "critical" for f in failures)
    return CheckOutcome(name, success, evaluated, failures)
