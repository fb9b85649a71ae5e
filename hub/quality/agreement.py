"""Cross-source agreement (一数一源): the same person or enterprise, the same attributes.

A field that must equal an authoritative source names it in the catalog::

    - {name: owner_name, ..., agrees_with: [persons.name, enterprises.name], matched_by: owner_id}

``matched_by`` holds the identifier (a citizen ID or a credit code) that is the key of the
authoritative resource; ``agrees_with: [id_birth_date]`` compares a declared birth date with
the one the citizen ID encodes (GB 11643: characters 7-14). The check reads the published
versions (``shared``), compares in SQL in the warehouse (one join per pair, names trimmed,
NULL on either side not compared) and:

- replaces ``rejects."<resource>__agreement"``: one row per disagreeing record on the
  non-authoritative side, with both values, for both departments to see;
- appends one row per (resource, field, authority) to ``ops.agreement_results``: rows
  compared and disagreeing, by pair of departments.

It never blocks anything: the gate and publish do not read it, and the authoritative
source is never rejected by it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.catalog.models import ID_BIRTH_DATE, Catalog, Resource
from hub.storage.interface import Warehouse
from hub.storage.schema import table_ddl
from hub.storage.sql import literal, quote_ident

AGREEMENT_DDL = table_ddl("agreement_results")  # hub.storage.schema; made on open
REJECTS_SUFFIX = "__agreement"
SAMPLES = 5


class AgreementError(ValueError):
    """The catalog's agreement declarations do not fit (an unknown authority, a composite key)."""


@dataclass(frozen=True)
class Pair:
    """One declared comparison: ``resource.field`` against ``authority``."""

    resource: Resource
    field: str
    matched_by: str
    authority: str  # "persons.name" or "id_birth_date"
    authority_resource: Resource | None  # None for id_birth_date

    @property
    def authoritative_department(self) -> str:
        # the ID's own birth date: the registry that issued the ID, i.e. the provider of
        # the resource whose key the ID is; for a self-check that is the same department
        return (
            self.authority_resource.provider if self.authority_resource else self.resource.provider
        )


@dataclass(frozen=True)
class AgreementResult:
    resource: str
    field: str
    department: str
    authority: str
    authoritative_department: str
    compared: int
    disagreeing: int
    samples: list[dict[str, Any]]

    @property
    def share(self) -> float:
        return self.disagreeing / self.compared if self.compared else 0.0


def declared_pairs(catalog: Catalog) -> list[Pair]:
    """Every (field, authority) the catalog declares. Raises AgreementError."""
    pairs = []
    for resource in sorted(catalog.resources, key=lambda r: r.code):
        for spec in resource.fields:
            for target in spec.agrees_with:
                assert spec.matched_by is not None
                if target == ID_BIRTH_DATE:
                    pairs.append(Pair(resource, spec.name, spec.matched_by, target, None))
                    continue
                code, name = target.split(".", 1)
                if not catalog.has_resource(code):
                    raise AgreementError(f"{resource.code}.{spec.name}: no resource {code!r}")
                other = catalog.resource(code)
                other.field(name)
                if len(other.primary_key) != 1:
                    raise AgreementError(f"{target}: {code} has a composite key")
                if other.code == resource.code:
                    raise AgreementError(f"{resource.code}.{spec.name}: agrees with itself")
                pairs.append(Pair(resource, spec.name, spec.matched_by, target, other))
    return pairs


def _published(warehouse: Warehouse, code: str) -> bool:
    return bool(warehouse.table_columns("shared", code))


def _comparison(pair: Pair) -> tuple[str, str, str]:
    """(FROM ... JOIN ... clause, the authoritative value expression, disagree predicate)."""
    resource = pair.resource
    r_field, by = quote_ident(pair.field), quote_ident(pair.matched_by)
    source = f"shared.{quote_ident(resource.code)} AS r"
    if pair.authority_resource is None:
        value = f"substr(r.{by}, 7, 8)"
        declared = f"replace(CAST(r.{r_field} AS VARCHAR), '-', '')"
        where = f"r.{r_field} IS NOT NULL AND length(r.{by}) = 18"
        return f"FROM {source} WHERE {where}", value, f"{declared} <> {value}"
    other = pair.authority_resource
    key = quote_ident(other.primary_key[0])
    a_field = quote_ident(pair.authority.split(".", 1)[1])
    join = (
        f"FROM {source} JOIN shared.{quote_ident(other.code)} AS a ON a.{key} = r.{by} "
        f"WHERE r.{r_field} IS NOT NULL AND a.{a_field} IS NOT NULL"
    )
    value = f"trim(CAST(a.{a_field} AS VARCHAR))"
    return join, value, f"trim(CAST(r.{r_field} AS VARCHAR)) <> {value}"


def check_agreement(warehouse: Warehouse, catalog: Catalog, now: datetime) -> list[AgreementResult]:
    """Compare every declared pair whose both sides are published; replace the
    agreement rejects and append the results. Raises AgreementError."""
    check_id = f"agreement-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    results: list[AgreementResult] = []
    by_resource: dict[str, list[str]] = {}
    for pair in declared_pairs(catalog):
        resource = pair.resource
        if not _published(warehouse, resource.code):
            continue
        if pair.authority_resource and not _published(warehouse, pair.authority_resource.code):
            continue
        source, value, disagree = _comparison(pair)
        compared, disagreeing = warehouse.query(
            f"SELECT count(*), sum(CASE WHEN {disagree} THEN 1 ELSE 0 END) {source}"
        )[0]
        keys = [quote_ident(k) for k in resource.primary_key]
        key_text = ", ".join(f"CAST(r.{k} AS VARCHAR) AS {k}" for k in keys)
        r_field = quote_ident(pair.field)
        select = (
            f"SELECT {key_text}, CAST({_literal(pair.field)} AS VARCHAR) AS field, "
            f"CAST(r.{r_field} AS VARCHAR) AS value, "
            f"CAST({_literal(pair.authority)} AS VARCHAR) AS authority, "
            f"{value} AS authoritative_value, "
            f"CAST(r.{quote_ident(pair.matched_by)} AS VARCHAR) AS identifier, "
            f"CAST({_literal(resource.provider)} AS VARCHAR) AS department, "
            f"CAST({_literal(pair.authoritative_department)} AS VARCHAR) "
            f"AS authoritative_department {source} AND {disagree}"
        )
        by_resource.setdefault(resource.code, []).append(select)
        samples = [
            dict(zip([*resource.primary_key, "value", "authoritative_value"], row, strict=True))
            for row in warehouse.query(
                f"SELECT {', '.join(f'CAST(r.{k} AS VARCHAR)' for k in keys)}, "
                f"CAST(r.{r_field} AS VARCHAR), {value} {source} AND {disagree} "
                f"ORDER BY {', '.join(f'r.{k}' for k in keys)} LIMIT {SAMPLES}"
            )
        ]
        results.append(
            AgreementResult(
                resource.code,
                pair.field,
                resource.provider,
                pair.authority,
                pair.authoritative_department,
                int(compared),
                int(disagreeing or 0),
                samples,
            )
        )
    with warehouse.transaction():
        for code, selects in sorted(by_resource.items()):
            table = f"rejects.{quote_ident(code + REJECTS_SUFFIX)}"
            warehouse.execute(f"DROP TABLE IF EXISTS {table}")
            union = " UNION ALL ".join(f"({s})" for s in selects)
            warehouse.execute(
                f"CREATE TABLE {table} AS SELECT u.*, CAST({_literal(check_id)} AS VARCHAR) "
                f"AS _check_id FROM ({union}) AS u"
            )
        for item in results:
            warehouse.execute(
                "INSERT INTO ops.agreement_results (check_id, checked_at, resource, field, "
                "department, authority, authoritative_department, compared, disagreeing) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    check_id,
                    now,
                    item.resource,
                    item.field,
                    item.department,
                    item.authority,
                    item.authoritative_department,
                    item.compared,
                    item.disagreeing,
                ),
            )
    return results


def by_department_pair(results: list[AgreementResult]) -> list[dict[str, Any]]:
    """The results summed per (department, authoritative department)."""
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for item in results:
        row = pairs.setdefault(
            (item.department, item.authoritative_department),
            {
                "department": item.department,
                "authoritative_department": item.authoritative_department,
                "compared": 0,
                "disagreeing": 0,
                "attributes": [],
            },
        )
        row["compared"] += item.compared
        row["disagreeing"] += item.disagreeing
        row["attributes"].append(f"{item.resource}.{item.field}~{item.authority}")
    return [pairs[k] for k in sorted(pairs)]


def latest_results(warehouse: Warehouse) -> list[AgreementResult]:
    """The last check's results (the portal's quality page), none before any check."""
    if not warehouse.table_columns("ops", "agreement_results"):
        return []
    rows = warehouse.query(
        "SELECT resource, field, department, authority, authoritative_department, compared, "
        "disagreeing FROM ops.agreement_results WHERE check_id = (SELECT check_id FROM "
        "ops.agreement_results ORDER BY checked_at DESC, check_id DESC LIMIT 1) "
        "ORDER BY resource, field, authority"
    )
    return [
        AgreementResult(str(a), str(b), str(c), str(d), str(e), int(f), int(g), [])
        for a, b, c, d, e, f, g in rows
    ]


def _literal(text: str) -> str:
    return literal(text)
