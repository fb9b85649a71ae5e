"""What one grant's shared table holds: its columns, which of them are masked, its schema.

A grant covering all rows of a resource is served as one table (:func:`table_name`) whose
columns are, in catalog order, the granted fields in clear and the resource's personal
and sensitive fields outside the grant masked as the catalog says (the record API's rule,
:mod:`hub.serve.masking`). Grants with the same columns and masking have the same
*shape* and share the same files: the shape id is a digest of the resource, the columns,
the masked ones, their masking and the rule's version, so a change of the rule writes
new files instead of serving old ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pyarrow as pa

from hub.catalog.models import Resource, ResourceField, RowScope
from hub.demand import Grant
from hub.sharing.arrow_io import arrow_type

# names the masking the files were written with; bump it when the rule changes
MASKING_RULE = "hub.serve.masking/1"
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")


@dataclass(frozen=True)
class GrantShape:
    """The columns of a grant's table on ``resource``."""

    resource: Resource
    columns: tuple[str, ...]  # catalog order: granted fields and masked ones
    masked: tuple[str, ...]  # personal or sensitive fields outside the grant

    @classmethod
    def of(cls, resource: Resource, granted: Sequence[str]) -> GrantShape:
        """The shape of a grant of ``granted`` fields; raises KeyError for a field the
        resource does not have."""
        for name in granted:
            resource.field(name)
        chosen = set(granted)
        masked = tuple(f.name for f in resource.fields if f.is_personal and f.name not in chosen)
        columns = tuple(f.name for f in resource.fields if f.name in chosen or f.name in masked)
        return cls(resource, columns, masked)

    @classmethod
    def of_grant(cls, resource: Resource, grant: Grant) -> GrantShape:
        return cls.of(resource, grant.fields)

    @cached_property
    def shape_id(self) -> str:
        """16 hex digits naming the files of this shape."""
        rules = [str(self.resource.field(name).masking) for name in self.masked]
        text = json.dumps(
            [self.resource.code, list(self.columns), list(self.masked), rules, MASKING_RULE],
            separators=(",", ":"),
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def granted(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.masked)

    def arrow_schema(self) -> pa.Schema:
        """The schema of the table's files (masked fields are text)."""
        return pa.schema(
            [
                (
                    name,
                    pa.string()
                    if name in self.masked
                    else arrow_type(self.resource.field(name).type),
                )
                for name in self.columns
            ]
        )

    def spark_schema(self) -> dict[str, Any]:
        """The protocol's ``schemaString`` (Spark's JSON schema), parsed."""
        fields = []
        for name in self.columns:
            spec = self.resource.field(name)
            masked = name in self.masked
            fields.append(
                {
                    "name": name,
                    "type": "string" if masked else spark_type(spec.type),
                    "nullable": True if masked else spec.nullable,
                    "metadata": {"comment": spec.name_zh + ("（已脱敏）" if masked else "")},
                }
            )
        return {"type": "struct", "fields": fields}


def spark_type(field_type: str) -> str:
    """Spark's name of a catalog type (what ``schemaString`` says)."""
    simple = {
        "string": "string",
        "integer": "long",
        "boolean": "boolean",
        "date": "date",
        "timestamp": "timestamp",
    }
    if field_type in simple:
        return simple[field_type]
    found = _DECIMAL.match(field_type)
    if found is None:
        raise ValueError(f"no Spark type for the catalog type {field_type!r}")
    return f"decimal({found.group(1)},{found.group(2)})"


def is_bulk_grant(grant: Grant) -> bool:
    """Only a grant on all rows is a bulk table; an applicant-only grant is read one
    applicant at a time through the record API."""
    return grant.row_scope is RowScope.all


def table_name(grant: Grant) -> str:
    """The shared table of ``grant``: its id in lower case, ``-`` as ``_`` (Delta Sharing
    names are case-insensitive and may hold no ``.``)."""
    return grant.grant_id.lower().replace("-", "_")


def mask_column(spec: ResourceField, values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The one place bulk sharing masks: the catalog's rule for ``spec``
    (:func:`hub.serve.masking.mask_array`, as the record API masks)."""
    from hub.serve.masking import mask_array

    return mask_array(spec, values)
