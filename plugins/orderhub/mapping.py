"""``orderhub mapping check``: how well the mapping seeds cover what landed.

Reads the seeds (``dbt_project/seeds``: the one source of truth, as files,
so the report is right even before ``dbt seed``) and the latest version of
every order in ``raw``, and reports:

* every raw status pair the status rows do not map, with the number of orders
  carrying it and a seed row to paste;
* every required field (``required`` in the field rows) that payloads lack;
* every payload field the field rows do not read, with the number of orders
  carrying it and a suggested row;
* every registered platform without field rows, and every platform with
  rows that is not registered (the registry and the seed must agree).

The mapping lives in one seed, ``seeds/platform_mapping.csv`` (``kind`` field
or status); ``platform_field_map`` and ``platform_status_map`` are its two
halves, as dbt's views of the same names show them.

Exit status 1 when a status is unmapped or a required field is missing (the
same conditions that fail ``dbt build``); uncovered fields are information.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import psycopg

from orderhub.config import dbt_project_dir
from orderhub.landing import partition, relation_exists
from orderhub.platforms import client_class, names

SEEDS = dbt_project_dir() / "seeds"
# The one definition, in Python, of an order whose status pair the mapping
# lacks, in the marts (alerts, GX; dbt's twin: macros/fail_on_unmapped_statuses.sql).
UNMAPPED_STATUS = "(order_status_code is null or refund_status_code is null)"
MAPPING = "platform_mapping"
MAPPING_COLUMNS = ("platform", "kind", "entity", "standard_field", "source_path", "unit",
                   "aggregate", "default_value", "required", "raw_order_status",
                   "raw_refund_status", "order_status_code", "refund_status_code", "note")
# The mapping seed's two halves, as dbt's views (models/mapping) show them.
HALVES = {
    "platform_field_map": ("field", ("platform", "entity", "standard_field", "source_path", "unit",
                                     "aggregate", "default_value", "required", "note")),
    "platform_status_map": ("status", ("platform", "raw_order_status", "raw_refund_status",
                                       "order_status_code", "refund_status_code", "note")),
}


def read_seed(name: str, seeds: Path = SEEDS) -> list[dict[str, str]]:
    """A seed's rows, from its file (right even before ``dbt seed``);
    ``platform_field_map`` and ``platform_status_map`` are the mapping seed's halves."""
    if name in HALVES:
        kind, columns = HALVES[name]
        return [{c: row[c] for c in columns} for row in read_seed(MAPPING, seeds)
                if row["kind"] == kind]
    with (seeds / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@cache
def decode_fields(platform: str, seeds: Path = SEEDS) -> list[str]:
    """The top-level fields of a platform's payload that hold JSON as a
    string (the mapping seed's ``decode`` rows): ``["detail", "extras"]``."""
    fields = []
    for row in read_seed(MAPPING, seeds):
        if row["kind"] == "decode" and row["platform"] == platform:
            path = row["source_path"].strip()
            if not re.fullmatch(r"\$\.[A-Za-z_][A-Za-z0-9_]*", path):
                raise ValueError(f"platform_mapping: a decode row names a top-level field"
                                 f" ($.name), not {path!r}")
            fields.append(path[2:])
    return sorted(fields)


def document_sql(platform: str, seeds: Path = SEEDS, payload: str = "payload") -> str:
    """SQL for a platform's payload as its paths read it: its decode fields
    parsed (dbt's twin: macros/field_map.sql payload_document)."""
    fields = decode_fields(platform, seeds)
    if not fields:
        return payload
    parts = ", ".join(f"'{f}', nullif({payload} ->> '{f}', '')::jsonb" for f in fields)
    return f"({payload} || jsonb_build_object({parts}))"


def mapping_row(**values: str) -> str:
    """One line of the mapping seed, ready to paste."""
    return ",".join(_csv(str(values.get(column, ""))) for column in MAPPING_COLUMNS)


def strip_filters(path: str) -> str:
    """``$.a[*] ? (@.t like_regex "^(1|2)") .b`` -> ``$.a[*].b`` (filters removed)."""
    out, i = [], 0
    while i < len(path):
        if path[i] == "?" and path[i + 1:].lstrip().startswith("("):
            i = path.index("(", i)
            depth, quote = 0, False
            while i < len(path):
                ch = path[i]
                if ch == '"' and path[i - 1] != "\\":
                    quote = not quote
                elif not quote and ch == "(":
                    depth += 1
                elif not quote and ch == ")":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            i += 1
            continue
        out.append(path[i])
        i += 1
    return re.sub(r"\s+", "", "".join(out))


def covered_paths(platform: str, field_map: list[dict[str, str]]) -> set[str]:
    """Paths (filters removed) that the field map or the loader reads."""
    rows = [r for r in field_map if r["platform"] == platform
            and r["entity"] in ("order", "order_item")]
    lines = next((r["source_path"] for r in rows if r["standard_field"] == "line_items"), "")
    covered = set(client_class(platform).identity_paths)
    for row in rows:
        if row["standard_field"] == "line_items":
            continue  # the line array: its fields are mapped one by one
        for alternative in filter(None, (p.strip() for p in row["source_path"].split("|"))):
            path = strip_filters(alternative)
            if row["entity"] == "order_item":
                path = strip_filters(lines) + "[*]" + path[1:]
            covered.add(path)
    return covered


def _is_covered(path: str, covered: set[str]) -> bool:
    """The map reads the leaf itself or a whole object above it."""
    return any(path == c or path.startswith((c + ".", c + "[")) for c in covered)


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def suggest_unit(platform: str, name: str, json_type: str) -> str:
    lowered = name.lower()
    if any(word in lowered for word in ("time", "created", "modified", "date")):
        return "unix_seconds" if json_type == "number" else "local_time"
    if any(word in lowered for word in ("fee", "amount", "price", "payment", "discount")):
        return client_class(platform).number_unit if json_type == "number" else "yuan"
    return ""


@dataclass
class Report:
    unmapped_statuses: list[dict] = field(default_factory=list)
    missing_required: list[dict] = field(default_factory=list)
    uncovered_fields: list[dict] = field(default_factory=list)
    orders: dict[str, int] = field(default_factory=dict)
    unmapped_platforms: list[str] = field(default_factory=list)  # registered, no field rows
    unregistered_platforms: list[str] = field(default_factory=list)  # rows, not registered

    @property
    def ok(self) -> bool:
        return not (self.unmapped_statuses or self.missing_required or self.unmapped_platforms
                    or self.unregistered_platforms)

    def render(self) -> str:
        out = ["orders checked (latest versions): "
               + ", ".join(f"{p} {n}" for p, n in self.orders.items())]
        if self.unmapped_platforms:
            out.append("registered platforms without field rows in"
                       f" dbt_project/seeds/platform_mapping.csv: {', '.join(self.unmapped_platforms)}")
        if self.unregistered_platforms:
            out.append("platforms with mapping rows that no client or config/sources file"
                       f" registers: {', '.join(self.unregistered_platforms)}")
        out.append(f"\nunmapped statuses: {len(self.unmapped_statuses)}")
        if self.unmapped_statuses:
            out.append("  add to dbt_project/seeds/platform_mapping.csv:")
            out += [f"  {s['seed_row']}    # {s['orders']} orders" for s in self.unmapped_statuses]
        out.append(f"\nrequired fields missing from payloads: {len(self.missing_required)}")
        out += [f"  {m['platform']} {m['entity']}.{m['standard_field']} ({m['source_path']}):"
                f" missing in {m['orders']} orders" for m in self.missing_required]
        out.append(f"\npayload fields the field map does not read: {len(self.uncovered_fields)}")
        if self.uncovered_fields:
            out.append("  to map one, add its row to dbt_project/seeds/platform_mapping.csv"
                       " (and a standard_fields.csv row if the standard field is new):")
            out += [f"  {u['seed_row']}" for u in self.uncovered_fields]
        return "\n".join(out)


LATEST = """
    select distinct on (shop_id, order_id) order_id, {document} as payload
    from {table}
    order by shop_id, order_id, modified_at desc, extracted_at desc, payload_sha256 desc
"""

LEAVES = """
with recursive latest as ({latest}),
walk (order_id, path, value) as (
    select order_id, '$'::text, payload from latest
    union all
    select walk.order_id,
           walk.path || case when child.key is null then '[*]'
                             when child.key ~ '^[A-Za-z_][A-Za-z0-9_]*$' then '.' || child.key
                             else '."' || child.key || '"' end,
           child.value
    from walk
    cross join lateral (
        select key, value from jsonb_each(case when jsonb_typeof(walk.value) = 'object'
                                               then walk.value end)
        union all
        select null, value from jsonb_array_elements(case when jsonb_typeof(walk.value) = 'array'
                                                          then walk.value end)
    ) as child
)
select path, min(jsonb_typeof(value)), count(distinct order_id)
from walk
where jsonb_typeof(value) not in ('object', 'array')
group by path
order by path
"""


def _text(path: str, default: str | None) -> tuple[str, list[str]]:
    """SQL for the text at a field-map path (alternatives "a | b", then the
    default), with the paths and default as query parameters."""
    alternatives = [p.strip() for p in path.split("|") if p.strip()]
    parts = ["nullif(jsonb_path_query_first(payload, %s::jsonpath, silent => true) #>> '{}', '')"] \
        * len(alternatives)
    params = list(alternatives)
    if default:
        parts.append("%s::text")
        params.append(default)
    return (f"coalesce({', '.join(parts)})" if parts else "null::text"), params


def check(conn: psycopg.Connection, seeds: Path = SEEDS) -> Report:
    field_map = read_seed("platform_field_map", seeds)
    status_map = read_seed("platform_status_map", seeds)
    report = Report()
    mapped = {r["platform"] for r in field_map}
    report.unmapped_platforms = [p for p in names() if p not in mapped]
    report.unregistered_platforms = sorted(mapped - set(names()))
    if conn.execute("select to_regclass('raw.orders')").fetchone()[0] is None:
        return report
    for platform in names():
        table = partition(platform)
        if not relation_exists(conn, table):
            continue
        rows = {r["standard_field"]: r for r in field_map
                if r["platform"] == platform and r["entity"] == "order"}
        latest = LATEST.format(table=table, document=document_sql(platform, seeds))
        report.orders[platform] = conn.execute(
            f"select count(*) from ({latest}) l").fetchone()[0]  # noqa: S608 - a partition name
        if not report.orders[platform]:
            continue
        report.unmapped_statuses += _unmapped_statuses(conn, platform, latest, rows, status_map)
        report.missing_required += _missing_required(conn, platform, latest, field_map)
        covered = covered_paths(platform, field_map)
        lines = strip_filters(rows.get("line_items", {}).get("source_path", "") or "$.-")
        for path, json_type, orders in conn.execute(LEAVES.format(latest=latest)).fetchall():
            if _is_covered(path, covered):
                continue
            entity = "order_item" if path.startswith(lines + "[*]") else "order"
            source = "$" + path[len(lines) + 3:] if entity == "order_item" else path
            name = snake("_".join(part.strip('"') for part in
                                  re.sub(r"\[\*\]", "", source)[2:].split(".")))
            unit = suggest_unit(platform, name, json_type)
            report.uncovered_fields.append({
                "platform": platform, "entity": entity, "path": path, "json_type": json_type,
                "orders": orders,
                "seed_row": mapping_row(platform=platform, kind="field", entity=entity,
                                        standard_field=name, source_path=source, unit=unit,
                                        required="false",
                                        note=f"{json_type} in {orders} of"
                                             f" {report.orders[platform]} orders"),
            })
    return report


def _csv(text: str) -> str:
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"') else text


def _unmapped_statuses(conn, platform, latest, rows, status_map) -> list[dict]:
    status = rows.get("raw_order_status")
    refund = rows.get("raw_refund_status")
    if status is None:
        return []
    order_expr, order_params = _text(status["source_path"], status.get("default_value"))
    refund_expr, refund_params = (_text(refund["source_path"], refund.get("default_value"))
                                  if refund else ("'-'", []))
    found = conn.execute(
        f"select {order_expr}, {refund_expr}, count(*) from ({latest}) l"  # noqa: S608 - paths are parameters
        " group by 1, 2 order by 1, 2", order_params + refund_params).fetchall()
    known = {(r["raw_order_status"], r["raw_refund_status"]): r
             for r in status_map if r["platform"] == platform}
    out = []
    for raw_status, raw_refund, orders in found:
        if (raw_status, raw_refund) in known:
            continue
        # Suggest codes from rows that already map the same order / refund status.
        same_status = next((r for (s, _), r in known.items() if s == raw_status), None)
        same_refund = next((r for (_, f), r in known.items() if f == raw_refund), None)
        order_code = same_status["order_status_code"] if same_status else "TODO"
        refund_code = same_refund["refund_status_code"] if same_refund else "TODO"
        out.append({
            "platform": platform, "raw_order_status": raw_status, "raw_refund_status": raw_refund,
            "orders": orders,
            "seed_row": mapping_row(platform=platform, kind="status", raw_order_status=raw_status,
                                    raw_refund_status=raw_refund, order_status_code=order_code,
                                    refund_status_code=refund_code, note="TODO describe"),
        })
    return out


def required_checks(platform: str, field_map: list[dict[str, str]]) -> list[tuple[dict, list[tuple[str, bool]]]]:
    """For each field-map row marked required: the SQL/JSON paths whose result
    means "missing", as (path, negate) - a payload lacks the field when, for
    every alternative, ``negate`` is True and the path does not exist, or
    ``negate`` is False and the path (some line without the field) does.
    Shared by `orderhub mapping check` and the GX raw_completeness suite."""
    rows = [r for r in field_map if r["platform"] == platform
            and r["entity"] in ("order", "order_item")]
    lines = next((r["source_path"] for r in rows if r["standard_field"] == "line_items"), "")
    checks = []
    for row in rows:
        if row["required"].strip().lower() != "true" or not row["source_path"].strip():
            continue
        paths = []
        for alternative in (p.strip() for p in row["source_path"].split("|")):
            if row["entity"] == "order_item":
                paths.append((f"{lines}[*] ? (!exists(@{alternative[1:]}))", False))
            else:
                paths.append((alternative, True))
        checks.append((row, paths))
    return checks


def _missing_required(conn, platform, latest, field_map) -> list[dict]:
    out = []
    for row, paths in required_checks(platform, field_map):
        conditions = [("not " if negate else "")
                      + "coalesce(jsonb_path_exists(payload, %s::jsonpath, silent => true), false)"
                      for _, negate in paths]
        orders = conn.execute(
            f"select count(*) from ({latest}) l where {' and '.join(conditions)}",  # noqa: S608 - paths are parameters
            [path for path, _ in paths]).fetchone()[0]
        if orders:
            out.append({"platform": platform, "entity": row["entity"],
                        "standard_field": row["standard_field"],
                        "source_path": row["source_path"], "orders": orders})
    return out
