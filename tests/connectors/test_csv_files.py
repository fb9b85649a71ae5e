"""CSV files in bounded batches with exact line numbers (connectors.csv_files), read from
a local file: no server (the SFTP drops read the same way, tests/connectors/sftp)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from connectors.base import ConnectorError
from connectors.csv_files import CsvDropFile
from hub.catalog import Catalog, Resource

HEADER = "公民身份号码,姓名,险种,参保单位统一社会信用代码,参保日期,参保状态,更新时间"
ROW = "{},张三,企业职工基本养老保险,91360200MA35XXXX0A,2020-01-01,参保缴费,2025-01-01 09:00:00"


@pytest.fixture
def enrollments(catalog: Catalog) -> Resource:
    return catalog.resource("social_insurance_enrollments")


def read(
    path: Path, resource: Resource, *, encoding: str = "utf-8", batch_rows: int = 1000
) -> tuple[CsvDropFile, pa.Table | None]:
    reader = CsvDropFile(
        path, origin=path.name, encoding=encoding, resource=resource, batch_rows=batch_rows
    )
    batches = list(reader.batches())
    return reader, pa.Table.from_batches(batches) if batches else None


def test_batches_are_bounded_and_rows_keep_their_order(
    tmp_path: Path, enrollments: Resource
) -> None:
    ids = [f"36020219900101{i:04d}" for i in range(25)]
    path = tmp_path / "enrollments.csv"
    path.write_text("\n".join([HEADER, *(ROW.format(i) for i in ids)]) + "\n", encoding="gbk")

    reader, table = read(path, enrollments, encoding="gb18030", batch_rows=10)

    assert table is not None
    assert [b.num_rows for b in table.to_batches()] == [10, 10, 5]
    assert table.column("citizen_id").to_pylist() == ids
    assert (reader.rows_read, reader.quarantined) == (25, [])


def test_quarantined_rows_name_the_physical_line(tmp_path: Path, enrollments: Resource) -> None:
    lines = [
        HEADER,
        ROW.format("360202199001011234"),
        ROW.format("360202199001011235").replace("2020-01-01", "2020-13-01"),  # line 3
        "",  # line 4: blank
        '360202199001011236,"李\n四",企业职工基本养老保险,91360200MA35XXXX0A,2020-01-01,参保缴费,'
        "2025-01-01 09:00:00",  # lines 5-6
        "360202199001011237,王五",  # line 7: 2 columns
    ]
    path = tmp_path / "enrollments.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    reader, table = read(path, enrollments)

    assert table is not None
    assert table.column("name").to_pylist() == ["张三", "李\n四"]
    found = [(q.line, q.reason) for q in reader.quarantined]
    assert found == [
        (3, "field start_date: expected a date (YYYY-MM-DD), got '2020-13-01'"),
        (7, "expected 7 columns, got 2"),
    ]
    assert f"{path.name}: 1 blank line(s) skipped" in reader.notes


def test_an_empty_file_has_no_header(tmp_path: Path, enrollments: Resource) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"\n")
    with pytest.raises(ConnectorError, match="line 1: expected a header row"):
        read(path, enrollments)
