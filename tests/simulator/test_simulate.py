"""The simulator writes exactly what its manifest says.

Counts are checked against the SQLite tables, ``registry.db`` and the CSV drops
themselves; identifiers against python-stdnum; unparseable values with the connectors'
own text parser. Small scales keep the suite fast.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from stdnum.cn import ric, uscc

from connectors.base import parse_text_columns
from hub.catalog import Catalog, Resource, load_catalog
from simulator import FaultRates, advance_day, load_manifest, simulate
from simulator.settings import SimulatorSettings

SQL_SYSTEMS = ("housing", "tax")
DAY0_CLOSE = "2026-11-01 18:00:00"


# ---------------------------------------------------------------- helpers


def valid_party_id(value: str | None) -> bool:
    """Citizen ID (GB 11643) or, starting with 9, unified social credit code (GB 32100)."""
    if not value:
        return False
    return uscc.is_valid(value) if value.startswith("9") else ric.is_valid(value)


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def sql_url(settings: SimulatorSettings, system: str) -> str:
    return settings.sim_housing_url if system == "housing" else settings.sim_tax_url


def query(path: str | Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def resource_location(settings: SimulatorSettings, code: str, entry: dict[str, Any]) -> str | Path:
    system = entry["system"]
    if system in SQL_SYSTEMS:
        return sqlite_path(sql_url(settings, system))
    return settings.systems_dir / "registry.db"


def unparseable_records(resource: Resource, records: list[dict[str, Any]]) -> int:
    """How many records the connectors' parser would quarantine."""
    if not records:
        return 0
    columns = {
        field.name: pa.array([record.get(field.name) for record in records], pa.string())
        for field in resource.fields
    }
    parsed = parse_text_columns(
        resource,
        columns,
        origin="test",
        num_rows=len(records),
        locate=lambda i: (i + 1, json.dumps(records[i], ensure_ascii=False)),
    )
    return len(parsed.quarantined)


def registry_records(
    settings: SimulatorSettings, table: str, where: str = "1=1"
) -> list[dict[str, Any]]:
    with sqlite3.connect(settings.systems_dir / "registry.db") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(f"SELECT * FROM {table} WHERE {where}")]


def identities(
    settings: SimulatorSettings, code: str, entry: dict[str, Any]
) -> Counter[tuple[Any, ...]]:
    """(key..., updated_at) of every live row: what an incremental reader tells apart."""
    columns = ", ".join([*entry["key"], "updated_at"])
    table = entry["location"]
    where = " WHERE deleted = 0" if entry["system"] == "registry" else ""
    path = resource_location(settings, code, entry)
    return Counter(query(path, f"SELECT {columns} FROM {table}{where}"))


def read_drop_file(path: Path, encoding: str) -> tuple[list[str], list[list[str]]]:
    text = path.read_bytes().decode(encoding)
    lines = text.split("\r\n")
    assert lines[-1] == "", f"{path} must end with CRLF"
    rows = [line.split(",") for line in lines[1:-1]]
    return lines[0].split(","), rows


def drop_faults(resource: Resource, path: Path, encoding: str) -> dict[str, int]:
    """Lines, unparseable lines, bad IDs and missing values of one drop file."""
    header, rows = read_drop_file(path, encoding)
    by_source = {name: field.name for field in resource.fields for name in field.source_names}
    names = [by_source.get(column) for column in header]
    shaped = [row for row in rows if len(row) == len(header)]
    records = [
        {name: value for name, value in zip(names, row, strict=True) if name} for row in shaped
    ]
    fault_columns = {
        "social_insurance_enrollments": ("name", "employer_credit_code"),
        "social_insurance_contributions": ("paid_date", "contribution_base"),
    }[resource.code]
    return {
        "lines": len(rows),
        "unparseable": len(rows) - len(shaped) + unparseable_records(resource, records),
        "bad": sum(not valid_party_id(row[0]) for row in rows),
        "missing": sum(any(record.get(c) == "" for c in fault_columns) for record in records),
    }


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(SimulatorSettings().catalog_dir)


@pytest.fixture(scope="module")
def day0(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimulatorSettings, dict[str, Any]]:
    settings = SimulatorSettings(home=tmp_path_factory.mktemp("day0"), profile="demo")
    return settings, simulate(settings, scale=0.1, seed=11)


@pytest.fixture(scope="module")
def day1(
    tmp_path_factory: pytest.TempPathFactory, catalog: Catalog
) -> tuple[SimulatorSettings, dict[str, Any], dict[str, Any], dict[str, Counter[tuple[Any, ...]]]]:
    """Day 0 at scale 0.2, the identities of every row, then one advanced day."""
    settings = SimulatorSettings(home=tmp_path_factory.mktemp("day1"), profile="demo")
    before = simulate(settings, scale=0.2, seed=5)
    snapshot = {
        code: identities(settings, code, entry)
        for code, entry in before["resources"].items()
        if entry["system"] != "social"
    }
    after = advance_day(settings)
    return settings, before, after, snapshot


# ---------------------------------------------------------------- day 0


def test_manifest_is_written_and_loads(day0: tuple[SimulatorSettings, dict[str, Any]]) -> None:
    settings, manifest = day0
    assert load_manifest(settings) == manifest
    assert manifest["day"] == 0
    assert manifest["clock"] == "2026-11-01"
    assert manifest["seed"] == 11
    assert manifest["fault_rates"] == FaultRates().as_dict()
    assert sorted(manifest["resources"]) == sorted(
        r.code for r in load_catalog(settings.catalog_dir).resources
    )


def test_sql_tables_hold_what_the_manifest_says(
    day0: tuple[SimulatorSettings, dict[str, Any]], catalog: Catalog
) -> None:
    settings, manifest = day0
    for code, entry in manifest["resources"].items():
        if entry["system"] not in SQL_SYSTEMS:
            continue
        path = sqlite_path(sql_url(settings, entry["system"]))
        table = entry["location"]
        key = ", ".join(entry["key"])
        resource = catalog.resource(code)
        columns = [row[1] for row in query(path, f"PRAGMA table_info({table})")]
        assert columns == [f.name for f in resource.fields], code
        (rows,) = query(path, f"SELECT COUNT(*) FROM {table}")[0]
        (keys,) = query(path, f"SELECT COUNT(*) FROM (SELECT DISTINCT {key} FROM {table})")[0]
        assert rows == entry["source_rows"] == entry["days"][0]["inserted"], code
        assert rows - keys == entry["faults"]["duplicate_key"] > 0, code
        blanks = " OR ".join(f"{c} IS NULL" for c in entry["fault_columns"])
        (missing,) = query(path, f"SELECT COUNT(*) FROM {table} WHERE {blanks}")[0]
        assert missing == entry["faults"]["missing_value"] > 0, code
        assert entry["faults"]["unparseable"] == 0
        if entry["id_column"]:
            ids = [v for (v,) in query(path, f"SELECT {entry['id_column']} FROM {table}")]
            bad = sum(not valid_party_id(v) for v in ids)
            assert bad == entry["faults"]["bad_check_digit"] > 0, code
        (latest,) = query(path, f"SELECT MAX(updated_at) FROM {table}")[0]
        assert latest <= DAY0_CLOSE


def test_sql_column_types(day0: tuple[SimulatorSettings, dict[str, Any]]) -> None:
    settings, _ = day0
    inspector = sa.inspect(sa.create_engine(settings.sim_housing_url))
    types = {c["name"]: str(c["type"]) for c in inspector.get_columns("property_rights")}
    assert types["certificate_no"] == "VARCHAR(64)"
    assert types["share"] == "NUMERIC(5, 4)"
    assert types["registered_date"] == "DATE"
    assert types["updated_at"] == "DATETIME"
    assert inspector.get_pk_constraint("property_rights")["constrained_columns"] == []
    indexed = {tuple(i["column_names"]) for i in inspector.get_indexes("property_rights")}
    assert ("updated_at",) in indexed


def test_registry_holds_what_the_manifest_says(
    day0: tuple[SimulatorSettings, dict[str, Any]], catalog: Catalog
) -> None:
    settings, manifest = day0
    for code, checker in (("persons", ric.is_valid), ("enterprises", uscc.is_valid)):
        entry = manifest["resources"][code]
        records = registry_records(settings, code)
        key = entry["key"][0]
        assert len(records) == entry["source_rows"] == entry["days"][0]["inserted"]
        assert all(record["deleted"] == 0 for record in records)
        assert len({record[key] for record in records}) == len(records)
        bad = sum(not checker(record[key]) for record in records)
        assert bad == entry["faults"]["bad_check_digit"] > 0
        missing = sum(any(record[c] is None for c in entry["fault_columns"]) for record in records)
        assert missing == entry["faults"]["missing_value"] > 0
        unparseable = unparseable_records(catalog.resource(code), records)
        assert unparseable == entry["days"][0]["unparseable"] == entry["faults"]["unparseable"] > 0
        assert entry["faults"]["duplicate_key"] == 0
    representatives = registry_records(settings, "enterprises")
    assert all(ric.is_valid(r["legal_representative_id"]) for r in representatives)


def test_registry_token_is_private(day0: tuple[SimulatorSettings, dict[str, Any]]) -> None:
    settings, _ = day0
    path = settings.systems_dir / "secrets" / "registry"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = settings.secret("registry")
    assert token is not None
    assert len(token) >= 32


def test_social_drops_are_complete_and_counted(
    day0: tuple[SimulatorSettings, dict[str, Any]], catalog: Catalog
) -> None:
    settings, manifest = day0
    root = settings.systems_dir / "sftp" / "root" / "drops"
    for code in ("social_insurance_enrollments", "social_insurance_contributions"):
        entry = manifest["resources"][code]
        complete = [d for d in entry["drops"] if d["complete"]]
        assert [d["dir"] for d in complete] == ["20261101"]
        prefix = "enrollments_" if "enrollments" in code else "contributions_"
        name, encoding = next(
            (n, e) for n, e in complete[0]["files"].items() if n.startswith(prefix)
        )
        found = drop_faults(catalog.resource(code), root / "20261101" / name, encoding)
        day = entry["days"][0]
        assert found["lines"] == day["lines"] == day["inserted"] == entry["source_rows"]
        assert found["unparseable"] == day["unparseable"] == entry["faults"]["unparseable"] > 0
        assert found["bad"] == entry["faults"]["bad_check_digit"] > 0
        assert found["missing"] == entry["faults"]["missing_value"] > 0
        header, _ = read_drop_file(root / "20261101" / name, encoding)
        assert header == [f.source_column for f in catalog.resource(code).fields]
    contributions = manifest["resources"]["social_insurance_contributions"]
    assert contributions["faults"]["duplicate_key"] > 0


def test_social_encodings_and_markers(day0: tuple[SimulatorSettings, dict[str, Any]]) -> None:
    settings, manifest = day0
    root = settings.systems_dir / "sftp" / "root" / "drops"
    drops = manifest["resources"]["social_insurance_enrollments"]["drops"]
    encodings = set()
    for drop in drops:
        folder = root / drop["dir"]
        names = sorted(p.name for p in folder.iterdir())
        if drop["complete"]:
            assert names == sorted([*drop["files"], "_SUCCESS"])
            marker = (folder / "_SUCCESS").stat().st_mtime_ns
            assert all((folder / n).stat().st_mtime_ns <= marker for n in drop["files"])
        else:
            assert "_SUCCESS" not in names
            assert names == sorted(drop["files"])
        for name, encoding in drop["files"].items():
            data = (folder / name).read_bytes()
            encodings.add(encoding)
            if encoding == "gbk":
                data.decode("gbk")
                with pytest.raises(UnicodeDecodeError):
                    data.decode("utf-8")
            elif drop["complete"]:
                data.decode("utf-8")
    assert encodings == {"gbk", "utf-8"}
    incomplete = [d for d in drops if not d["complete"]]
    assert [d["dir"] for d in incomplete] == ["20261102"]


def test_citizen_ids_look_real(day0: tuple[SimulatorSettings, dict[str, Any]]) -> None:
    settings, _ = day0
    records = [r for r in registry_records(settings, "persons") if ric.is_valid(r["citizen_id"])]
    for record in records:
        number = record["citizen_id"]
        assert number[6:14] == record["birth_date"].replace("-", "") or record["birth_date"][
            5:
        ] in ("02-30", "02-31", "04-31", "06-31", "09-31", "11-31", "13-01")
        assert int(number[16]) % 2 == (1 if record["sex"] == "1" else 0)
    local = sum(r["citizen_id"].startswith("3602") for r in records)
    assert local > 0.7 * len(records)
    assert {r["district_code"] for r in records} == {"360202", "360203", "360222", "360281"}


def test_co_owned_shares_sum_to_one(day0: tuple[SimulatorSettings, dict[str, Any]]) -> None:
    settings, _ = day0
    path = sqlite_path(settings.sim_housing_url)
    totals = query(
        path,
        "SELECT certificate_no, co_ownership, SUM(share), COUNT(*) FROM "
        "(SELECT DISTINCT certificate_no, owner_id, co_ownership, share FROM property_rights) "
        "GROUP BY certificate_no, co_ownership",
    )
    kinds = {kind for _, kind, _, _ in totals}
    assert kinds == {"单独所有", "共同共有", "按份共有"}
    assert all(abs(float(total) - 1) < 1e-9 for _, _, total, _ in totals)
    assert all(count >= 2 for _, kind, _, count in totals if kind != "单独所有")


def test_departments_share_people(day0: tuple[SimulatorSettings, dict[str, Any]]) -> None:
    settings, _ = day0
    persons = {r["citizen_id"] for r in registry_records(settings, "persons")}
    owners = {
        v
        for (v,) in query(
            sqlite_path(settings.sim_housing_url), "SELECT owner_id FROM property_rights"
        )
    }
    taxpayers = {
        v for (v,) in query(sqlite_path(settings.sim_tax_url), "SELECT taxpayer_id FROM taxpayers")
    }
    assert len(owners & persons) > 0.9 * len({o for o in owners if not o.startswith("9")})
    assert len(taxpayers & persons) > 0.6 * len(persons)
    deed = query(
        sqlite_path(settings.sim_tax_url),
        "SELECT certificate_no FROM tax_payments WHERE tax_type = '契税'",
    )
    certificates = {
        v
        for (v,) in query(
            sqlite_path(settings.sim_housing_url), "SELECT certificate_no FROM property_rights"
        )
    }
    assert deed
    assert {c for (c,) in deed} <= certificates


def test_same_seed_same_systems(tmp_path: Path) -> None:
    first = SimulatorSettings(home=tmp_path / "a")
    second = SimulatorSettings(home=tmp_path / "b")
    other = SimulatorSettings(home=tmp_path / "c")
    assert simulate(first, scale=0.05, seed=3) == simulate(second, scale=0.05, seed=3)
    table = "SELECT * FROM persons ORDER BY citizen_id"
    assert query(first.systems_dir / "registry.db", table) == query(
        second.systems_dir / "registry.db", table
    )
    assert advance_day(first) == advance_day(second)
    simulate(other, scale=0.05, seed=4)
    assert query(first.systems_dir / "registry.db", table) != query(
        other.systems_dir / "registry.db", table
    )


def test_scale_is_linear(tmp_path: Path) -> None:
    small = simulate(SimulatorSettings(home=tmp_path / "s"), scale=0.05)
    large = simulate(SimulatorSettings(home=tmp_path / "l"), scale=0.15)
    for code in ("persons", "property_units", "tax_payments", "social_insurance_contributions"):
        ratio = large["resources"][code]["source_rows"] / small["resources"][code]["source_rows"]
        assert 2.5 < ratio < 3.5, code


def test_no_faults_when_rates_are_zero(tmp_path: Path) -> None:
    rates = FaultRates(
        bad_check_digit=0, duplicate_key=0, missing_value=0, unparseable=0, late_update=0
    )
    manifest = simulate(SimulatorSettings(home=tmp_path), scale=0.05, faults=rates)
    for code, entry in manifest["resources"].items():
        assert set(entry["faults"].values()) == {0}, code


def test_bad_rates_and_scales_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bad_check_digit"):
        FaultRates(bad_check_digit=1.5)
    with pytest.raises(ValueError, match="scale"):
        simulate(SimulatorSettings(home=tmp_path), scale=0)
    with pytest.raises(FileNotFoundError):
        advance_day(SimulatorSettings(home=tmp_path / "never"))


# ---------------------------------------------------------------- day 1


def test_advance_counts_match_the_tables(
    day1: tuple[
        SimulatorSettings, dict[str, Any], dict[str, Any], dict[str, Counter[tuple[Any, ...]]]
    ],
    catalog: Catalog,
) -> None:
    settings, before, after, snapshot = day1
    assert after["day"] == 1
    assert after["clock"] == "2026-11-02"
    for code, entry in after["resources"].items():
        if entry["system"] == "social":
            continue
        day = entry["days"][1]
        assert [d["day"] for d in entry["days"]] == [0, 1]
        old = snapshot[code]
        new = identities(settings, code, entry)
        appeared = new - old
        old_keys = {identity[:-1] for identity in old}
        new_keys = {identity[:-1] for identity in new}
        assert day["inserted"] > 0 and day["updated"] > 0 and day["deleted"] > 0, code
        assert day["late_updates"] > 0, code
        if entry["system"] == "registry":
            records = registry_records(settings, code)
            upserts = [
                r
                for r in records
                if r["deleted"] == 0
                and (*(r[k] for k in entry["key"]), r["updated_at"]) in appeared
            ]
            tombstones = [r for r in records if r["deleted"] == 1]
            assert len(upserts) == day["inserted"] + day["updated"], code
            assert len(tombstones) == day["deleted"], code
            assert day["lines"] == day["inserted"] + day["updated"] + day["deleted"]
            assert unparseable_records(catalog.resource(code), upserts) == day["unparseable"]
        else:
            assert sum(appeared.values()) == day["inserted"] + day["updated"], code
            assert len(old_keys - new_keys) == day["deleted"], code
        previous_max = max(identity[-1] for identity in old)
        late = [i for i in appeared if i[-1] < previous_max]
        assert len(late) == day["late_updates"], code
        # an overlap window of 60 minutes catches every late commit
        assert all(i[-1] >= _minus_minutes(previous_max, 30) for i in late), code
        path = resource_location(settings, code, entry)
        where = " WHERE deleted = 0" if entry["system"] == "registry" else ""
        (rows,) = query(path, f"SELECT COUNT(*) FROM {entry['location']}{where}")[0]
        assert rows == entry["source_rows"], code
        assert rows == before["resources"][code]["source_rows"] + day["inserted"] - day["deleted"]
        faults = entry["faults"]
        assert faults["late_update"] == day["late_updates"]


def _minus_minutes(stamp: str, minutes: int) -> str:
    from datetime import datetime, timedelta

    moment = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S") - timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def test_advance_keeps_fault_counts_exact(
    day1: tuple[
        SimulatorSettings, dict[str, Any], dict[str, Any], dict[str, Counter[tuple[Any, ...]]]
    ],
) -> None:
    settings, _, after, _ = day1
    for code, entry in after["resources"].items():
        if entry["system"] not in SQL_SYSTEMS:
            continue
        path = sqlite_path(sql_url(settings, entry["system"]))
        table = entry["location"]
        key = ", ".join(entry["key"])
        (rows,) = query(path, f"SELECT COUNT(*) FROM {table}")[0]
        (keys,) = query(path, f"SELECT COUNT(*) FROM (SELECT DISTINCT {key} FROM {table})")[0]
        assert rows - keys == entry["faults"]["duplicate_key"], code
        if entry["id_column"]:
            ids = [v for (v,) in query(path, f"SELECT {entry['id_column']} FROM {table}")]
            assert sum(not valid_party_id(v) for v in ids) == entry["faults"]["bad_check_digit"]


def test_advance_drifts_the_tax_schema(
    day1: tuple[
        SimulatorSettings, dict[str, Any], dict[str, Any], dict[str, Counter[tuple[Any, ...]]]
    ],
) -> None:
    settings, _, after, _ = day1
    path = sqlite_path(settings.sim_tax_url)
    columns = [row[1] for row in query(path, "PRAGMA table_info(tax_payments)")]
    assert columns[-1] == "invoice_code"
    assert after["resources"]["tax_payments"]["drift"] == ["day 1: tax_payments.invoice_code added"]
    (filled,) = query(path, "SELECT COUNT(*) FROM tax_payments WHERE invoice_code IS NOT NULL")[0]
    assert filled == after["resources"]["tax_payments"]["days"][1]["inserted"]


def test_advance_writes_the_next_drop(
    day1: tuple[
        SimulatorSettings, dict[str, Any], dict[str, Any], dict[str, Counter[tuple[Any, ...]]]
    ],
    catalog: Catalog,
) -> None:
    settings, before, after, _ = day1
    root = settings.systems_dir / "sftp" / "root" / "drops"
    for code in ("social_insurance_enrollments", "social_insurance_contributions"):
        entry = after["resources"][code]
        assert [(d["dir"], d["complete"]) for d in entry["drops"]] == [
            ("20261101", True),
            ("20261102", True),
            ("20261103", False),
        ]
        assert not (root / "20261103" / "_SUCCESS").exists()
        assert (root / "20261102" / "_SUCCESS").exists()
        assert not any(p.name.endswith(".tmp") for p in (root / "20261102").iterdir())
        files = entry["drops"][1]["files"]
        prefix = "enrollments_" if "enrollments" in code else "contributions_"
        name = next(n for n in files if n.startswith(prefix))
        found = drop_faults(catalog.resource(code), root / "20261102" / name, files[name])
        day = entry["days"][1]
        assert found["lines"] == day["lines"] == day["inserted"] + day["updated"] > 0
        assert found["unparseable"] == day["unparseable"]
        assert entry["source_rows"] == before["resources"][code]["source_rows"] + day["lines"]
        assert len(entry["drift"]) == 1
        header, _ = read_drop_file(root / "20261102" / name, files[name])
        if "enrollments" in code:
            assert header[-1] == "备注"
            assert day["updated"] > 0
        else:
            assert "缴费工资基数" in header
            assert "缴费基数" not in header


def test_manifest_days_add_up(
    day1: tuple[
        SimulatorSettings, dict[str, Any], dict[str, Any], dict[str, Counter[tuple[Any, ...]]]
    ],
) -> None:
    _, _, after, _ = day1
    for code, entry in after["resources"].items():
        days = entry["days"]
        assert entry["faults"]["unparseable"] == sum(d["unparseable"] for d in days), code
        assert entry["faults"]["late_update"] == sum(d["late_updates"] for d in days), code
        if entry["system"] == "social":
            assert entry["source_rows"] == sum(d["lines"] for d in days), code
        else:
            assert entry["source_rows"] == sum(d["inserted"] - d["deleted"] for d in days), code


# ---------------------------------------------------------------- other engines


def _server_or_skip(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"server not reachable: {exc}")
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_housing_on_postgres(tmp_path: Path) -> None:
    _server_or_skip("postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/hub_test_sim"
    settings = SimulatorSettings(home=tmp_path, sim_housing_url=url)
    manifest = simulate(settings, scale=0.05)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            for code in ("property_units", "property_rights", "mortgages", "sales_contracts"):
                count = conn.execute(sa.text(f"SELECT COUNT(*) FROM {code}")).scalar_one()
                assert count == manifest["resources"][code]["source_rows"]
            types = {
                c["name"]: str(c["type"]) for c in sa.inspect(conn).get_columns("property_rights")
            }
            assert types["share"] == "NUMERIC(5, 4)"
            assert types["updated_at"] == "TIMESTAMP"
        after = advance_day(settings)
        with engine.connect() as conn:
            count = conn.execute(sa.text("SELECT COUNT(*) FROM mortgages")).scalar_one()
            assert count == after["resources"]["mortgages"]["source_rows"]
    finally:
        engine.dispose()


@pytest.mark.mariadb
def test_tax_on_mariadb(tmp_path: Path) -> None:
    _server_or_skip("mysql+pymysql://root@127.0.0.1:3306/mysql")
    url = "mysql+pymysql://root@127.0.0.1:3306/hub_test_sim"
    settings = SimulatorSettings(home=tmp_path, sim_tax_url=url)
    manifest = simulate(settings, scale=0.05)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            for code in ("taxpayers", "tax_payments", "tax_clearances"):
                count = conn.execute(sa.text(f"SELECT COUNT(*) FROM {code}")).scalar_one()
                assert count == manifest["resources"][code]["source_rows"]
            names = conn.execute(sa.text("SELECT name FROM taxpayers LIMIT 5")).scalars().all()
            assert all(name is None or not name.isascii() for name in names)
        after = advance_day(settings)
        with engine.connect() as conn:
            columns = [c["name"] for c in sa.inspect(conn).get_columns("tax_payments")]
            assert columns[-1] == "invoice_code"
            count = conn.execute(sa.text("SELECT COUNT(*) FROM tax_payments")).scalar_one()
            assert count == after["resources"]["tax_payments"]["source_rows"]
    finally:
        engine.dispose()


def test_days_accumulate(tmp_path: Path) -> None:
    settings = SimulatorSettings(home=tmp_path)
    simulate(settings, scale=0.05, seed=2)
    advance_day(settings)
    manifest = advance_day(settings)
    assert manifest["day"] == 2
    assert manifest["clock"] == "2026-11-03"
    assert load_manifest(settings) == manifest
    for code, entry in manifest["resources"].items():
        assert [d["day"] for d in entry["days"]] == [0, 1, 2], code
        assert len(entry["drift"]) <= 1, code
    drops = manifest["resources"]["social_insurance_contributions"]["drops"]
    assert [(d["dir"], d["complete"]) for d in drops] == [
        ("20261101", True),
        ("20261102", True),
        ("20261103", True),
        ("20261104", False),
    ]
    leftover = settings.systems_dir / "sftp" / "root" / "drops" / "20261104"
    assert [p.name for p in leftover.iterdir()] == [".contributions_20261104.csv.tmp"]


def test_contributions_written_in_blocks_are_counted_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog: Catalog
) -> None:
    monkeypatch.setattr("simulator.social.BLOCK_ROWS", 1000)
    monkeypatch.setattr("simulator.rows.CHUNK_ROWS", 300)
    settings = SimulatorSettings(home=tmp_path)
    entry = simulate(settings, scale=0.1)["resources"]["social_insurance_contributions"]
    assert entry["source_rows"] > 3000
    path = settings.systems_dir / "sftp" / "root" / "drops" / "20261101"
    found = drop_faults(
        catalog.resource("social_insurance_contributions"),
        path / "contributions_20261101.csv",
        "utf-8",
    )
    assert found["lines"] == entry["source_rows"]
    assert found["unparseable"] == entry["faults"]["unparseable"]
    assert found["bad"] == entry["faults"]["bad_check_digit"]
    assert found["missing"] == entry["faults"]["missing_value"]
