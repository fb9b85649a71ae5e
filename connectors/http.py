"""HTTP connector: a paged JSON API with bearer-token auth (the registry's persons and
enterprises).

The API pages in ``(cursor, key)`` order with an opaque ``after`` cursor and returns
``{"data": [...], "next": cursor or null}``; ``updated_since`` (inclusive) restricts a read
to what changed. Incremental reads start ``overlap_minutes`` before the watermark (late
commits) and :class:`~connectors.base.IncrementalCursor` drops the rows already landed.
Records whose ``source.tombstone_field`` is true become ``_op = "delete"`` rows. 429, 5xx
and connection errors are retried with exponential backoff, honouring ``Retry-After``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyarrow as pa

from connectors.base import (
    OP_DELETE,
    OP_UPSERT,
    ConnectorError,
    IncrementalCursor,
    QuarantinedRow,
    SyncState,
    arrow_schema,
    arrow_type,
    parse_text_columns,
)
from hub.catalog.models import Resource, ResourceField
from hub.settings import Settings

MAX_PAGE = 5000  # the API's largest page
MAX_RETRY_AFTER_S = 300.0  # a server asking for longer is treated as down
_TRUE_TEXT = frozenset({"true", "1", "yes", "y", "t", "是"})


@dataclass(frozen=True)
class Page:
    """One page of records and the URL it came from (no token in it)."""

    url: str
    records: list[dict[str, Any]]


class HttpConnector:
    """Reads resources from a paged JSON API (httpx, bearer token).

    ``base_url`` is the API root (``http://host:port/api/v1``); each resource's
    ``source.path`` is appended. ``page_size`` defaults to ``min(batch_rows, 5000)``;
    ``sleep`` is called between retries and ``transport`` replaces the network (both
    injectable for tests). Call :meth:`close` (or use ``with``) when done.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None,
        settings: Settings,
        *,
        page_size: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        where_configured: str = "the API token setting (HUB_SECRET_<NAME>)",
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConnectorError(f"expected an http(s):// API base URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self.page_size = max(1, min(page_size or settings.batch_rows, MAX_PAGE))
        self.sleep = sleep
        self.where_configured = where_configured
        self.has_token = bool(token)
        self.retries_used = 0
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=settings.http_timeout_s,
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_uri(
        cls, uri: str, token: str | None, settings: Settings, **options: Any
    ) -> HttpConnector:
        """A connector for an API base URL and its token. Raises ConnectorError."""
        return cls(uri, token, settings, **options)

    @classmethod
    def from_settings(
        cls, settings: Settings, connection: str = "registry", **options: Any
    ) -> HttpConnector:
        """A connector for a named connection; the token is ``settings.secret(connection)``.

        Raises SettingsError when the connection is not configured or the token is a
        placeholder, ConnectorError for a bad URL.
        """
        options.setdefault("where_configured", f"HUB_SECRET_{connection.upper()}")
        return cls(
            settings.connection(connection), settings.secret(connection), settings, **options
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> HttpConnector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------ Connector protocol

    def extract(self, resource: Resource, state: SyncState, *, full: bool) -> HttpExtraction:
        """Start reading ``resource``: everything when ``full`` (or on the first run), else
        the records changed since the watermark minus the overlap window.

        Raises ConnectorError when the catalog entry lacks ``source.path`` or
        ``source.cursor``; request errors surface while iterating the batches.
        """
        _path(resource)
        overlap = timedelta(minutes=self.settings.overlap_minutes)
        cursor = IncrementalCursor(resource, state, overlap, full=full)
        return HttpExtraction(self, resource, state, cursor)

    def keys(self, resource: Resource) -> Iterator[pa.RecordBatch]:
        """The primary keys of every live (not deleted) record, in batches of at most
        ``settings.batch_rows``. Raises ConnectorError."""
        specs = [resource.field(name) for name in resource.primary_key]
        schema = pa.schema([arrow_schema(resource, with_op=False).field(s.name) for s in specs])
        tombstone = resource.source.tombstone_field
        pending: list[list[str | None]] = [[] for _ in specs]
        for page in self.pages(_path(resource), {}):
            for record in page.records:
                if tombstone is not None and _is_true(record.get(tombstone)):
                    continue
                for values, spec in zip(pending, specs, strict=True):
                    values.append(_as_text(_lookup(record, spec)[0]))
            if len(pending[0]) >= self.settings.batch_rows:
                yield from _key_batches(pending, specs, schema, self.settings.batch_rows)
                pending = [[] for _ in specs]
        if pending[0]:
            yield from _key_batches(pending, specs, schema, self.settings.batch_rows)

    # ------------------------------------------------------------ requests

    def pages(self, path: str, params: dict[str, str]) -> Iterator[Page]:
        """Every page of ``path`` with ``params``, following ``next``. Raises ConnectorError."""
        query = {**params, "limit": str(self.page_size)}
        while True:
            url, payload = self._get(path, query)
            if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
                raise ConnectorError(f"{url}: expected {{'data': [...], 'next': ...}}")
            records = payload["data"]
            if not all(isinstance(r, dict) for r in records):
                raise ConnectorError(f"{url}: every item of 'data' must be a JSON object")
            yield Page(url, records)
            following = payload.get("next")
            if not following:
                return
            if not isinstance(following, str):
                raise ConnectorError(f"{url}: 'next' must be a string or null")
            query = {**query, "after": following}

    def _get(self, path: str, params: dict[str, str]) -> tuple[str, Any]:
        """GET with retries on 429, 5xx and connection errors (``settings.http_retries``,
        exponential backoff from ``http_backoff_s``, ``Retry-After`` honoured).

        Returns (URL, decoded JSON). Raises ConnectorError for a refused token, another
        4xx, a body that is not JSON, or when retries run out.
        """
        retries = self.settings.http_retries
        attempt = 0
        while True:
            request = self._client.build_request("GET", path, params=params)
            url = str(request.url)
            wait = self.settings.http_backoff_s * 2**attempt
            try:
                response = self._client.send(request)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status in (401, 403):
                    raise ConnectorError(self._refused(url, status))
                if status == 429 or status >= 500:
                    failure = f"HTTP {status}"
                    asked = _retry_after(response.headers.get("retry-after"))
                    if asked is not None:
                        wait = asked
                elif status >= 400:
                    raise ConnectorError(f"{url}: HTTP {status}: {_detail(response)}")
                else:
                    try:
                        return url, response.json()
                    except ValueError as exc:
                        raise ConnectorError(f"{url}: the response is not JSON ({exc})") from exc
            if attempt >= retries:
                raise ConnectorError(f"{url}: gave up after {attempt + 1} attempt(s): {failure}")
            attempt += 1
            self.retries_used += 1
            self.sleep(wait)

    def _refused(self, url: str, status: int) -> str:
        if not self.has_token:
            return (
                f"{url}: HTTP {status}: the API requires a bearer token and none is "
                f"configured; set {self.where_configured}"
            )
        return f"{url}: HTTP {status}: the bearer token was refused; check {self.where_configured}"


class HttpExtraction:
    """One read of one resource. Iterate :meth:`batches` once, then read the rest."""

    def __init__(
        self,
        connector: HttpConnector,
        resource: Resource,
        state: SyncState,
        cursor: IncrementalCursor,
    ) -> None:
        self.connector = connector
        self.resource = resource
        self.state = state
        self.cursor = cursor
        self.path = _path(resource)
        self.source = f"{connector.base_url}{self.path}"
        self.quarantined: list[QuarantinedRow] = []
        self.notes: list[str] = []
        self.rows_read = 0
        self.rows_already_landed = 0
        self._noted: set[str] = set()

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Typed batches (catalog schema plus ``_op``) of at most ``settings.batch_rows``
        rows; rows already landed in the overlap window are dropped.

        Raises ConnectorError when the API refuses the token, answers an error or cannot
        be reached after the retries.
        """
        params: dict[str, str] = {}
        since = self.cursor.since
        if since is not None:
            params["updated_since"] = since.isoformat()
        limit = self.connector.settings.batch_rows
        retries_before = self.connector.retries_used
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for page in self.connector.pages(self.path, params):
            self.rows_read += len(page.records)
            parsed = self._parse(page)
            landed = self.cursor.filter(parsed)
            self.rows_already_landed += parsed.num_rows - landed.num_rows
            if landed.num_rows == 0:
                continue
            if pending_rows + landed.num_rows > limit and pending:
                yield from _rechunk(pending, limit)
                pending, pending_rows = [], 0
            pending.append(landed)
            pending_rows += landed.num_rows
        if pending:
            yield from _rechunk(pending, limit)
        retries = self.connector.retries_used - retries_before
        if retries:
            self.notes.append(f"{retries} request(s) retried (HTTP 429/5xx or connection error)")
        if self.rows_already_landed:
            self.notes.append(
                f"{self.rows_already_landed} record(s) in the overlap window were already "
                "landed and were skipped"
            )
        if since is not None:
            self.notes.append(f"incremental read from {since.isoformat(sep=' ')} (overlap)")

    def next_state(self) -> SyncState:
        """The new watermark and overlap-window boundary, runs + 1."""
        return self.cursor.next_state(self.state)

    def watermark_range(self) -> tuple[str | None, str | None]:
        """Lowest and highest cursor values read."""
        return self.cursor.watermark_range()

    # ------------------------------------------------------------ records -> Arrow

    def _note_once(self, key: str, text: str) -> None:
        if key not in self._noted:
            self._noted.add(key)
            self.notes.append(text)

    def _parse(self, page: Page) -> pa.RecordBatch:
        """A page's records as a typed batch, a column at a time: each field is read under
        the one name it carries in the page (per record only when a page mixes a field's
        names), so no Python call is made per record and field."""
        resource = self.resource
        records = page.records
        cursor_spec = resource.field(self.cursor.cursor)
        tombstone = resource.source.tombstone_field
        delete_keeps = {*resource.primary_key, cursor_spec.name}
        present = self._check_names(page)
        texts = {spec.name: _texts(records, spec, present) for spec in resource.fields}
        deleted = (
            [_is_true(record.get(tombstone)) for record in records]
            if tombstone is not None
            else [False] * len(records)
        )
        indexes: list[int] = []
        for index, cursor_value in enumerate(texts[cursor_spec.name]):
            if cursor_value is None or not cursor_value.strip():
                # without a cursor value the row cannot be placed; quarantine, not abort
                self.quarantined.append(
                    QuarantinedRow(
                        page.url,
                        index,
                        f"field {cursor_spec.name}: expected {cursor_spec.type}, got no value",
                        json.dumps(records[index], ensure_ascii=False, default=str),
                    )
                )
                continue
            indexes.append(index)
        columns: dict[str, list[str | None]] = {}
        if len(indexes) == len(records) and not any(deleted):
            columns = texts
        else:
            for spec in resource.fields:
                values = texts[spec.name]
                if spec.name in delete_keeps:
                    columns[spec.name] = [values[i] for i in indexes]
                else:  # a delete needs only its key and cursor
                    columns[spec.name] = [None if deleted[i] else values[i] for i in indexes]
        ops = [OP_DELETE if deleted[i] else OP_UPSERT for i in indexes]
        parsed = parse_text_columns(
            resource,
            {name: pa.array(values, type=pa.string()) for name, values in columns.items()},
            origin=page.url,
            num_rows=len(indexes),
            locate=lambda i: (
                indexes[i],
                json.dumps(records[indexes[i]], ensure_ascii=False, default=str),
            ),
            ops=pa.array(ops, type=pa.string()),
        )
        self.quarantined.extend(parsed.quarantined)
        return parsed.batch

    def _check_names(self, page: Page) -> set[str]:
        """Note (once) fields found under an alias, missing fields and unknown fields;
        returns every name the page's records carry."""
        present: set[str] = set()
        if not page.records:
            return present
        for record in page.records:
            present.update(record)
        known = {self.resource.source.tombstone_field}
        for spec in self.resource.fields:
            known.update(spec.source_names)
            found = next((name for name in spec.source_names if name in present), None)
            if found is None:
                self._note_once(
                    f"missing:{spec.name}",
                    f"{self.source}: field {spec.source_names[0]!r} ({spec.name}) is absent "
                    "from the records: left empty",
                )
            elif found != spec.source_names[0]:
                self._note_once(
                    f"alias:{found}",
                    f"{self.source}: field {found!r} read as {spec.source_names[0]!r} "
                    f"({spec.name}); renamed in the source",
                )
        for name in sorted(present - {n for n in known if n is not None}):
            self._note_once(f"unknown:{name}", f"{self.source}: unknown field {name!r} ignored")
        return present


# ---------------------------------------------------------------- helpers


def _path(resource: Resource) -> str:
    if resource.source.path is None:
        raise ConnectorError(f"{resource.code}: an http source needs source.path")
    return "/" + resource.source.path.lstrip("/")


def _lookup(record: dict[str, Any], spec: ResourceField) -> tuple[Any, str | None]:
    """The value of a field and the name it was found under (None: absent)."""
    for name in spec.source_names:
        if name in record:
            return record[name], name
    return None, None


def _texts(
    records: list[dict[str, Any]], spec: ResourceField, present: set[str]
) -> list[str | None]:
    """The field's value in each record as text (None: absent), as ``_lookup`` finds it."""
    names = [name for name in spec.source_names if name in present]
    if not names:
        return [None] * len(records)
    if len(names) == 1:
        name = names[0]
        values = [record.get(name) for record in records]
    else:  # the page mixes the field's names: the first each record carries
        values = [_lookup(record, spec)[0] for record in records]
    return [v if v is None or type(v) is str else _as_text(v) for v in values]


def _as_text(value: Any) -> str | None:
    """A JSON value as the text ``parse_text_columns`` types."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _is_true(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_TEXT
    return False


def _retry_after(value: str | None) -> float | None:
    """Seconds asked by a Retry-After header (delta-seconds or HTTP date), capped."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _detail(response: httpx.Response) -> str:
    """The API's error message, short (never the request headers)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("error") or body)[:200]
    return str(body)[:200]


def _rechunk(batches: list[pa.RecordBatch], limit: int) -> Iterator[pa.RecordBatch]:
    """Pages joined into batches of at most ``limit`` rows."""
    table = pa.Table.from_batches(batches).combine_chunks()
    yield from table.to_batches(max_chunksize=limit)


def _key_batches(
    values: list[list[str | None]],
    specs: list[ResourceField],
    schema: pa.Schema,
    limit: int,
) -> Iterator[pa.RecordBatch]:
    arrays = []
    for column, spec in zip(values, specs, strict=True):
        text = pa.array(column, type=pa.string())
        target = arrow_type(spec.type)
        try:
            arrays.append(text if target == pa.string() else text.cast(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ConnectorError(f"key field {spec.name}: expected {spec.type}: {exc}") from exc
    table = pa.Table.from_arrays(arrays, schema=schema)
    yield from table.to_batches(max_chunksize=limit)


__all__ = ["HttpConnector", "HttpExtraction", "Page"]
