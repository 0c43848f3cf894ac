"""The rules of one object's load gate, read from its suite file expectations/crm_<object>.json.

A suite file is a Great Expectations suite. Its column expectations are the *row rules*: a row that
breaks one with severity `error` goes to quarantine, `warn` is recorded and the row is published.
Each is compiled to a SQL predicate so that the whole suite runs as one scan of the batch (the
semantics of every supported type are in docs/quality-gates.md). The suite's meta adds:

* `references` (column -> "parent.key"): one row rule per reference, resolved against raw_crm and
  the batch itself; every suite also gets the rule valid_encoding (see source_copy.py);
* `gate`: the batch rules' settings, e.g. `max_failing_share` (default 0.05: a batch is held when
  more than 5% of its rows, and more than `failing_rows_floor` (default 10) rows, break an error
  rule; the floor keeps one bad row from holding a tiny batch), `volume_ratio`
  (default 10: a batch more than 10x above the largest, or 10x below the smallest, of the last
  `volume_history` (default 20) published batches is held once `volume_min_history` (default 3)
  incremental batches exist).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

SEVERITIES = ("error", "warn")
GATE_DEFAULTS = {"max_failing_share": 0.05, "failing_rows_floor": 10, "volume_ratio": 10.0, "volume_history": 20,
                 "volume_min_history": 3}
_INLINE_QUERY = re.compile(r"^\s*select\s+_row_id\s+from\s+\{batch\}\s+where\s+(?P<predicate>.+)$", re.I | re.S)


@dataclass(frozen=True)
class RowRule:
    name: str
    description: str
    severity: str
    predicate: sql.Composable | None = None  # evaluated on landing row `l`
    joined_query: str | None = None  # an unexpected_rows query that selects _row_id from {batch}
    parent: tuple[str, str] | None = None  # reference rules: (parent object, parent key)
    column: str | None = None


@dataclass
class GateSuite:
    object_name: str
    key: str
    row_rules: list[RowRule]
    settings: dict = field(default_factory=dict)

    def rule(self, name: str) -> RowRule:
        return next(r for r in self.row_rules if r.name == name)


def load(path: Path) -> GateSuite:
    doc = json.loads(path.read_text())
    meta = doc["meta"]
    rules = [_compile(expectation, path) for expectation in doc["expectations"]]
    for column, target in meta.get("references", {}).items():
        parent, parent_key = target.split(".")
        rules.append(RowRule(
            name=f"reference({column})",
            description=f"{column} resolves to raw_crm.{parent}.{parent_key}",
            severity="error", parent=(parent, parent_key), column=column,
        ))
    rules.append(RowRule(
        name="valid_encoding",
        description="text values are valid UTF-8 without NUL bytes (bad bytes are kept as \\xNN escapes)",
        severity="error", predicate=sql.SQL("l._invalid_encoding is not null"),
    ))
    names = [r.name for r in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: rule names must be unique; give these a meta.rule name: {duplicates}")
    unknown = set(meta.get("gate", {})) - set(GATE_DEFAULTS)
    if unknown:
        raise ValueError(f"{path}: unknown gate settings {sorted(unknown)}; known: {sorted(GATE_DEFAULTS)}")
    return GateSuite(meta["object"], meta["key"], rules, {**GATE_DEFAULTS, **meta.get("gate", {})})


def _compile(expectation: dict, path: Path) -> RowRule:
    kind, kwargs, meta = expectation["type"], expectation["kwargs"], expectation.get("meta", {})
    severity = meta.get("severity", "error")
    if severity not in SEVERITIES:
        raise ValueError(f"{path}: severity must be one of {SEVERITIES}, not {severity!r} ({kind})")
    column = kwargs.get("column")
    col = sql.SQL("l.{}").format(sql.Identifier(column)) if column else None
    short = _SHORT_NAMES.get(kind, kind)
    name = meta.get("rule") or (f"{short}({column})" if column else kind)
    description = kwargs.get("description") or f"{column}: {short.replace('_', ' ')}"
    if kind not in _COMPILERS:
        raise ValueError(f"{path}: the load gate cannot run {kind}; supported: {sorted(_COMPILERS)}")
    if "mostly" in kwargs:
        raise ValueError(f"{path}: {kind}({column}) uses mostly; row rules apply to every row "
                         f"(the share of failing rows a batch may have is meta.gate.max_failing_share)")
    if kind == "unexpected_rows_expectation":
        query = kwargs["unexpected_rows_query"]
        inline = _INLINE_QUERY.match(query)
        name = meta.get("rule") or _slug(description)
        if inline:
            # the batch's columns are named bare; in the screen they are the landing row's
            predicate = sql.SQL("coalesce(({}), false)").format(sql.SQL(inline["predicate"]))
            return RowRule(name, description, severity, predicate=predicate)
        if "_row_id" not in query:
            raise ValueError(f"{path}: unexpected_rows_query must select _row_id from {{batch}}: {query}")
        return RowRule(name, description, severity, joined_query=query)
    return RowRule(name, description, severity, predicate=_COMPILERS[kind](col, kwargs), column=column)


def _not_null(col, kwargs):
    return sql.SQL("{} is null").format(col)


def _unique(col, kwargs):
    return sql.SQL("({col} is not null and count(*) over (partition by {col}) > 1)").format(col=col)


def _in_set(col, kwargs):
    values = sql.SQL(", ").join(sql.Literal(v) for v in kwargs["value_set"])
    return sql.SQL("({} is not null and {} not in ({}))").format(col, col, values)


def _match_regex(col, kwargs):
    return sql.SQL("({} is not null and {} !~ {})").format(col, col, sql.Literal(kwargs["regex"]))


def _not_match_regex(col, kwargs):
    return sql.SQL("coalesce({} ~ {}, false)").format(col, sql.Literal(kwargs["regex"]))


def _between(col, kwargs):
    checks = []
    if kwargs.get("min_value") is not None:
        op = "<=" if kwargs.get("strict_min") else "<"
        checks.append(sql.SQL("{} {} {}").format(col, sql.SQL(op), sql.Literal(kwargs["min_value"])))
    if kwargs.get("max_value") is not None:
        op = ">=" if kwargs.get("strict_max") else ">"
        checks.append(sql.SQL("{} {} {}").format(col, sql.SQL(op), sql.Literal(kwargs["max_value"])))
    return sql.SQL("coalesce(({}), false)").format(sql.SQL(" or ").join(checks))


def _lengths_between(col, kwargs):
    return _between(sql.SQL("char_length({})").format(col), kwargs)


_SHORT_NAMES = {
    "expect_column_values_to_not_be_null": "not_null",
    "expect_column_values_to_be_unique": "unique",
    "expect_column_values_to_be_in_set": "in_set",
    "expect_column_values_to_match_regex": "match_regex",
    "expect_column_values_to_not_match_regex": "not_match_regex",
    "expect_column_values_to_be_between": "between",
    "expect_column_value_lengths_to_be_between": "length_between",
}
_COMPILERS = {
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_be_unique": _unique,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_values_to_match_regex": _match_regex,
    "expect_column_values_to_not_match_regex": _not_match_regex,
    "expect_column_values_to_be_between": _between,
    "expect_column_value_lengths_to_be_between": _lengths_between,
    "unexpected_rows_expectation": None,  # compiled in _compile
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60]
