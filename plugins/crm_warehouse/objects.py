"""The CRM objects the pipeline loads, read from their gate suites in expectations/.

Each suite's meta names the object's key and the references that must resolve; the load order
follows those references so a parent batch is published before its children are validated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from crm_warehouse import settings
from crm_warehouse.errors import WarehouseError


def expectations_dir() -> Path:
    return settings.PROJECT_ROOT / "expectations"


@dataclass(frozen=True)
class CrmObject:
    name: str
    key: str
    references: dict[str, str]  # column -> "parent_object.parent_key"

    @property
    def parents(self) -> set[str]:
        return {target.split(".")[0] for target in self.references.values()} - {self.name}

    @property
    def suite_path(self) -> Path:
        return expectations_dir() / f"crm_{self.name}.json"


# an object's name becomes landing/raw/quarantine table names and dbt source names, its key and references
# column names: plain lower-case identifiers only. Everything is quoted as an identifier anyway; this
# refuses names that would only work quoted (and hostile ones) with a message instead of odd tables.
NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@cache
def all_objects() -> dict[str, CrmObject]:
    found = {}
    for path in sorted(expectations_dir().glob("crm_*.json")):
        meta = json.loads(path.read_text())["meta"]
        references = dict(meta.get("references", {}))
        names = {"meta.object": meta["object"], "meta.key": meta["key"],
                 **{f"meta.references key {c!r}": c for c in references},
                 **{f"meta.references[{c!r}]": t for c, t in references.items()}}
        for field, value in names.items():
            parts = value.split(".") if field.startswith("meta.references[") else [value]
            if len(parts) > 2 or not all(NAME.fullmatch(p) for p in parts):
                raise WarehouseError(f"{path}: {field} is {value!r}, not a plain identifier (lower-case letters, "
                                     f"digits and _, starting with a letter or _); fix the suite.")
        found[meta["object"]] = CrmObject(meta["object"], meta["key"], references)
    return found


def get(name: str) -> CrmObject:
    try:
        return all_objects()[name]
    except KeyError:
        known = ", ".join(sorted(all_objects()))
        raise KeyError(f"Unknown CRM object {name!r}; known objects: {known}") from None


def load_tiers() -> list[list[str]]:
    """Objects grouped so every object comes after the objects it references."""
    remaining = dict(all_objects())
    done: set[str] = set()
    tiers = []
    while remaining:
        tier = sorted(name for name, obj in remaining.items() if obj.parents <= done)
        if not tier:
            raise ValueError(f"Reference cycle among CRM objects: {sorted(remaining)}")
        tiers.append(tier)
        done.update(tier)
        for name in tier:
            del remaining[name]
    return tiers
