"""How a personal field outside a grant is shown: masked so that nothing of it leaks.

The catalog says per field (``masking`` in ``catalogs/resources/*.yml``):

- ``redact`` (the default for personal and sensitive fields): the value becomes
  :data:`REDACTED` whatever it was. Nothing of it shows, not even its length; a short or
  low-cardinality value (sex, ethnicity, a code, a two-character name) can only be
  masked this way, because any character kept would tell it.
- ``partial``: for long identifiers and addresses, where a counter officer compares the
  ends with a paper in hand: the first and last :data:`PARTIAL_KEEP` characters stay and
  the rest become ``*``, but only when the value has at least :data:`PARTIAL_MIN_LENGTH`
  characters; a shorter value is redacted.

A missing value stays missing (``null`` says only that there is nothing to hide). A masked
field is never usable as a filter, sort key, cursor or match: the API refuses filters on
fields outside the grant and orders pages by the key inside opaque cursors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from hub.catalog.models import Masking, ResourceField

REDACTED = "***"
PARTIAL_KEEP = 2
PARTIAL_MIN_LENGTH = 15


def mask_value(field: ResourceField, value: object) -> str | None:
    """``value`` of ``field`` as a reader outside the grant sees it."""
    if value is None:
        return None
    if field.masking is Masking.partial:
        text = str(value)
        if len(text) >= PARTIAL_MIN_LENGTH:
            hidden = len(text) - 2 * PARTIAL_KEEP
            return text[:PARTIAL_KEEP] + "*" * hidden + text[-PARTIAL_KEEP:]
    return REDACTED


def mask_values(field: ResourceField, values: Sequence[Any]) -> list[str | None]:
    return [mask_value(field, v) for v in values]


def mask_array(field: ResourceField, array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """An Arrow column masked as :func:`mask_value` does, as strings."""
    values = array.to_pylist()
    return pa.array(mask_values(field, values), type=pa.string())
