"""The load gate of one batch: the row screen, then the object's Great Expectations suite on its findings.

The row screen (row_screen.py) runs every row rule of expectations/crm_<object>.json over the batch in
one SQL scan and records the rows that broke one in ops.row_findings. Great Expectations then
validates those findings: one expectation per row rule (its unexpected rows are the rows that broke
it, with their keys) and the batch rule on the share of failing rows. Row rules never hold a batch:
their error rows are quarantined. A failed batch rule with severity error holds it. Every validation
result is stored in the GX file context under .data/gx, whose Data Docs site gx_docs.build() renders.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from crm_warehouse import gx_docs, row_screen
from crm_warehouse.gate_rules import GateSuite
from crm_warehouse.warehouse import LANDING

log = logging.getLogger(__name__)
SAMPLE_SIZE = row_screen.SAMPLE_SIZE


@dataclass
class Finding:
    rule: str
    severity: str
    unexpected_count: int
    sample_keys: list
    scope: str = "row"  # row: quarantined (error) or recorded (warn); batch: holds the batch (error)
    detail: str = ""

    def describe(self) -> str:
        what = self.detail or f"{self.unexpected_count} row(s)"
        return f"{self.rule}: {what}, sample keys {self.sample_keys}"


@dataclass
class Verdict:
    findings: list[Finding] = field(default_factory=list)
    validated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    expectations_run: int = 0
    data_docs_page: str | None = None

    @property
    def batch_errors(self) -> list[Finding]:
        return [f for f in self.findings if f.scope == "batch" and f.severity == "error"]

    @property
    def quarantine_rules(self) -> list[Finding]:
        return [f for f in self.findings if f.scope == "row" and f.severity == "error"]

    @property
    def warnings(self) -> list[str]:
        return [f.describe() for f in self.findings if f.severity == "warn"]

    @property
    def passed(self) -> bool:
        return not self.batch_errors

    def held_rule(self) -> str | None:
        return self.batch_errors[0].rule if self.batch_errors else None

    def message(self, name: str, batch_id: int) -> str:
        failed = "; ".join(f.describe() for f in self.batch_errors)
        rows = "; ".join(f.describe() for f in self.quarantine_rules)
        return (
            f"Batch {batch_id} of {name} held by the load gate (suite expectations/crm_{name}.json): {failed}"
            + (f". Rules broken: {rows}" if rows else "")
            + f". Nothing was published; the rows are in {LANDING}.{name}. Fix the cause and run "
            f"`crmwh release {batch_id}` (publishes the rows that pass the row rules) or "
            f"`crmwh replay {batch_id}` (drops them and extracts again from the source)."
        )

    def summary(self) -> dict:
        return {
            "validated_at": self.validated_at,
            "expectations_run": self.expectations_run,
            "data_docs_page": self.data_docs_page,
            "findings": [f.__dict__ for f in self.findings],
        }


def validate_batch(wh: psycopg.Connection, suite: GateSuite, batch_id: int, rows_extracted: int,
                   check_share: bool = True) -> Verdict:
    """Screen the batch, then validate its findings with GX; the verdict says what to quarantine or hold."""
    counts = {c.rule: c for c in row_screen.screen(wh, suite, batch_id, rows_extracted)}
    max_failing = max(int(suite.settings["max_failing_share"] * rows_extracted), suite.settings["failing_rows_floor"])
    expectations = [_row_rule_expectation(rule) for rule in suite.row_rules]
    if check_share:
        expectations.append(_share_expectation(suite.settings["max_failing_share"], max_failing))
    result, page = gx_docs.validate(
        suite_name=f"crm_{suite.object_name}",
        asset_name=f"{suite.object_name}_batch_{batch_id}",
        query=f"select * from ops.row_findings where batch_id = {int(batch_id)}",
        expectations=expectations,
        batch_label=f"batch_{batch_id}",
    )
    verdict = Verdict(expectations_run=len(result.results), data_docs_page=page)
    for outcome in result.results:
        meta = outcome.expectation_config.meta
        if outcome.success:
            continue
        error = gx_docs.exception_message(outcome)
        if error:
            verdict.findings.append(Finding(f"{meta['rule']} could not run ({error})", "error", 0, [], "batch"))
        elif meta["scope"] == "row":
            count = counts.get(meta["rule"])
            verdict.findings.append(Finding(meta["rule"], meta["severity"], count.rows if count else 0,
                                            count.sample_keys if count else [], "row"))
        else:
            failing = _failing_rows(wh, batch_id)
            verdict.findings.append(Finding(
                "max_failing_share", "error", failing, _failing_sample(wh, batch_id), "batch",
                detail=f"more than {suite.settings['max_failing_share']:.0%} of the batch's rows (and more than "
                       f"{suite.settings['failing_rows_floor']}) break an error rule ({failing} of {rows_extracted}, "
                       f"limit {max_failing})"))
    verdict.findings.sort(key=lambda f: (f.scope != "batch", f.rule))
    return verdict


def _row_rule_expectation(rule) -> dict:
    column = "error_rules" if rule.severity == "error" else "warn_rules"
    literal = rule.name.replace("'", "''")
    return {
        "type": "unexpected_rows_expectation",
        "kwargs": {
            "description": f"{rule.description} [{rule.name}]",
            "unexpected_rows_query": f"select row_key, {column} from {{batch}} where '{literal}' = any({column})",
        },
        "meta": {"rule": rule.name, "severity": rule.severity, "scope": "row"},
    }


def _share_expectation(share: float, max_failing: int) -> dict:
    return {
        "type": "unexpected_rows_expectation",
        "kwargs": {
            "description": f"at most {share:.0%} of the batch's rows ({max_failing}) break an error rule",
            "unexpected_rows_query": "select count(*) as failing_rows from {batch} where cardinality(error_rules) > 0 "
                                     f"having count(*) > {int(max_failing)}",
        },
        "meta": {"rule": "max_failing_share", "severity": "error", "scope": "batch"},
    }


def _failing_rows(wh: psycopg.Connection, batch_id: int) -> int:
    return wh.execute("select count(*) from ops.row_findings where batch_id = %s and cardinality(error_rules) > 0",
                      (batch_id,)).fetchone()[0]


def _failing_sample(wh: psycopg.Connection, batch_id: int) -> list:
    return [r[0] for r in wh.execute(
        "select row_key from ops.row_findings where batch_id = %s and cardinality(error_rules) > 0 "
        "order by row_id limit %s", (batch_id, SAMPLE_SIZE)).fetchall()]
