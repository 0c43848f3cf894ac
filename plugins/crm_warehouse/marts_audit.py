"""The audit step of write-audit-publish: GX suites (expectations/marts/<mart>.json) on the shadow marts.

dbt's own tests on the marts (grain, relationships, reconciliation to the facts, funnel monotony) ran
during the shadow build; these suites add the checks a reader of the marts relies on (LTV never
negative, rates within 0-1, the funnel never widening, one row per grain) and the row count against
the live version: within meta.row_count_change (default 0.5: at most half as many or twice as many
rows), checked when both versions are as of the latest loaded day.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from psycopg import sql

from crm_warehouse import gx_docs, settings, warehouse
from crm_warehouse.marts_publish import LIVE, SHADOW

log = logging.getLogger(__name__)


@dataclass
class AuditResult:
    failures: list[str] = field(default_factory=list)
    checked: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> dict:
        return {"failures": self.failures, "checked": self.checked}


def suites_dir():
    return settings.PROJECT_ROOT / "expectations" / "marts"


def audit(compare_row_counts: bool = True) -> AuditResult:
    result = AuditResult()
    with warehouse.connect(settings.warehouse_dsn()) as wh:
        for path in sorted(suites_dir().glob("*.json")):
            doc = json.loads(path.read_text())
            mart = doc["meta"]["mart"]
            expectations = list(doc["expectations"])
            if compare_row_counts:
                expectations += _row_count_expectation(wh, mart, doc["meta"].get("row_count_change", 0.5))
            outcome, page = gx_docs.validate(
                suite_name=doc["name"], asset_name=f"audit_{mart}",
                query=f'select * from "{SHADOW}"."{mart}"', expectations=expectations, batch_label="shadow",
            )
            result.checked[mart] = {"expectations": len(outcome.results), "data_docs_page": page}
            for item in outcome.results:
                if not item.success:
                    result.failures.append(f"{mart}: {_describe(item)}")
    for failure in result.failures:
        log.error("Marts audit failed: %s", failure)
    return result


def _row_count_expectation(wh, mart: str, change: float) -> list[dict]:
    live = _count(wh, LIVE, mart)
    if live is None or live == 0:
        return []
    low, high = int(live * (1 - change)), int(live / (1 - change)) + 1
    return [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": low, "max_value": high},
             "meta": {"severity": "error", "live_rows": live}}]


def _count(wh, schema: str, mart: str) -> int | None:
    if not wh.execute("select to_regclass(%s) is not null", (f"{schema}.{mart}",)).fetchone()[0]:
        return None
    return wh.execute(sql.SQL("select count(*) from {}.{}").format(sql.Identifier(schema), sql.Identifier(mart))
                      ).fetchone()[0]


def _describe(item) -> str:
    config = item.expectation_config
    error = gx_docs.exception_message(item)
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "unexpected_rows_query")}
    arguments = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    label = config.description or kwargs.pop("description", None) or f"{config.type}({arguments})"
    if error:
        return f"{label} could not run ({error})"
    res = item.result or {}
    if "partial_unexpected_list" in res:
        return (f"{label}: {res.get('unexpected_count')} row(s) fail, sample values "
                f"{res.get('partial_unexpected_list', [])[:5]}")
    observed = res.get("observed_value")
    rows = (res.get("details") or {}).get("unexpected_rows")
    return f"{label}: observed {observed}" + (f", sample {rows[:3]}" if rows else "")
