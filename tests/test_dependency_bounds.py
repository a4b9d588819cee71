"""Every dependency ``pyproject.toml`` declares has a lower and an upper bound, and the
versions ``uv.lock`` pins lie inside them.

CI installs both ends of each range (``.ci/run``: oldest and newest allowed), so an open
bound would let a release nobody tested into a user's environment. No network: this
reads the two files only.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
LOCK: dict[str, Any] = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))

# "==1.2" and "~=1.2" bound both sides; ">" and "<" one each.
_LOWER = {">=", ">", "==", "~=", "==="}
_UPPER = {"<", "<=", "==", "~=", "==="}


def _declared() -> list[tuple[str, Requirement]]:
    """(where it is declared, requirement) for every table that names dependencies."""
    project = PYPROJECT["project"]
    found = [("dependencies", Requirement(text)) for text in project["dependencies"]]
    for extra, texts in project.get("optional-dependencies", {}).items():
        found += [(f"extra {extra}", Requirement(text)) for text in texts]
    for group, entries in PYPROJECT.get("dependency-groups", {}).items():
        # {include-group = ...} entries name a group, which is checked on its own.
        found += [(f"group {group}", Requirement(e)) for e in entries if isinstance(e, str)]
    found += [("build-system", Requirement(text)) for text in PYPROJECT["build-system"]["requires"]]
    return found


DECLARED = _declared()
IDS = [f"{where}: {requirement.name}" for where, requirement in DECLARED]


def _locked_versions(name: str) -> list[Version]:
    """Every version uv.lock pins for ``name`` (more than one where the lock forks)."""
    wanted = canonicalize_name(name)
    return [
        Version(package["version"])
        for package in LOCK["package"]
        if canonicalize_name(package["name"]) == wanted and "version" in package
    ]


def test_the_declarations_are_found() -> None:
    wheres = {where for where, _ in DECLARED}
    assert {"dependencies", "extra testing", "extra fastapi", "group dev"} <= wheres
    names = {canonicalize_name(r.name) for where, r in DECLARED if where == "dependencies"}
    assert {"tortoise-orm", "aerich", "asyncpg", "aiosqlite", "pydantic"} <= names


@pytest.mark.parametrize(("where", "requirement"), DECLARED, ids=IDS)
def test_every_dependency_has_both_bounds(where: str, requirement: Requirement) -> None:
    operators = {spec.operator for spec in requirement.specifier}
    assert operators & _LOWER, f"{requirement} ({where}) has no lower bound"
    assert operators & _UPPER, f"{requirement} ({where}) has no upper bound"


@pytest.mark.parametrize(
    ("where", "requirement"),
    [(where, r) for where, r in DECLARED if where != "build-system"],
    ids=[i for i in IDS if not i.startswith("build-system")],
)
def test_the_locked_version_lies_inside_the_bounds(where: str, requirement: Requirement) -> None:
    locked = _locked_versions(requirement.name)
    assert locked, f"{requirement.name} ({where}) is not in uv.lock: run `uv lock`"
    outside = [str(v) for v in locked if not requirement.specifier.contains(v, prereleases=True)]
    assert not outside, (
        f"uv.lock pins {requirement.name} {outside}, outside {requirement} ({where})"
    )


def test_the_lock_records_the_bounds_pyproject_declares() -> None:
    """A bound changed without ``uv lock`` would leave the lock (and the main CI run,
    which installs from it) resolving against the old range."""
    (ours,) = [p for p in LOCK["package"] if p["name"] == PYPROJECT["project"]["name"]]
    metadata = ours["metadata"]

    def entries(specs: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        return {
            (
                canonicalize_name(s["name"]),
                str(SpecifierSet(s.get("specifier", ""))),
                s.get("marker", ""),
            )
            for s in specs
        }

    def declared(*wheres: str) -> set[tuple[str, str, str]]:
        found = set()
        for where, r in DECLARED:
            if where in wheres:
                marker = (
                    f"extra == '{where.removeprefix('extra ')}'"
                    if where.startswith("extra ")
                    else ""
                )
                found.add((canonicalize_name(r.name), str(r.specifier), marker))
        return found

    extras = [f"extra {e}" for e in PYPROJECT["project"].get("optional-dependencies", {})]
    assert entries(metadata["requires-dist"]) == declared("dependencies", *extras)
    for group in PYPROJECT.get("dependency-groups", {}):
        assert entries(metadata["requires-dev"][group]) == declared(f"group {group}")
