"""Bulk export: the granted columns of a whole published version, under ONE grant.

Only a grant on all rows can be exported (an applicant-only grant is for one person at a
time). The export is audited before its first byte: it is the declared version, whole,
with the grant's columns, streamed as Parquet or Arrow IPC with flat memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

import pyarrow as pa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from hub.catalog.models import Resource, RowScope
from hub.demand.calendar import utc_now
from hub.serve.access import Refusal
from hub.serve.policy import Reader, audit, call_of, reader, services_of
from hub.serve.records import CALLER_HEADERS, about, version_info
from hub.serve.sources import RecordSource, VersionInfo, served_schema


def export_router() -> APIRouter:
    router = APIRouter()

    @router.get(
        "/v1/resources/{code}/export",
        name="export",
        tags=["read"],
        openapi_extra={"parameters": CALLER_HEADERS},
    )
    async def export(
        code: str,
        request: Request,
        who: Annotated[Reader, Depends(reader)],
        format: Annotated[Literal["parquet", "arrow"], Query()] = "parquet",
    ) -> Response:
        """The granted columns of the whole published version, streamed as Parquet or
        Arrow IPC (only under a grant covering all rows)."""
        services = services_of(request)
        call = call_of(request)
        call.action, call.resource = f"export:{format}", code[:100]
        view = services.access.select(
            who.application, code, grant_id=who.grant_id, scenario=who.scenario
        )
        call.grant_id = view.grant_id
        if view.row_scope is not RowScope.all:
            raise Refusal(
                403,
                "forbidden",
                f"grant {view.grant_id} on {code} covers only applicants' records: "
                "a bulk export needs a grant on all rows",
            )
        resource = view.resource
        info = await version_info(services, resource)
        call.version, call.fields, call.row_count = info.version, view.fields, info.rows
        await audit(services, call, 200, f"{code}:v{info.version}:{','.join(view.fields)}".encode())
        media = (
            "application/vnd.apache.parquet"
            if format == "parquet"
            else "application/vnd.apache.arrow.stream"
        )
        facts = about(resource, info, utc_now())
        headers = {
            "X-Request-Id": call.request_id,
            "X-Hub-Version": str(info.version),
            "X-Hub-Grant-Id": view.grant_id,
            "X-Hub-Data-As-Of": facts["data_as_of"] or "",
            "X-Hub-Gate-Run": info.gate_run_id,
            "X-Hub-Stale": str(facts["stale"]).lower(),
            # disputes (疑义): how many records are flagged now, and where to read which
            "X-Hub-Disputed-Records": str(services.disputes.count(code)),
            "X-Hub-Disputes": f"/v1/resources/{code}/disputes",
            "Content-Disposition": f'attachment; filename="{code}-v{info.version}.{format}"',
        }
        stream = export_stream(services.source, resource, info, list(view.fields), format)
        return StreamingResponse(stream, media_type=media, headers=headers)

    return router


class _Chunks:
    """A write-only file that hands what was written to a generator."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def export_stream(
    source: RecordSource, resource: Resource, info: VersionInfo, columns: list[str], fmt: str
) -> Iterator[bytes]:
    """The version's rows as Parquet or Arrow IPC, a record batch at a time (no rows: a
    valid empty file with the served schema, which every batch of the sources has)."""
    import pyarrow.parquet as pq

    sink = _Chunks()
    output = pa.PythonFile(sink, mode="w")
    schema = served_schema(resource, columns)
    writer: Any = (
        pq.ParquetWriter(output, schema, compression="zstd")
        if fmt == "parquet"
        else pa.ipc.new_stream(output, schema)
    )
    for batch in source.batches(resource, info, columns, 50_000):
        writer.write_batch(batch)
        if chunk := sink.drain():
            yield chunk
    writer.close()
    if chunk := sink.drain():
        yield chunk
