"""Quality suites: ``expectations/<resource>.yml``, validated by pydantic.

A suite is a short list of expectations; each names its kind (``expect``), the column it
checks, ``mostly`` (the share of non-null values that must pass, default 1.0) and
``severity`` (``error`` blocks publication, ``warning`` is only reported)::

    resource: persons
    expectations:
      - {expect: not_null, column: citizen_id, severity: error}
      - {expect: citizen_id, column: citizen_id, mostly: 0.99}
      - {expect: exists_in, column: owner_id, in: [persons.citizen_id, enterprises.credit_code]}
      - {expect: row_count_change, max_ratio: 0.2}

Problems are reported all at once with file, line and field, like the catalog's.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from hub.catalog.loader import CatalogError, CatalogProblem, _problems_from, _read_yaml
from hub.catalog.models import CODE_PATTERN, Catalog, Strict

Severity = Literal["error", "warning"]
_REFERENCE = re.compile(r"^([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class SuiteError(CatalogError):
    """A quality suite is invalid; ``problems`` lists every error (file, line, field)."""


class ExpectationBase(Strict):
    mostly: float = Field(default=1.0, ge=0.0, le=1.0)
    severity: Severity = "error"
    name: str | None = Field(
        default=None,
        pattern=CODE_PATTERN,
        description="Rule name in results and rejects; default: the `expect` kind.",
    )

    @property
    def rule(self) -> str:
        """The name this expectation goes by in ``ops.gate_results`` and ``rejects``."""
        return self.name or str(getattr(self, "expect"))  # noqa: B009

    @property
    def columns(self) -> tuple[str, ...]:
        """The candidate columns this expectation reads."""
        column = getattr(self, "column", None)
        return (column,) if column else ()

    @property
    def column_label(self) -> str | None:
        """The ``column`` value of results and rejects rows (NULL for table-level)."""
        return ",".join(self.columns) or None

    @property
    def row_level(self) -> bool:
        """Whether single rows fail it (they go to ``rejects``)."""
        return True


class NotNull(ExpectationBase):
    expect: Literal["not_null"]
    column: str


class Unique(ExpectationBase):
    """Every value (or combination of ``columns``) appears once; NULL keys are skipped."""

    expect: Literal["unique"]
    column: str | None = None
    key: tuple[str, ...] = Field(
        default=(), description="Several columns that together are unique."
    )

    @model_validator(mode="after")
    def _one_form(self) -> Unique:
        if bool(self.column) == bool(self.key):
            raise ValueError("give either `column` or `key` (a list of columns)")
        return self

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,) if self.column else self.key


class InSet(ExpectationBase):
    expect: Literal["in_set"]
    column: str
    values: tuple[str | int, ...] = Field(min_length=1)


class Between(ExpectationBase):
    """``min <= value <= max``; a bound may be a number, an ISO date or ``today``."""

    expect: Literal["between"]
    column: str
    min: int | float | str | None = None
    max: int | float | str | None = None

    @field_validator("min", "max")
    @classmethod
    def _bound(cls, value: int | float | str | None) -> int | float | str | None:
        if isinstance(value, str):
            if value == "today":
                return value
            if not _DATE.match(value):
                raise ValueError(f"expected a number, an ISO date or 'today', got {value!r}")
            date.fromisoformat(value)
        return value

    @model_validator(mode="after")
    def _some_bound(self) -> Between:
        if self.min is None and self.max is None:
            raise ValueError("give `min`, `max` or both")
        return self


class Regex(ExpectationBase):
    expect: Literal["regex"]
    column: str
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return value


class CitizenId(ExpectationBase):
    """GB 11643 citizen ID, as ``stdnum.cn.ric.is_valid`` (check digit, birth date, region)."""

    expect: Literal["citizen_id"]
    column: str


class CreditCode(ExpectationBase):
    """GB 32100 unified social credit code, as ``stdnum.cn.uscc.is_valid``."""

    expect: Literal["credit_code"]
    column: str


class PartyId(ExpectationBase):
    """A party: a valid citizen ID (a person) or a valid credit code (an organisation)."""

    expect: Literal["party_id"]
    column: str


class ExistsIn(ExpectationBase):
    """Each value is a key of another resource (any of ``in``, e.g. persons.citizen_id)."""

    expect: Literal["exists_in"]
    column: str
    resource: str | None = Field(default=None, pattern=CODE_PATTERN)
    key: str | None = Field(default=None, pattern=CODE_PATTERN)
    in_: tuple[str, ...] = Field(default=(), alias="in")

    @model_validator(mode="after")
    def _references(self) -> ExistsIn:
        if (self.resource is None) != (self.key is None):
            raise ValueError("`resource` and `key` go together")
        if bool(self.resource) == bool(self.in_):
            raise ValueError("give `resource` and `key`, or `in: [resource.key, ...]`")
        for item in self.in_:
            if not _REFERENCE.match(item):
                raise ValueError(f"`in` entries are resource.key, got {item!r}")
        return self

    @property
    def references(self) -> tuple[tuple[str, str], ...]:
        """(resource, key column) pairs the value may be found in."""
        if self.resource and self.key:
            return ((self.resource, self.key),)
        return tuple(tuple(item.split(".", 1)) for item in self.in_)  # type: ignore[misc]


class RowCountChange(ExpectationBase):
    """Row count within ``max_ratio`` of the published version's (none published: passes)."""

    expect: Literal["row_count_change"]
    max_ratio: float = Field(gt=0)

    @property
    def row_level(self) -> bool:
        return False


class NoSourceDuplicates(ExpectationBase):
    """The source delivered each key once in its batch (``_source_duplicates = 1``)."""

    expect: Literal["no_source_duplicates"]

    @property
    def columns(self) -> tuple[str, ...]:
        return ("_source_duplicates",)


Expectation = Annotated[
    NotNull
    | Unique
    | InSet
    | Between
    | Regex
    | CitizenId
    | CreditCode
    | PartyId
    | ExistsIn
    | RowCountChange
    | NoSourceDuplicates,
    Field(discriminator="expect"),
]


class ImpactRule(Strict):
    """The consumer-impact check (hub.quality.impact): a candidate that changes more than
    ``max_changed_share`` of a decision field's values against the published version (rows
    matched by key) is held for the provider's confirmation instead of published."""

    max_changed_share: float = Field(gt=0.0, le=1.0)
    min_rows: int = Field(
        default=1, ge=1, description="Fewer matched rows than this: never held (too few to say)."
    )
    samples: int = Field(default=5, ge=0, le=50, description="Sample keys per change kept.")


class Suite(Strict):
    """The quality suite of one resource."""

    resource: str = Field(pattern=CODE_PATTERN)
    description: str = ""
    expectations: tuple[Expectation, ...] = Field(min_length=1)
    impact: ImpactRule | None = None

    @model_validator(mode="after")
    def _rules_unique(self) -> Suite:
        seen: set[tuple[str, str | None]] = set()
        for item in self.expectations:
            label = (item.rule, item.column_label)
            if label in seen:
                raise ValueError(
                    f"two expectations are both {item.rule!r} on {item.column_label}: "
                    "give one a `name`"
                )
            seen.add(label)
        return self


_EXPECTATION_ADAPTER: TypeAdapter[Expectation] = TypeAdapter(Expectation)


def _check_against_catalog(
    path: Path, suite: Suite, catalog: Catalog, lines: dict[tuple[str | int, ...], int]
) -> list[CatalogProblem]:
    problems = []
    if path.stem != suite.resource:
        problems.append(
            CatalogProblem(path, lines.get(("resource",)), "resource", f"expected {path.stem}")
        )
    try:
        resource = catalog.resource(suite.resource)
    except KeyError:
        return [
            *problems,
            CatalogProblem(
                path, lines.get(("resource",)), "resource", f"no resource {suite.resource!r}"
            ),
        ]
    if suite.impact is not None and not resource.decision_fields:
        problems.append(
            CatalogProblem(
                path,
                lines.get(("impact",)),
                "impact",
                f"{suite.resource} names no decision_fields in its catalog entry to compare",
            )
        )
    fields = {f.name for f in resource.fields} | {
        "_batch_id",
        "_extracted_at",
        "_source_duplicates",
    }
    for index, item in enumerate(suite.expectations):
        where = ("expectations", index)
        for column in item.columns:
            if column not in fields:
                problems.append(
                    CatalogProblem(
                        path,
                        lines.get((*where, "column"), lines.get(where)),
                        f"expectations.{index}.column",
                        f"{suite.resource} has no field {column!r}",
                    )
                )
        if isinstance(item, ExistsIn):
            for other, key in item.references:
                try:
                    target = catalog.resource(other)
                    target.field(key)
                except KeyError as exc:
                    problems.append(
                        CatalogProblem(
                            path, lines.get(where), f"expectations.{index}", str(exc).strip("'\"")
                        )
                    )
                    continue
                del target
    return problems


def load_suite(path: Path, catalog: Catalog | None = None) -> Suite:
    """Read one suite file; with ``catalog``, also check its resource and columns exist.

    Raises SuiteError listing every problem (file, line, field, what was expected).
    """
    try:
        data, lines = _read_yaml(path)
    except FileNotFoundError as exc:
        raise SuiteError([CatalogProblem(path, None, "(file)", "no such file")]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise SuiteError(
            [CatalogProblem(path, line, "(document)", f"not valid YAML: {exc}")]
        ) from exc
    if not isinstance(data, dict):
        raise SuiteError([CatalogProblem(path, 1, "(document)", "expected a mapping of keys")])
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise SuiteError(_problems_from(path, exc, lines)) from exc
    if catalog is not None:
        problems = _check_against_catalog(path, suite, catalog, lines)
        if problems:
            raise SuiteError(problems)
    return suite


def load_suites(folder: Path, catalog: Catalog | None = None) -> dict[str, Suite]:
    """Every ``*.yml`` suite under ``folder`` by resource code.

    Raises SuiteError listing every problem of every file.
    """
    problems: list[CatalogProblem] = []
    suites: dict[str, Suite] = {}
    if not folder.is_dir():
        raise SuiteError([CatalogProblem(folder, None, "(folder)", "no such folder")])
    for path in sorted(folder.glob("*.yml")):
        try:
            suite = load_suite(path, catalog)
        except SuiteError as exc:
            problems.extend(exc.problems)
            continue
        suites[suite.resource] = suite
    if problems:
        raise SuiteError(problems)
    return suites
