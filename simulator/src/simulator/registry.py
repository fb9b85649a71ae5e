"""The registry department (household registration, business registry): ``registry.db``.

A SQLite file with tables ``persons`` and ``enterprises``: the catalog's fields as TEXT
(dates ``YYYY-MM-DD``, timestamps ``YYYY-MM-DD HH:MM:SS``, decimals as text) and a
tombstone ``deleted`` (a deleted record stays, with ``deleted = 1`` and a new
``updated_at``). Keys are UNIQUE: the API cannot serve a duplicate. Another module serves
the file as a paged JSON API with a bearer token, written here to ``secrets/registry``.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from hub.catalog.models import Resource
from simulator import rows as rows_module
from simulator.changes import DayPlan, TableSpec, apply_day
from simulator.clock import (
    dates_text,
    day0_close,
    moments_between,
    office_hours,
    timestamps_text,
    yuan,
)
from simulator.faults import inject_faults
from simulator.identities import (
    ETHNICITIES,
    ETHNICITY_WEIGHTS,
    addresses,
    districts,
    enterprise_types,
    id_bodies,
    make_firms,
    make_people,
    pick,
)
from simulator.manifest import DayCounts, ResourceManifest
from simulator.rows import Column, Lazy, Lookup, Rows, lazy
from simulator.world import Context, World

REGISTRY_FILE = "registry.db"
TOKEN_FILE = Path("secrets") / "registry"

PERSONS = TableSpec(
    resource="persons",
    table="persons",
    key=("citizen_id",),
    id_column="citizen_id",
    fault_columns=("ethnicity", "household_address"),
    lengths={},
    duplicates=False,
)
ENTERPRISES = TableSpec(
    resource="enterprises",
    table="enterprises",
    key=("credit_code",),
    id_column="credit_code",
    fault_columns=("legal_representative_name", "address"),
    lengths={},
    duplicates=False,
)
SPECS = (PERSONS, ENTERPRISES)
_IMPOSSIBLE_DAYS = ("02-30", "02-31", "04-31", "06-31", "09-31", "11-31", "13-01")


class RegistryStore:
    """``registry.db``: reads and writes of live records, tombstones for deletions."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(path)
        # readers (the API) keep reading while a day is written
        self.conn.execute("PRAGMA journal_mode=WAL")

    def close(self) -> None:
        self.conn.close()

    def create_table(self, spec: TableSpec, resource: Resource) -> None:
        """Drop and create one table: TEXT columns, UNIQUE key, ``deleted`` tombstone."""
        columns = []
        for field in resource.fields:
            constraint = " NOT NULL" if not field.nullable else ""
            if field.name in spec.key:
                constraint += " UNIQUE"
            columns.append(f'"{field.name}" TEXT{constraint}')
        columns.append('"deleted" INTEGER NOT NULL DEFAULT 0')
        key = ", ".join(f'"{k}"' for k in spec.key)
        with self.conn:
            self.conn.execute(f'DROP TABLE IF EXISTS "{spec.table}"')
            self.conn.execute(f'CREATE TABLE "{spec.table}" ({", ".join(columns)})')
            self.conn.execute(
                f'CREATE INDEX "ix_{spec.table}_updated_at" ON "{spec.table}" ("updated_at", {key})'
            )

    def insert(self, table: str, rows: Rows) -> None:
        if not len(rows):
            return
        names = ", ".join(f'"{name}"' for name in rows.names)
        marks = ", ".join("?" for _ in rows.names)
        with self.conn:
            self.conn.executemany(
                f'INSERT INTO "{table}" ({names}) VALUES ({marks})', rows.records()
            )

    def scan(self, table: str, names: list[str], order: list[str]) -> Iterator[Rows]:
        """Live records (``deleted = 0``) in insertion order (``order``: unused, the key is
        unique), ``CHUNK_ROWS`` at a time."""
        columns = ", ".join(f'"{name}"' for name in names)
        cursor = self.conn.execute(
            f'SELECT {columns} FROM "{table}" WHERE deleted = 0 ORDER BY rowid'
        )
        try:
            while fetched := cursor.fetchmany(rows_module.CHUNK_ROWS):
                yield Rows(
                    {
                        name: np.array(values, dtype=object)
                        for name, values in zip(names, zip(*fetched, strict=True), strict=True)
                    }
                )
        finally:
            cursor.close()

    def update(self, table: str, key: list[str], rows: Rows) -> None:
        if not len(rows):
            return
        names = [name for name in rows.names if name not in key]
        assignments = ", ".join(f'"{name}" = ?' for name in names)
        where = " AND ".join(f'"{k}" = ?' for k in key)
        with self.conn:
            self.conn.executemany(
                f'UPDATE "{table}" SET {assignments} WHERE {where}', rows.records([*names, *key])
            )

    def remove(self, table: str, key: list[str], keys: Rows, stamps: Column) -> None:
        """Mark records deleted; they stay, with the deletion's ``updated_at``."""
        where = " AND ".join(f'"{k}" = ?' for k in key)
        parameters = zip(stamps.tolist(), *(keys[k].tolist() for k in key), strict=True)
        with self.conn:
            self.conn.executemany(
                f'UPDATE "{table}" SET deleted = 1, updated_at = ? WHERE {where}', parameters
            )

    def max_updated_at(self, table: str) -> str | None:
        value = self.conn.execute(f'SELECT MAX(updated_at) FROM "{table}"').fetchone()[0]
        return None if value is None else str(value)

    def count(self, table: str) -> int:
        return int(
            self.conn.execute(f'SELECT COUNT(*) FROM "{table}" WHERE deleted = 0').fetchone()[0]
        )


# ---------------------------------------------------------------- values


def valid_dates(values: Column) -> npt.NDArray[np.bool_]:
    """True where a text date parses (or is NULL: missing is another fault)."""
    text = pa.array(values.tolist(), pa.string())
    parsed = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
    return np.asarray(pc.or_(pc.is_null(text), pc.is_valid(parsed)).to_numpy(zero_copy_only=False))


def valid_decimals(values: Column) -> npt.NDArray[np.bool_]:
    text = pa.array(values.tolist(), pa.string())
    ok = pc.match_substring_regex(text, r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
    return np.asarray(pc.fill_null(ok, True).to_numpy(zero_copy_only=False))


def _persons_parse_ok(rows: Rows) -> npt.NDArray[np.bool_]:
    return valid_dates(rows["birth_date"])


def _enterprises_parse_ok(rows: Rows) -> npt.NDArray[np.bool_]:
    return valid_dates(rows["established_date"]) & valid_decimals(rows["registered_capital"])


def _spoil_persons(rng: np.random.Generator, rows: Rows, index: npt.NDArray[np.int64]) -> None:
    """Typing errors in the birth date: a day the calendar does not have."""
    years = np.array([str(value)[:4] for value in rows.text("birth_date", index)])
    bad = np.strings.add(np.strings.add(years, "-"), pick(rng, _IMPOSSIBLE_DAYS, len(index)))
    rows.put("birth_date", index, bad)


def _spoil_enterprises(rng: np.random.Generator, rows: Rows, index: npt.NDArray[np.int64]) -> None:
    """Legacy placeholders: an unknown founding date or capital written in words."""
    on_date = rng.random(len(index)) < 0.5
    rows.put(
        "established_date",
        index[on_date],
        pick(rng, ("unknown", "不详", "0000-00-00"), int(on_date.sum())),
    )
    rows.put(
        "registered_capital",
        index[~on_date],
        pick(rng, ("不详", "伍佰万", "N/A"), int((~on_date).sum())),
    )


def person_rows(
    rng: np.random.Generator,
    world: World,
    index: npt.NDArray[np.int64],
    stamps: npt.NDArray[np.datetime64],
    addresses_text: Lazy,
) -> Rows:
    n = len(index)
    status = pick(rng, ("正常", "迁出", "死亡"), n, (0.97, 0.015, 0.015))
    return Rows(
        {
            "citizen_id": Lookup(world.person_id).of(index),
            "name": Lookup(world.person_name).of(index),
            "sex": world.person_sex[index],
            "birth_date": lazy(dates_text, world.person_birth[index]),
            "ethnicity": pick(rng, ETHNICITIES, n, ETHNICITY_WEIGHTS),
            "district_code": world.person_district[index],
            "household_address": addresses_text,
            "registration_status": status,
            "updated_at": lazy(timestamps_text, stamps),
        }
    )


def enterprise_rows(
    rng: np.random.Generator,
    world: World,
    index: npt.NDArray[np.int64],
    stamps: npt.NDArray[np.datetime64],
    address_text: Lazy,
    on: np.datetime64,
) -> Rows:
    """Registry records of the world's enterprises ``index``; legal representatives are adults."""
    n = len(index)
    adults = world.adults(on, 22, 75)
    representative = adults[rng.integers(0, len(adults), n)]
    kind = world.firm_kind[index]
    capital = np.where(
        kind == "1",
        np.exp(rng.normal(np.log(200), 1.2, n)),
        np.where(
            kind == "2",
            np.exp(rng.normal(np.log(5), 0.8, n)),
            np.exp(rng.normal(np.log(50), 0.7, n)),
        ),
    )
    capital = np.clip(np.round(capital), 1, 500_000)
    status = np.where(
        kind == "2",
        pick(rng, ("存续", "注销", "吊销"), n, (0.85, 0.1, 0.05)),
        pick(rng, ("存续", "注销", "吊销"), n, (0.92, 0.05, 0.03)),
    )
    return Rows(
        {
            "credit_code": world.firm_code[index],
            "name": world.firm_name[index],
            "legal_representative_id": world.person_id[representative],
            "legal_representative_name": world.person_name[representative],
            "enterprise_type": enterprise_types(rng, kind),
            "registered_capital": yuan(capital),
            "established_date": dates_text(world.firm_established[index]),
            "address": address_text,
            "status": status,
            "updated_at": lazy(timestamps_text, stamps),
        }
    )


# ---------------------------------------------------------------- build and advance


def open_store(ctx: Context) -> RegistryStore:
    return RegistryStore(ctx.settings.systems_dir / REGISTRY_FILE)


def write_token(systems_dir: Path) -> None:
    """A fresh random API token, readable by the owner only."""
    path = systems_dir / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    os.chmod(path, 0o600)


def build(ctx: Context) -> None:
    """Create ``registry.db`` with every person and enterprise of the world (day 0)."""
    store = open_store(ctx)
    try:
        world = ctx.world
        for spec in SPECS:
            store.create_table(spec, ctx.catalog.resource(spec.resource))
        rng = ctx.rng("registry.persons")
        index = np.arange(len(world.person_id))
        # the registry's records were digitised from 2005 on, then kept up to date
        since = np.maximum(world.person_birth, np.datetime64("2005-01-01"))
        rows = person_rows(
            rng,
            world,
            index,
            moments_between(rng, since, day0_close()),
            addresses(rng, world.person_district.text()),
        )
        rows, injected = inject_faults(
            rng,
            rows,
            ctx.rates,
            id_column=PERSONS.id_column,
            missing_columns=PERSONS.fault_columns,
            spoil=_spoil_persons,
        )
        store.insert(PERSONS.table, rows)
        _record_day0(
            ctx,
            PERSONS,
            len(rows),
            injected.bad_check_digit,
            injected.missing_value,
            injected.unparseable,
        )

        rng = ctx.rng("registry.enterprises")
        index = np.arange(len(world.firm_code))
        rows = enterprise_rows(
            rng,
            world,
            index,
            moments_between(rng, world.firm_established, day0_close()),
            addresses(rng, districts(rng, len(index)), with_room=False),
            ctx.today,
        )
        rows, injected = inject_faults(
            rng,
            rows,
            ctx.rates,
            id_column=ENTERPRISES.id_column,
            missing_columns=ENTERPRISES.fault_columns,
            spoil=_spoil_enterprises,
        )
        store.insert(ENTERPRISES.table, rows)
        _record_day0(
            ctx,
            ENTERPRISES,
            len(rows),
            injected.bad_check_digit,
            injected.missing_value,
            injected.unparseable,
        )
        for spec in SPECS:
            ctx.resource(spec.resource).source_rows = store.count(spec.table)
    finally:
        store.close()
    write_token(ctx.settings.systems_dir)


def _record_day0(
    ctx: Context, spec: TableSpec, n: int, bad: int, missing: int, unparseable: int
) -> None:
    counts = DayCounts(day=0, inserted=n, lines=n, unparseable=unparseable)
    ctx.resource(spec.resource).record(counts, bad=bad, duplicates=0, missing=missing)


def manifests() -> dict[str, ResourceManifest]:
    return {
        spec.resource: ResourceManifest(
            system="registry",
            location=spec.table,
            key=list(spec.key),
            id_column=spec.id_column,
            fault_columns=list(spec.fault_columns),
        )
        for spec in SPECS
    }


def advance(ctx: Context) -> None:
    """One day: births and arrivals, new enterprises, changes, tombstones.

    New persons and enterprises join the world, so the other departments of the same
    day can already refer to them.
    """
    store = open_store(ctx)
    try:
        world = ctx.world

        def new_persons(rng: np.random.Generator, n: int) -> Rows:
            born = int(rng.binomial(n, 0.6))
            taken = world.person_id.bodies
            babies = make_people(
                rng, born, ctx.today, min_age=0, max_age=0.08, taken=taken, local_births=True
            )
            taken = np.concatenate([taken, id_bodies(babies.citizen_id)])
            movers = make_people(rng, n - born, ctx.today, min_age=18, max_age=60, taken=taken)
            start = len(world.person_id)
            for people in (babies, movers):
                world.person_id = world.person_id.extended(people.citizen_id)
                world.person_name = np.concatenate([world.person_name, people.name])
                world.person_sex = world.person_sex.extended(people.sex)
                world.person_birth = np.concatenate([world.person_birth, people.birth_date])
                world.person_district = world.person_district.extended(people.district)
            index = np.arange(start, len(world.person_id))
            rows = person_rows(
                rng,
                world,
                index,
                office_hours(rng, ctx.day, n),
                Lazy.concat([babies.address, movers.address]),
            )
            rows.set("registration_status", np.full(n, "正常"))
            return rows

        def change_persons(rng: np.random.Generator, rows: Rows) -> Rows:
            n = len(rows)
            moved = rng.random(n) < 0.75
            district = districts(rng, n)
            status = pick(rng, ("迁出", "死亡"), n)
            return Rows(
                {
                    "district_code": np.where(moved, district, rows["district_code"]),
                    "household_address": np.where(
                        moved, addresses(rng, district).text(), rows["household_address"]
                    ),
                    "registration_status": np.where(moved, rows["registration_status"], status),
                }
            )

        def new_enterprises(rng: np.random.Generator, n: int) -> Rows:
            firms = make_firms(rng, n, ctx.today, founded_from=ctx.today, taken=world.firm_code)
            start = len(world.firm_code)
            world.firm_code = np.concatenate([world.firm_code, firms.credit_code])
            world.firm_name = np.concatenate([world.firm_name, firms.name])
            world.firm_kind = np.concatenate([world.firm_kind, firms.kind])
            world.firm_established = np.concatenate([world.firm_established, firms.established])
            index = np.arange(start, len(world.firm_code))
            rows = enterprise_rows(
                rng, world, index, office_hours(rng, ctx.day, n), firms.address, ctx.today
            )
            rows.set("status", np.full(n, "存续"))
            return rows

        def change_enterprises(rng: np.random.Generator, rows: Rows) -> Rows:
            n = len(rows)
            closing = rng.random(n) < 0.3
            capital = np.array([float(v) for v in rows["registered_capital"]]) * rng.uniform(
                1.5, 3, n
            )
            return Rows(
                {
                    "registered_capital": np.where(
                        closing, rows["registered_capital"], yuan(capital).astype(object)
                    ),
                    "status": np.where(
                        closing, pick(rng, ("注销", "吊销"), n, (0.8, 0.2)), rows["status"]
                    ),
                }
            )

        plans = (
            DayPlan(
                PERSONS,
                new_persons,
                change_persons,
                ("district_code", "household_address", "registration_status", "birth_date"),
                _spoil_persons,
                _persons_parse_ok,
            ),
            DayPlan(
                ENTERPRISES,
                new_enterprises,
                change_enterprises,
                ("registered_capital", "status", "established_date"),
                _spoil_enterprises,
                _enterprises_parse_ok,
            ),
        )
        for plan in plans:
            spec = plan.spec
            result = apply_day(
                store,
                plan,
                ctx.rng(f"registry.{spec.resource}"),
                ctx.day,
                ctx.rates,
                count_lines=True,
            )
            manifest = ctx.resource(spec.resource)
            manifest.record(
                result.counts,
                bad=result.injected.bad_check_digit,
                duplicates=0,
                missing=result.injected.missing_value,
            )
            manifest.source_rows = store.count(spec.table)
    finally:
        store.close()
