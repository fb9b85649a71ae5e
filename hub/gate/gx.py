"""The Great Expectations side of the gate: suites, validation results and Data Docs.

The numbers come from SQL pushed down to the warehouse (:mod:`hub.gate.pushdown`); this
module dresses them as GX Core 1.x objects so that the user-facing interface is GX's:

- each YAML suite becomes a GX ``ExpectationSuite`` of built-in expectations where one
  exists (not null, unique, in set, between, regex, table row count between) and of the
  hub's own column-map expectations for what GX lacks (citizen ID, credit code, party,
  reference). ``severity: error`` maps to GX's ``critical``;
- the computed counts become ``ExpectationValidationResult`` objects in GX's SUMMARY
  result format, gathered in an ``ExpectationSuiteValidationResult``;
- GX's site builder renders them into Data Docs under ``<HUB_HOME>/gate/docs``. Suites and
  validation results are kept as GX JSON under ``<HUB_HOME>/gate/gx``, so the index lists
  past runs (the newest :data:`INDEX_RUNS`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.core import ExpectationSuite
from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
    ExpectationValidationResult,
)
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    FilesystemStoreBackendDefaults,
)
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from great_expectations.expectations.expectation import (
    ColumnMapExpectation,
    Expectation,
)
from great_expectations.render.view.view import DefaultJinjaView
from jinja2 import FileSystemBytecodeCache

from hub.gate.suites import (
    Between,
    CitizenId,
    CreditCode,
    ExistsIn,
    ExpectationBase,
    InSet,
    NoSourceDuplicates,
    NotNull,
    PartyId,
    Regex,
    RowCountChange,
    Suite,
    Unique,
)

SITE = "hub_gate"
INDEX_RUNS = 200
_SEVERITY = {"error": "critical", "warning": "warning"}


class ExpectColumnValuesToBeValidCitizenId(ColumnMapExpectation):
    """Expect values to be GB 11643 citizen ID numbers, as python-stdnum ``cn.ric.is_valid``.

    Check digit, a real birth date and a region code known in the birth year.
    """

    map_metric = "column_values.valid_cn_ric"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly",)


class ExpectColumnValuesToBeValidCreditCode(ColumnMapExpectation):
    """Expect values to be GB 32100 unified social credit codes (``cn.uscc.is_valid``)."""

    map_metric = "column_values.valid_cn_uscc"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly",)


class ExpectColumnValuesToBeValidPartyId(ColumnMapExpectation):
    """Expect values to be a valid citizen ID or a valid unified social credit code."""

    map_metric = "column_values.valid_cn_party"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly",)


class ExpectColumnValuesToExistInResource(ColumnMapExpectation):
    """Expect values to be keys of another shared resource (``references``: resource.key)."""

    references: list[str]
    map_metric = "column_values.exist_in_resource"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly", "references")


def _gx(name: str, **kwargs: Any) -> Expectation:
    """GX's built-in expectation class ``name`` (typed loosely: GX's stubs are partial)."""
    expectation: Expectation = getattr(gxe, name)(**kwargs)
    return expectation


def _describe(item: ExpectationBase, what: str) -> str:
    share = "" if item.mostly >= 1 else f", at least {item.mostly:.1%} of non-null values"
    return f"{what}{share} (severity: {item.severity})"


def gx_expectation(
    item: ExpectationBase, *, today: date, published_rows: int | None
) -> Expectation:
    """The GX expectation for one suite entry (dates like ``today`` already resolved)."""
    common: dict[str, Any] = {
        "severity": _SEVERITY[item.severity],
        "meta": {"rule": item.rule, "hub_severity": item.severity},
    }
    mostly: dict[str, Any] = {"mostly": item.mostly}
    if isinstance(item, NotNull):
        return _gx("ExpectColumnValuesToNotBeNull", column=item.column, **mostly, **common)
    if isinstance(item, Unique):
        if item.column:
            return _gx("ExpectColumnValuesToBeUnique", column=item.column, **mostly, **common)
        return _gx(
            "ExpectCompoundColumnsToBeUnique",
            column_list=list(item.key),
            ignore_row_if="any_value_is_missing",
            **mostly,
            **common,
        )
    if isinstance(item, InSet):
        return _gx(
            "ExpectColumnValuesToBeInSet",
            column=item.column,
            value_set=list(item.values),
            **mostly,
            **common,
        )
    if isinstance(item, Between):

        def bound(value: int | float | str | None) -> Any:
            return today.isoformat() if value == "today" else value

        return _gx(
            "ExpectColumnValuesToBeBetween",
            column=item.column,
            min_value=bound(item.min),
            max_value=bound(item.max),
            **mostly,
            **common,
        )
    if isinstance(item, Regex):
        return _gx(
            "ExpectColumnValuesToMatchRegex",
            column=item.column,
            regex=item.pattern,
            **mostly,
            **common,
        )
    if isinstance(item, CitizenId):
        return ExpectColumnValuesToBeValidCitizenId(
            column=item.column,
            description=_describe(item, f"{item.column}: valid GB 11643 citizen ID numbers"),
            **mostly,
            **common,
        )
    if isinstance(item, CreditCode):
        return ExpectColumnValuesToBeValidCreditCode(
            column=item.column,
            description=_describe(item, f"{item.column}: valid GB 32100 credit codes"),
            **mostly,
            **common,
        )
    if isinstance(item, PartyId):
        return ExpectColumnValuesToBeValidPartyId(
            column=item.column,
            description=_describe(item, f"{item.column}: valid citizen IDs or credit codes"),
            **mostly,
            **common,
        )
    if isinstance(item, ExistsIn):
        references = [f"{r}.{k}" for r, k in item.references]
        return ExpectColumnValuesToExistInResource(
            column=item.column,
            references=references,
            description=_describe(item, f"{item.column}: found in {' or '.join(references)}"),
            **mostly,
            **common,
        )
    if isinstance(item, RowCountChange):
        if published_rows is None:
            return _gx(
                "ExpectTableRowCountToBeBetween",
                min_value=0,
                description=f"no published version yet; later: within ±{item.max_ratio:.0%} "
                f"of the published row count (severity: {item.severity})",
                **common,
            )
        return _gx(
            "ExpectTableRowCountToBeBetween",
            min_value=int(published_rows * (1 - item.max_ratio)),
            max_value=int(published_rows * (1 + item.max_ratio)),
            description=f"row count within ±{item.max_ratio:.0%} of the published "
            f"{published_rows:,} (severity: {item.severity})",
            **common,
        )
    if isinstance(item, NoSourceDuplicates):
        return _gx(
            "ExpectColumnValuesToBeInSet",
            column="_source_duplicates",
            value_set=[1],
            description=_describe(item, "each key delivered once by the source"),
            **mostly,
            **common,
        )
    raise TypeError(f"no GX expectation for {item.rule!r}")  # pragma: no cover


def _cache_compiled_templates(folder: Path) -> None:
    """Keep GX's compiled Jinja templates on disk between processes.

    Each GX page view builds its own Jinja environment and compiles its templates again,
    about a second per process; a bytecode cache on every view's environment saves that.
    """
    if getattr(DefaultJinjaView, "_hub_cache", None) == folder:
        return
    folder.mkdir(parents=True, exist_ok=True)
    cache = FileSystemBytecodeCache(str(folder))
    original = getattr(DefaultJinjaView, "_hub_original_init", DefaultJinjaView.__init__)

    def init_with_cache(view: DefaultJinjaView, *args: Any, **kwargs: Any) -> None:
        original(view, *args, **kwargs)
        view.env.bytecode_cache = cache

    DefaultJinjaView._hub_original_init = original  # type: ignore[attr-defined]
    DefaultJinjaView.__init__ = init_with_cache  # type: ignore[method-assign, assignment]
    DefaultJinjaView._hub_cache = folder  # type: ignore[attr-defined]


class DataDocs:
    """A GX context whose stores and Data Docs site live under ``<home>/gate``."""

    def __init__(self, home: Path) -> None:
        self.docs_dir = home / "gate" / "docs"
        store_root = home / "gate" / "gx"
        self.docs_dir.mkdir(parents=True, exist_ok=True)
        store_root.mkdir(parents=True, exist_ok=True)
        defaults = FilesystemStoreBackendDefaults(root_directory=str(store_root))
        defaults.data_docs_sites = {
            SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(self.docs_dir),
                },
                "site_index_builder": {
                    "class_name": "DefaultSiteIndexBuilder",
                    "validation_results_limit": INDEX_RUNS,
                },
            }
        }
        _cache_compiled_templates(store_root / "jinja_cache")
        config = DataContextConfig(store_backend_defaults=defaults)
        self.context = gx.get_context(project_config=config, mode="ephemeral")
        self._built: list[ExpectationSuiteIdentifier | ValidationResultIdentifier] = []

    def record(
        self,
        suite: ExpectationSuite,
        result: ExpectationSuiteValidationResult,
        run_name: str,
        run_time: datetime,
    ) -> ValidationResultIdentifier:
        """Store the suite and its validation result for the next :meth:`build`."""
        self.context.suites.add_or_update(suite)
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
            run_id=RunIdentifier(run_name=run_name, run_time=run_time),
            batch_identifier=f"audit.{suite.name}",
        )
        self.context.validation_results_store.set(key, result)
        self._built += [ExpectationSuiteIdentifier(name=suite.name), key]
        return key

    def build(self) -> None:
        """Render the pages of everything recorded since the last build, and the index."""
        if self._built:
            built: Any = self._built  # GX's hint wants one kind of identifier; it takes both
            self.context.build_data_docs(site_names=[SITE], resource_identifiers=built)
            self._built = []

    def page(self, key: ValidationResultIdentifier) -> Path:
        """The HTML file of one validation result."""
        urls = self.context.get_docs_sites_urls(resource_identifier=key, site_name=SITE)
        return Path(unquote(urlsplit(urls[0]["site_url"]).path))


def suite_result(
    name: str,
    results: Sequence[ExpectationValidationResult],
    *,
    passed: bool,
    run_name: str,
    run_time: datetime,
    table: str,
    engine: str,
) -> ExpectationSuiteValidationResult:
    """The GX suite result; ``success`` is the gate's verdict (every error expectation met)."""
    evaluated = len(results)
    successful = sum(1 for r in results if r.success)
    return ExpectationSuiteValidationResult(
        success=passed,
        results=list(results),
        suite_name=name,
        statistics={
            "evaluated_expectations": evaluated,
            "successful_expectations": successful,
            "unsuccessful_expectations": evaluated - successful,
            "success_percent": 100.0 * successful / evaluated if evaluated else None,
        },
        meta={
            "great_expectations_version": gx.__version__,
            "run_id": {"run_name": run_name, "run_time": run_time.isoformat()},
            "validation_time": run_time.isoformat(),
            "batch_spec": {"table": table, "warehouse": engine, "data_asset_name": table},
            "active_batch_definition": {
                "datasource_name": "warehouse",
                "data_connector_name": "hub_gate",
                "data_asset_name": table,
                "batch_identifiers": {},
            },
            "checkpoint_name": "hub_gate",
        },
    )


def column_result(
    expectation: Expectation,
    *,
    success: bool,
    element_count: int,
    nonmissing: int,
    unexpected_count: int,
    samples: list[str],
) -> ExpectationValidationResult:
    """A column-map result in GX's SUMMARY format."""
    missing = element_count - nonmissing
    base = nonmissing or 1
    return ExpectationValidationResult(
        success=success,
        expectation_config=expectation.configuration,
        result={
            "element_count": element_count,
            "unexpected_count": unexpected_count,
            "unexpected_percent": 100.0 * unexpected_count / base,
            "partial_unexpected_list": samples,
            "missing_count": missing,
            "missing_percent": 100.0 * missing / element_count if element_count else None,
            "unexpected_percent_total": (
                100.0 * unexpected_count / element_count if element_count else None
            ),
            "unexpected_percent_nonmissing": 100.0 * unexpected_count / base,
        },
    )


def table_result(
    expectation: Expectation, *, success: bool, observed_value: int
) -> ExpectationValidationResult:
    """A table-level result (row count)."""
    return ExpectationValidationResult(
        success=success,
        expectation_config=expectation.configuration,
        result={"observed_value": observed_value},
    )


def not_run_result(expectation: Expectation, reason: str) -> ExpectationValidationResult:
    """An expectation that could not be evaluated: unsuccessful, with the reason."""
    return ExpectationValidationResult(
        success=False,
        expectation_config=expectation.configuration,
        exception_info={
            "raised_exception": True,
            "exception_message": reason,
            "exception_traceback": None,
        },
    )


def gx_suite(suite: Suite, expectations: Sequence[Expectation]) -> ExpectationSuite:
    """The GX suite named after the resource."""
    # given whole: add_expectation would write the stored suite once per expectation
    return ExpectationSuite(
        name=suite.resource,
        expectations=list(expectations),
        meta={"description": suite.description},
    )
