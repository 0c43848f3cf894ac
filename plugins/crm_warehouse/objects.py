"""The CRM objects the pipeline loads, read from their gate suites in expectations/.

Each suite's meta names the object's key and the references that must resolve; the load order
follows those references so a parent batch is published before its children are validated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from crm_warehouse import settings


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


@cache
def all_objects() -> dict[str, CrmObject]:
    found = {}
    for path in sorted(expectations_dir().glob("crm_*.json")):
        meta = json.loads(path.read_text())["meta"]
        found[meta["object"]] = CrmObject(meta["object"], meta["key"], dict(meta.get("references", {})))
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
