"""Read ``catalogs/`` into a validated :class:`Catalog`, or say exactly what is wrong.

Every problem is reported with its file, line and field path, all at once, so a
department developer fixes the whole list in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hub.catalog.models import (
    Application,
    Catalog,
    Department,
    Resource,
    Scenario,
    WorkingCalendar,
)

M = TypeVar("M", bound=BaseModel)
Lines = dict[tuple[str | int, ...], int]  # key path -> line in the YAML file


@dataclass(frozen=True)
class CatalogProblem:
    file: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.field}: {self.message}"


class CatalogError(ValueError):
    """The catalog is invalid; ``problems`` lists every error found."""

    def __init__(self, problems: list[CatalogProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _line_index(
    node: yaml.Node, path: tuple[str | int, ...] = ()
) -> dict[tuple[str | int, ...], int]:
    """Map each key path of a YAML document to its 1-based line."""
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, key_node.value)
            lines.update(_line_index(value_node, child))
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_index(item, (*path, index)))
    return lines


def _read_yaml(path: Path) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    text = path.read_text(encoding="utf-8")
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    data = yaml.safe_load(text)
    return data, (_line_index(node) if node is not None else {})


def _problems_from(
    path: Path, error: ValidationError, lines: dict[tuple[str | int, ...], int]
) -> list[CatalogProblem]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        line = None
        for depth in range(len(loc), -1, -1):  # the nearest enclosing node that exists
            if loc[:depth] in lines:
                line = lines[loc[:depth]]
                break
        field = ".".join(str(part) for part in loc) or "(document)"
        problems.append(CatalogProblem(path, line, field, item["msg"]))
    return problems


def _load_file(
    path: Path, model: type[M], problems: list[CatalogProblem]
) -> tuple[M, Lines] | None:
    """One YAML file as ``model``, or None with its problems appended."""
    try:
        data, lines = _read_yaml(path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problems.append(CatalogProblem(path, line, "(document)", f"not valid YAML: {exc}"))
        return None
    if not isinstance(data, dict):
        problems.append(CatalogProblem(path, 1, "(document)", "expected a mapping of keys"))
        return None
    try:
        return model.model_validate(data), lines
    except ValidationError as exc:
        problems.extend(_problems_from(path, exc, lines))
        return None


def _load_folder(
    folder: Path, model: type[M], problems: list[CatalogProblem]
) -> list[tuple[Path, M, Lines]]:
    loaded = []
    for path in sorted(folder.glob("*.yml")):
        found = _load_file(path, model, problems)
        if found is not None:
            loaded.append((path, *found))
    return loaded


def load_catalog(catalog_dir: Path) -> Catalog:
    """Load and cross-check every YAML under ``catalog_dir``.

    Raises CatalogError listing every problem (file, line, field, what was expected).
    """
    problems: list[CatalogProblem] = []
    if not catalog_dir.is_dir():
        raise CatalogError([CatalogProblem(catalog_dir, None, "(folder)", "no such folder")])
    departments = _load_folder(catalog_dir / "departments", Department, problems)
    resources = _load_folder(catalog_dir / "resources", Resource, problems)
    applications = _load_folder(catalog_dir / "applications", Application, problems)
    scenarios = _load_folder(catalog_dir / "scenarios", Scenario, problems)
    calendar = _load_calendar(catalog_dir / "calendar.yml", problems)

    known_departments = {d.code: d for _, d, _ in departments}
    seen_codes: dict[str, Path] = {}
    for path, resource, lines in resources:
        if path.stem != resource.code:
            problems.append(
                CatalogProblem(
                    path,
                    lines.get(("code",)),
                    "code",
                    f"expected the file name {resource.code}.yml",
                )
            )
        if resource.code in seen_codes:
            problems.append(
                CatalogProblem(
                    path,
                    lines.get(("code",)),
                    "code",
                    f"{resource.code!r} is already defined in {seen_codes[resource.code]}",
                )
            )
        seen_codes[resource.code] = path
        department = known_departments.get(resource.provider)
        if department is None:
            problems.append(
                CatalogProblem(
                    path,
                    lines.get(("provider",)),
                    "provider",
                    f"no department {resource.provider!r} in departments/ "
                    f"(known: {', '.join(sorted(known_departments))})",
                )
            )
        elif department.system.kind != resource.source.connector:
            problems.append(
                CatalogProblem(
                    path,
                    lines.get(("source", "connector")),
                    "source.connector",
                    f"{resource.provider} runs a {department.system.kind.value} system, "
                    f"not {resource.source.connector.value}",
                )
            )
    for path, department, lines in departments:
        if path.stem != department.code:
            problems.append(
                CatalogProblem(
                    path,
                    lines.get(("code",)),
                    "code",
                    f"expected the file name {department.code}.yml",
                )
            )
    named: list[tuple[Path, Application | Scenario, dict[tuple[str | int, ...], int]]] = [
        *applications,
        *scenarios,
    ]
    for path, item, lines in named:
        if path.stem != item.code:
            problems.append(
                CatalogProblem(
                    path, lines.get(("code",)), "code", f"expected the file name {item.code}.yml"
                )
            )
    by_resource = {r.code: r for _, r, _ in resources}
    # a resource whose own file is broken is reported there, not again where it is used
    present = {path.stem for path in (catalog_dir / "resources").glob("*.yml")}
    problems.extend(_check_scenarios(scenarios, by_resource, present))
    problems.extend(_check_agreement(resources, by_resource, present))
    problems.extend(
        _check_applications(applications, {s.code for _, s, _ in scenarios}, known_departments)
    )
    if problems:
        raise CatalogError(problems)
    return Catalog(
        departments=tuple(d for _, d, _ in departments),
        resources=tuple(r for _, r, _ in resources),
        applications=tuple(a for _, a, _ in applications),
        scenarios=tuple(s for _, s, _ in scenarios),
        calendar=calendar,
    )


def _check_agreement(
    resources: list[tuple[Path, Resource, Lines]],
    by_resource: dict[str, Resource],
    present: set[str],
) -> list[CatalogProblem]:
    """``agrees_with`` names an existing field of another resource keyed by one field."""
    problems = []
    for path, resource, lines in resources:
        for index, spec in enumerate(resource.fields):
            for target in spec.agrees_with:
                if "." not in target:
                    continue  # id_birth_date: the model checked it
                code, name = target.split(".", 1)
                other = by_resource.get(code)
                why = None
                if other is None and code in present:
                    continue  # its own broken file is reported there
                if other is None:
                    why = f"no resource {code!r}"
                elif name not in {f.name for f in other.fields}:
                    why = f"{code} has no field {name!r}"
                elif len(other.primary_key) != 1:
                    why = f"{code} has a composite key: nothing to match {spec.matched_by} with"
                elif code == resource.code:
                    why = "a field cannot agree with its own resource"
                if why:
                    problems.append(
                        CatalogProblem(
                            path,
                            lines.get(("fields", index), lines.get(("fields",))),
                            f"fields.{index}.agrees_with",
                            why,
                        )
                    )
    return problems


def _load_calendar(path: Path, problems: list[CatalogProblem]) -> WorkingCalendar:
    """``calendar.yml`` (optional): local working-day overrides."""
    found = _load_file(path, WorkingCalendar, problems) if path.exists() else None
    return found[0] if found is not None else WorkingCalendar()


def _check_scenarios(
    scenarios: list[tuple[Path, Scenario, dict[tuple[str | int, ...], int]]],
    resources: dict[str, Resource],
    present: set[str],
) -> list[CatalogProblem]:
    """A material's replacement must name a resource and fields the catalog offers
    (``present``: resource files that exist, valid or not)."""
    problems = []
    for path, scenario, lines in scenarios:
        for m, material in enumerate(scenario.materials):
            for r, replacement in enumerate(material.replaced_by):
                where = ("materials", m, "replaced_by", r)
                resource = resources.get(replacement.resource)
                if resource is None and replacement.resource in present:
                    continue
                if resource is None:
                    problems.append(
                        CatalogProblem(
                            path,
                            lines.get((*where, "resource")),
                            ".".join(map(str, (*where, "resource"))),
                            f"no resource {replacement.resource!r} in resources/",
                        )
                    )
                    continue
                offered = {f.name for f in resource.fields}
                missing = [f for f in replacement.fields if f not in offered]
                if missing:
                    problems.append(
                        CatalogProblem(
                            path,
                            lines.get((*where, "fields")),
                            ".".join(map(str, (*where, "fields"))),
                            f"{resource.code} has no field {', '.join(missing)} "
                            f"(it offers: {', '.join(sorted(offered))})",
                        )
                    )
    return problems


def _check_applications(
    applications: list[tuple[Path, Application, dict[tuple[str | int, ...], int]]],
    scenarios: set[str],
    departments: dict[str, Department],
) -> list[CatalogProblem]:
    """Scenarios and owner departments must exist; a demand's scenario must be one the
    application serves. An unknown resource or field in a demand is not an error: the
    demand is registered as unmatched (hub.demand)."""
    problems = []
    for path, app, lines in applications:
        if app.owner_department is not None and app.owner_department not in departments:
            problems.append(
                CatalogProblem(
                    path,
                    lines.get(("owner_department",)),
                    "owner_department",
                    f"no department {app.owner_department!r} in departments/",
                )
            )
        for i, code in enumerate(app.scenarios):
            if code not in scenarios:
                problems.append(
                    CatalogProblem(
                        path,
                        lines.get(("scenarios", i)),
                        f"scenarios.{i}",
                        f"no scenario {code!r} in scenarios/ "
                        f"(known: {', '.join(sorted(scenarios))})",
                    )
                )
        for i, demand in enumerate(app.demands):
            if demand.scenario not in app.scenarios:
                problems.append(
                    CatalogProblem(
                        path,
                        lines.get(("demands", i, "scenario")),
                        f"demands.{i}.scenario",
                        f"{app.code} does not serve scenario {demand.scenario!r} "
                        f"(its scenarios: {', '.join(app.scenarios)})",
                    )
                )
    return problems
