"""Great Expectations plumbing shared by the load gate and the marts audit.

Validations run in an ephemeral context (one Postgres data source per process and warehouse, so no
connection string is ever written to disk). Each result is then stored in a file context under
.data/gx, whose Data Docs site (`build()`) shows every suite and a page for every validation of every run
kept; its index lists the latest INDEX_RESULTS validations.
"""

from __future__ import annotations

import logging
import time
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from crm_warehouse import settings

log = logging.getLogger(__name__)
RESULTS_KEPT_DAYS = 30
# building the index reads every result it lists: 1.1 s a build for the 484 results of a day of benchmark runs,
# ~30 results a pipeline run (23 load gates, 8 marts audits), so it grew with the results kept
INDEX_RESULTS = 200
# GX logs a lot at info level, which drowns the task log under Airflow.
logging.getLogger("great_expectations").setLevel(logging.WARNING)


def validate(*, suite_name: str, asset_name: str, query: str, expectations: list[dict], batch_label: str):
    """Validate `query`'s rows with the expectations; store the result; return it and its Data Docs page."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=suite_name, expectations=expectations)
    if len(suite.expectations) != len(expectations):  # GX drops invalid expectations silently
        raise ValueError(f"{suite_name}: some expectations are not valid GX expectations")
    datasource = _datasource(_sqlalchemy_url())
    asset = datasource.add_query_asset(name=asset_name, query=query)
    try:
        batch = asset.add_batch_definition_whole_table("batch").get_batch()
        result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    finally:
        datasource.delete_asset(asset.name)
    return result, _store(suite, result, batch_label)


def exception_message(outcome) -> str | None:
    """GX reports a failed query as an unsuccessful result with exception info; surface its first line."""
    info = outcome.exception_info or {}
    candidates = [info] if "raised_exception" in info else list(info.values())
    for candidate in candidates:
        if isinstance(candidate, dict) and candidate.get("raised_exception"):
            return str(candidate.get("exception_message", "")).splitlines()[0]
    return None


def build(keep_days: int = RESULTS_KEPT_DAYS) -> Path:
    """Render the Data Docs site's missing pages and its index; returns the index page.

    Results older than keep_days are removed first, so the site stays bounded. Only validation results
    without a page yet are rendered (plus the few suite pages and the index): rendering every stored
    result each time cost ~15 ms a result, which an hourly schedule would grow to minutes within the
    30 days kept.
    """
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    _prune(keep_days)
    context = _file_context()
    unrendered = [key for key in context.validation_results_store.list_keys() if not _page_path(key).exists()]
    suites = [ExpectationSuiteIdentifier(name=suite.name) for suite in context.suites.all()]
    if unrendered or suites:  # an empty list would make GX render everything
        context.build_data_docs(resource_identifiers=[*unrendered, *suites])
    else:
        context.build_data_docs()
    return docs_index()


def _prune(keep_days: int) -> None:
    cutoff = time.time() - keep_days * 86400
    uncommitted = settings.gx_dir() / "gx" / "uncommitted"
    for folder in (uncommitted / "validations", uncommitted / "data_docs" / "local_site" / "validations"):
        for path in folder.rglob("*") if folder.exists() else []:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()


def build_and_log() -> Path:
    """build(), and a log line saying where the site is: the DAGs' build_data_docs tasks, a marts rebuild."""
    index = build()
    log.info("Great Expectations Data Docs: file://%s", index)
    return index


def docs_index() -> Path:
    return settings.gx_dir() / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def _store(suite, result, batch_label: str) -> str:
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    context = _file_context()
    stored = gx.ExpectationSuite(name=suite.name, expectations=[e.configuration for e in suite.expectations])
    context.suites.add_or_update(stored)
    run_id = RunIdentifier(run_name=suite.name)
    key = ValidationResultIdentifier(ExpectationSuiteIdentifier(name=suite.name), run_id, batch_label)
    context.validation_results_store.set(key, result)
    return str(_page_path(key))


def _page_path(key) -> Path:
    """Where the Data Docs site renders a validation result (GX's layout of its local site)."""
    run_time = key.run_id.run_time.strftime("%Y%m%dT%H%M%S.%fZ")
    return (docs_index().parent / "validations" / key.expectation_suite_identifier.name / key.run_id.run_name
            / run_time / f"{key.batch_identifier}.html")


def _file_context():
    return _file_context_at(str(settings.gx_dir()))


@cache
def _file_context_at(path: str):
    import great_expectations as gx

    Path(path).mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=path)
    _limit_index(context)
    return context


def _limit_index(context) -> None:
    """The local site's index lists the latest INDEX_RESULTS validation results (GX's validation_results_limit).

    GX hands the index's limit to the validations section too, which would then render a page only for the
    latest results: 0 there (no limit) keeps rendering every result without a page (build).
    """
    site = dict(context.list_data_docs_sites()["local_site"])
    index = dict(site.get("site_index_builder") or {"class_name": "DefaultSiteIndexBuilder"})
    sections = dict(site.get("site_section_builders") or {})
    validations = dict(sections.get("validations") or {})
    if index.get("validation_results_limit") != INDEX_RESULTS or validations.get("validation_results_limit") != 0:
        site["site_index_builder"] = {**index, "validation_results_limit": INDEX_RESULTS}
        site["site_section_builders"] = {**sections, "validations": {**validations, "validation_results_limit": 0}}
        context.update_data_docs_site("local_site", site)


@cache
def _datasource(url: str):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context.data_sources.add_postgres(name="warehouse", connection_string=url)


def _sqlalchemy_url() -> str:
    parts = urlsplit(settings.warehouse_dsn())
    return urlunsplit(("postgresql+psycopg", parts.netloc, parts.path, parts.query, parts.fragment))
