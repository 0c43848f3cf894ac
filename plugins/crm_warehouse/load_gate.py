"""The load gate: a Great Expectations suite per CRM object, run on one batch while it is in landing.

Suites are reviewable JSON files in expectations/ (crm_<object>.json). Every expectation carries a
severity in its meta: `error` holds the batch, `warn` is logged and recorded. GX runs the checks as SQL
on the warehouse, over `select * from landing.<object> where _batch_id = <id>` only.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from urllib.parse import urlsplit, urlunsplit

from crm_warehouse import objects, settings
from crm_warehouse.warehouse import LANDING

log = logging.getLogger(__name__)
SAMPLE_SIZE = 5
# GX logs a lot at info level, which drowns the task log under Airflow.
logging.getLogger("great_expectations").setLevel(logging.WARNING)


@dataclass
class Finding:
    rule: str
    severity: str
    unexpected_count: int
    sample_keys: list

    def describe(self) -> str:
        return f"{self.rule}: {self.unexpected_count} row(s), sample keys {self.sample_keys}"


@dataclass
class Verdict:
    findings: list[Finding] = field(default_factory=list)
    validated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    expectations_run: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[str]:
        return [f.describe() for f in self.findings if f.severity != "error"]

    @property
    def passed(self) -> bool:
        return not self.errors

    def message(self, name: str, batch_id: int) -> str:
        failed = "; ".join(f.describe() for f in self.errors)
        return (
            f"Batch {batch_id} of {name} held by the load gate (suite expectations/crm_{name}.json): {failed}. "
            f"Nothing was published; the rows are in {LANDING}.{name} for inspection."
        )

    def summary(self) -> dict:
        return {
            "validated_at": self.validated_at,
            "expectations_run": self.expectations_run,
            "findings": [f.__dict__ for f in self.findings],
        }


def validate_batch(obj: objects.CrmObject, batch_id: int) -> Verdict:
    import great_expectations as gx

    suite_doc = json.loads(obj.suite_path.read_text())
    docs = suite_doc["expectations"]
    # GX may reorder results; a rule index in each expectation's meta maps results back to the file.
    tagged = [{**doc, "meta": {**doc.get("meta", {}), "rule_index": i}} for i, doc in enumerate(docs)]
    suite = gx.ExpectationSuite(name=suite_doc["name"], expectations=tagged)
    if len(suite.expectations) != len(docs):
        raise ValueError(f"{obj.suite_path}: some expectations are not valid GX expectations")
    query = f'select * from "{LANDING}"."{obj.name}" where _batch_id = {int(batch_id)}'
    datasource = _datasource(_sqlalchemy_url())
    asset = datasource.add_query_asset(name=f"{obj.name}_batch_{batch_id}", query=query)
    try:
        batch = asset.add_batch_definition_whole_table("batch").get_batch()
        result = batch.validate(
            suite,
            result_format={
                "result_format": "COMPLETE",  # COMPLETE: unexpected_rows_expectation returns sample rows
                "unexpected_index_column_names": [obj.key],
                "partial_unexpected_count": SAMPLE_SIZE,
            },
        )
    finally:
        datasource.delete_asset(asset.name)
    verdict = Verdict(expectations_run=len(result.results))
    for outcome in sorted(result.results, key=lambda r: r.expectation_config.meta["rule_index"]):
        if not outcome.success:
            doc = docs[outcome.expectation_config.meta["rule_index"]]
            verdict.findings.append(_finding(doc, outcome, obj.key))
    return verdict


def _finding(expectation_doc: dict, outcome, key: str) -> Finding:
    kwargs = expectation_doc["kwargs"]
    rule = kwargs.get("description") or expectation_doc["type"]
    if "column" in kwargs and "description" not in kwargs:
        rule = f"{expectation_doc['type']}({kwargs['column']})"
    severity = expectation_doc.get("meta", {}).get("severity", "error")
    res = outcome.result or {}
    error = _exception_message(outcome)
    if error:
        return Finding(f"{rule} could not run ({error})", severity, 0, [])
    if expectation_doc["type"] == "unexpected_rows_expectation":
        rows = (res.get("details") or {}).get("unexpected_rows") or []
        sample = [row.get(key, row) if isinstance(row, dict) else row for row in rows[:SAMPLE_SIZE]]
        return Finding(rule, severity, int(res.get("observed_value") or len(rows)), sample)
    sample = [item.get(key) for item in (res.get("partial_unexpected_index_list") or [])[:SAMPLE_SIZE]]
    return Finding(rule, severity, int(res.get("unexpected_count") or 0), sample)


def _exception_message(outcome) -> str | None:
    """GX reports a failed query as an unsuccessful result with exception info; surface its first line."""
    info = outcome.exception_info or {}
    candidates = [info] if "raised_exception" in info else list(info.values())
    for candidate in candidates:
        if isinstance(candidate, dict) and candidate.get("raised_exception"):
            return str(candidate.get("exception_message", "")).splitlines()[0]
    return None


@cache
def _datasource(url: str):
    """One ephemeral GX context and Postgres data source per process and warehouse."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context.data_sources.add_postgres(name="warehouse", connection_string=url)


def _sqlalchemy_url() -> str:
    parts = urlsplit(settings.warehouse_dsn())
    return urlunsplit(("postgresql+psycopg", parts.netloc, parts.path, parts.query, parts.fragment))
