"""The housing department (real-estate registration): a SQL database.

Tables ``property_units``, ``property_rights``, ``mortgages``, ``sales_contracts``.
Units sit on parcels (宗地) in buildings; each registered unit has a current property
certificate owned by one person, a couple (共同共有) or several owners by share
(按份共有); some units were sold second-hand, leaving a historical right (历史) of the
seller, a 存量房 contract and, at the tax bureau, the buyer's deed tax.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulator.changes import DayPlan, TableSpec, apply_day, record_day, write_day0
from simulator.clock import (
    dates_text,
    day0_close,
    moments_between,
    office_hours,
    timestamps_text,
    yuan,
)
from simulator.identities import BANK_WEIGHTS, BANKS, DISTRICTS, digits, districts, pick
from simulator.manifest import ResourceManifest
from simulator.rows import Lazy, Lookup, Rows, TextPool, lazy, rank_within
from simulator.sqlstore import SqlStore
from simulator.world import Context

UNITS = TableSpec(
    resource="property_units",
    table="property_units",
    key=("unit_id",),
    id_column=None,
    fault_columns=("address", "floor_area"),
    lengths={"unit_id": 28, "district_code": 6, "address": 200, "usage": 16},
)
RIGHTS = TableSpec(
    resource="property_rights",
    table="property_rights",
    key=("certificate_no", "owner_id"),
    id_column="owner_id",
    fault_columns=("owner_name", "registered_date"),
    lengths={
        "certificate_no": 64,
        "unit_id": 28,
        "owner_id": 18,
        "owner_name": 100,
        "co_ownership": 16,
        "status": 16,
    },
)
MORTGAGES = TableSpec(
    resource="mortgages",
    table="mortgages",
    key=("mortgage_no",),
    id_column=None,
    fault_columns=("mortgagee", "amount"),
    lengths={"mortgage_no": 64, "certificate_no": 64, "mortgagee": 100, "status": 16},
)
CONTRACTS = TableSpec(
    resource="sales_contracts",
    table="sales_contracts",
    key=("contract_no",),
    id_column="buyer_id",
    fault_columns=("price", "signed_date"),
    lengths={
        "contract_no": 32,
        "unit_id": 28,
        "seller_id": 18,
        "buyer_id": 18,
        "contract_type": 16,
        "status": 16,
    },
)
SPECS = (UNITS, RIGHTS, MORTGAGES, CONTRACTS)
USAGES = ("住宅", "商业", "办公", "工业")
_USAGE_WEIGHTS = (0.85, 0.08, 0.04, 0.03)
UNITS_PER_BUILDING = 24


@dataclass
class HousingFacts:
    """What the tax bureau learns from housing: deeds, owners, commercial property."""

    deed_buyer: npt.NDArray[np.str_]
    deed_certificate: npt.NDArray[np.object_]
    deed_price: npt.NDArray[np.float64]
    deed_date: npt.NDArray[np.datetime64]  # the day the right was registered
    owner_persons: npt.NDArray[np.int64]  # world index of every person who owns or owned property
    firm_certificate: npt.NDArray[np.str_]  # certificates of enterprise-owned units
    firm_owner: npt.NDArray[np.str_]
    firm_area: npt.NDArray[np.float64]


def certificate_numbers(ctx: Context, years: npt.NDArray[np.int64], kind: str) -> Lazy:
    """赣(2025)景德镇市不动产权第0012345号 (``kind`` 权) or 不动产证明 numbers, per year."""
    rng = ctx.rng(f"numbers.{kind}")
    sequence = np.zeros(len(years), dtype=np.int64)
    for year in np.unique(years):
        here = years == year
        counter = f"{kind}:{year}"
        if counter not in ctx.counters:
            # the centre also issues numbers for other business: start somewhere
            ctx.counters[counter] = int(rng.integers(100, 3000))
        sequence[here] = ctx.next_numbers(counter, int(here.sum()))
    render = _render_certificate if kind == "certificate" else _render_proof
    return lazy(render, np.asarray(years, dtype=np.int64), sequence)


def _numbers_text(
    years: npt.NDArray[np.int64], sequence: npt.NDArray[np.int64], word: str
) -> npt.NDArray[np.str_]:
    text = np.strings.add(np.strings.add("赣(", years.astype("<U4")), f")景德镇市{word}第")
    return np.strings.add(np.strings.add(text, digits(sequence, 7)), "号")


def _render_certificate(
    years: npt.NDArray[np.int64], sequence: npt.NDArray[np.int64]
) -> npt.NDArray[np.str_]:
    return _numbers_text(years, sequence, "不动产权")


def _render_proof(
    years: npt.NDArray[np.int64], sequence: npt.NDArray[np.int64]
) -> npt.NDArray[np.str_]:
    return _numbers_text(years, sequence, "不动产证明")


def _year(values: npt.NDArray[np.datetime64]) -> npt.NDArray[np.int64]:
    return values.astype("datetime64[Y]").astype(np.int64) + 1970


def _days(rng: np.random.Generator, low: int, high: int, n: int) -> npt.NDArray[np.timedelta64]:
    return rng.integers(low, high, n).astype("timedelta64[D]")


def make_units(
    ctx: Context, rng: np.random.Generator, n: int, *, built_year: int | None = None
) -> tuple[Rows, npt.NDArray[np.float64], npt.NDArray[np.str_]]:
    """``n`` units on new parcels; returns rows, floor areas and usages."""
    per_parcel = UNITS_PER_BUILDING if built_year else 30
    n_parcels = max(1, -(-n // per_parcel))
    parcel_no = ctx.next_numbers("parcel", n_parcels)
    district = districts(rng, n_parcels)
    street_name = np.empty(n_parcels, dtype="<U8")
    district_name = np.empty(n_parcels, dtype="<U4")
    for item in DISTRICTS:
        here = district == item.code
        district_name[here] = item.name
        street_name[here] = pick(rng, item.streets, int(here.sum()))
    street_code = digits(rng.integers(1, 13, n_parcels), 3)
    block_code = digits(rng.integers(1, 21, n_parcels), 3)
    house_no = digits(rng.integers(1, 900, n_parcels))
    if built_year is None:
        year = np.clip(np.rint(rng.normal(2008, 9, n_parcels)), 1980, 2025).astype(np.int64)
    else:
        year = np.full(n_parcels, built_year, dtype=np.int64)
    usage = pick(rng, USAGES, n_parcels, _USAGE_WEIGHTS)

    parcel = (
        np.sort(rng.integers(0, n_parcels, n)) if built_year is None else np.arange(n) // per_parcel
    )
    position = rank_within(parcel)
    unit_id = lazy(
        _UnitIds(district, street_code, block_code, digits(parcel_no, 5)), parcel, position
    )
    address = lazy(_UnitAddresses(district_name, street_name, house_no), parcel, position)
    unit_usage = usage[parcel]
    area = np.select(
        [unit_usage == "住宅", unit_usage == "商业", unit_usage == "办公"],
        [rng.normal(105, 25, n), rng.uniform(30, 300, n), rng.uniform(60, 400, n)],
        rng.uniform(200, 3000, n),
    )
    area = np.round(np.clip(area, 35, 5000), 2)
    built = year[parcel]
    if built_year is None:
        stamps = moments_between(
            rng, (built - 1970).astype("datetime64[Y]").astype("datetime64[D]") + 180, day0_close()
        )
    else:
        stamps = office_hours(rng, ctx.day, n)
    rows = Rows(
        {
            "unit_id": unit_id,
            "district_code": district[parcel],
            "address": address,
            "floor_area": lazy(yuan, area),
            "usage": unit_usage,
            "built_year": built.astype(str),
            "updated_at": lazy(timestamps_text, stamps),
        }
    )
    return rows, area, unit_usage


class _UnitIds:
    """不动产单元号 of units (parcel, position in the parcel) from the parcels' codes."""

    def __init__(self, *parcel_codes: npt.NDArray[np.str_]) -> None:
        self.district, self.street, self.block, self.number = parcel_codes

    def __call__(
        self, parcel: npt.NDArray[np.int64], position: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.str_]:
        building = position // UNITS_PER_BUILDING + 1
        household = position % UNITS_PER_BUILDING
        unit_id = np.strings.add(
            np.strings.add(
                np.strings.add(self.district[parcel], self.street[parcel]), self.block[parcel]
            ),
            np.strings.add(np.strings.add("GB", self.number[parcel]), "F"),
        )
        return np.strings.add(
            np.strings.add(unit_id, digits(building, 4)), digits(household + 1, 4)
        )


class _UnitAddresses:
    """Addresses of units (parcel, position in the parcel): street, 号, 栋, 单元, 室."""

    def __init__(self, *parcel_texts: npt.NDArray[np.str_]) -> None:
        self.district_name, self.street_name, self.house_no = parcel_texts

    def __call__(
        self, parcel: npt.NDArray[np.int64], position: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.str_]:
        building = position // UNITS_PER_BUILDING + 1
        household = position % UNITS_PER_BUILDING
        room = ((household % 12) // 2 + 1) * 100 + household % 2 + 1
        address = np.strings.add(
            np.strings.add(self.district_name[parcel], self.street_name[parcel]),
            np.strings.add(self.house_no[parcel], "号"),
        )
        address = np.strings.add(np.strings.add(address, digits(building)), "栋")
        address = np.strings.add(np.strings.add(address, digits(household // 12 + 1)), "单元")
        return np.strings.add(np.strings.add(address, digits(room)), "室")


def _shares(
    rng: np.random.Generator,
    co: npt.NDArray[np.str_],
    owners: npt.NDArray[np.int64],
    cert: npt.NDArray[np.int64],
    rank: npt.NDArray[np.int64],
) -> npt.NDArray[np.str_]:
    """Share of each owner (certificate ``cert``, ``rank`` among its owners): 1 alone,
    halves for a couple, fixed splits by share."""
    split2 = np.array(
        [
            ("0.6000", "0.4000"),
            ("0.7000", "0.3000"),
            ("0.5000", "0.5000"),
            ("0.8000", "0.2000"),
        ]
    )
    split3 = np.array(
        [
            ("0.4000", "0.3000", "0.3000"),
            ("0.5000", "0.2500", "0.2500"),
            ("0.3334", "0.3333", "0.3333"),
        ]
    )
    choice2 = rng.integers(0, len(split2), len(co))[cert]
    choice3 = rng.integers(0, len(split3), len(co))[cert]
    count = owners[cert]
    shares: npt.NDArray[np.str_] = np.where(
        count == 1,
        "1.0000",
        np.where(
            co[cert] == "共同共有",
            "0.5000",
            np.where(
                count == 2,
                split2[choice2, np.minimum(rank, 1)],
                split3[choice3, np.minimum(rank, 2)],
            ),
        ),
    )
    return shares


def _of_age(
    rng: np.random.Generator, births: npt.NDArray[np.datetime64], on: npt.NDArray[np.datetime64]
) -> npt.NDArray[np.int64]:
    """Positions in ``births`` (sorted) of persons at least 20 years old on the dates ``on``."""
    limit = np.searchsorted(births, on - np.timedelta64(20 * 365 + 5, "D"), side="right")
    limit = np.clip(limit, 2, len(births))  # the oldest persons when nobody was old enough
    positions: npt.NDArray[np.int64] = (rng.random(len(on)) * limit).astype(np.int64)
    return positions


def build(ctx: Context) -> HousingFacts:
    """Create the housing tables with day 0's records; return what the tax bureau needs."""
    # the tables are made by a function of their own: its working arrays (owners, dates,
    # shares: 100-200 bytes a right) are gone before the tables are written
    tables, facts = _day0_tables(ctx)
    store = SqlStore(ctx.settings.sim_housing_url)
    try:
        for spec in SPECS:  # each table is let go once written (memory: those not yet)
            write_day0(ctx, store, spec, tables.pop(spec.resource), "housing")
    finally:
        store.close()
    return facts


def _day0_tables(ctx: Context) -> tuple[dict[str, Rows], HousingFacts]:
    """Day 0's four tables before faults (by resource), and what the tax bureau needs."""
    world = ctx.world
    today = ctx.today
    rng = ctx.rng("housing.units")
    units, area, usage = make_units(ctx, rng, ctx.size(4000, 10))
    n_units = len(units)
    built = units["built_year"].astype(np.int64)

    # --- certificates: one current per registered unit, a historical one for resales
    rng = ctx.rng("housing.rights")
    registered = np.flatnonzero((rng.random(n_units) < 0.95) & (built <= 2025))
    built_date = (built[registered] - 1970).astype("datetime64[Y]").astype("datetime64[D]") + 180
    first = np.minimum(built_date + _days(rng, 60, 400, len(registered)), today - 2)
    resold = rng.random(len(registered)) < 0.10
    span = np.maximum((today - first).astype(np.int64), 2)
    transfer = np.minimum(
        first + (rng.random(len(registered)) * span).astype("timedelta64[D]"), today - 1
    )
    current_date = np.where(resold, transfer, first)
    unit_usage = usage[registered]
    firm_owned = (unit_usage != "住宅") & (rng.random(len(registered)) < 0.4)
    co = np.where(
        firm_owned,
        "单独所有",
        pick(rng, ("单独所有", "共同共有", "按份共有"), len(registered), (0.75, 0.2, 0.05)),
    )
    owners = np.where(
        co == "单独所有", 1, np.where(co == "共同共有", 2, rng.integers(2, 4, len(registered)))
    )
    by_birth = np.argsort(world.person_birth, kind="stable")
    first_owner = _of_age(rng, world.person_birth[by_birth], current_date)
    firm_pick = rng.integers(0, len(world.firm_code), len(registered))
    current_no = certificate_numbers(ctx, _year(current_date), "certificate")

    cert = np.repeat(np.arange(len(registered)), owners)
    rank = rank_within(cert)
    # co-owners: the next older persons, of about the same age as the first owner
    position = first_owner[cert]
    person = by_birth[np.where(position >= rank, position - rank, position + rank)]
    is_firm = firm_owned[cert]
    # owners: enterprises (table 0) or persons (table 1) of the world
    owner_table = np.where(is_firm, 0, 1).astype(np.int8)
    owner = np.where(is_firm, firm_pick[cert], person)
    owner_ids = Lookup(world.firm_code, world.person_id)
    owner_names = Lookup(world.firm_name, world.person_name)
    share = _shares(rng, co, owners, cert, rank)
    unit_ids = units.columns["unit_id"]
    assert isinstance(unit_ids, Lazy)
    current = Rows(
        {
            "certificate_no": current_no.take(cert),
            "unit_id": unit_ids.take(registered[cert]),
            "owner_id": owner_ids.of(owner, owner_table),
            "owner_name": owner_names.of(owner, owner_table),
            "share": share,
            "co_ownership": co[cert],
            "registered_date": lazy(dates_text, current_date[cert]),
            "status": np.full(len(cert), "现势"),
            "updated_at": lazy(
                timestamps_text, moments_between(rng, current_date[cert], day0_close())
            ),
        }
    )
    # the seller's right became historical when the buyer's was registered
    old = np.flatnonzero(resold)
    seller = by_birth[_of_age(rng, world.person_birth[by_birth], first[old])]
    seller_table = np.ones(len(seller), dtype=np.int8)
    history = Rows(
        {
            "certificate_no": certificate_numbers(ctx, _year(first[old]), "certificate"),
            "unit_id": unit_ids.take(registered[old]),
            "owner_id": owner_ids.of(seller, seller_table),
            "owner_name": owner_names.of(seller, seller_table),
            "share": np.full(len(old), "1.0000"),
            "co_ownership": np.full(len(old), "单独所有"),
            "registered_date": lazy(dates_text, first[old]),
            "status": np.full(len(old), "历史"),
            "updated_at": lazy(timestamps_text, moments_between(rng, transfer[old], day0_close())),
        }
    )
    rights = Rows.concat([current, history])
    first_row = np.flatnonzero(rank == 0)  # the first owner of each current certificate

    # --- sales contracts: every resale, and new-build sales filed online since 2010
    rng = ctx.rng("housing.contracts")
    new_build = np.flatnonzero(~resold & ~firm_owned & (_year(current_date) >= 2010))
    want = max(0, ctx.size(1200) - len(old))
    new_build = np.sort(rng.choice(new_build, size=min(want, len(new_build)), replace=False))
    sold = np.concatenate([old, new_build])
    kind = np.concatenate([np.full(len(old), "存量房"), np.full(len(new_build), "新建商品房")])
    developers = np.flatnonzero(world.firm_kind == "1")
    developer = world.firm_code[developers[rng.integers(0, len(developers), len(new_build))]]
    seller_id = np.concatenate([world.person_id[seller], developer])
    buyer_id = current.text("owner_id", first_row[sold]).astype(str)
    signed = current_date[sold] - _days(rng, 20, 120, len(sold))
    unit_price = np.where(
        kind == "新建商品房", rng.normal(7800, 1400, len(sold)), rng.normal(6500, 1500, len(sold))
    )
    price = np.round(area[registered][sold] * np.clip(unit_price, 3500, 16000), -2)
    status = pick(rng, ("已备案", "已撤销"), len(sold), (0.97, 0.03))
    contracts = Rows(
        {
            "contract_no": contract_numbers(
                ctx, units["district_code"][registered][sold].astype(str), _year(signed)
            ),
            "unit_id": unit_ids.take(registered[sold]),
            "seller_id": seller_id,
            "buyer_id": buyer_id,
            "price": lazy(yuan, price),
            "signed_date": lazy(dates_text, signed),
            "contract_type": kind,
            "status": status,
            "updated_at": lazy(timestamps_text, moments_between(rng, signed, day0_close())),
        }
    )

    # --- mortgages on person-owned homes
    rng = ctx.rng("housing.mortgages")
    homes = np.flatnonzero(~firm_owned & (unit_usage == "住宅"))
    mortgaged = np.sort(rng.choice(homes, size=min(ctx.size(1500), len(homes)), replace=False))
    start = np.minimum(current_date[mortgaged] + _days(rng, 0, 20, len(mortgaged)), today - 1)
    years = rng.choice(np.array([10, 15, 20, 25, 30]), len(mortgaged))
    end = start + np.rint(years * 365.25).astype("timedelta64[D]")
    value = area[registered][mortgaged] * np.clip(
        rng.normal(7000, 1200, len(mortgaged)), 3500, 16000
    )
    amount = np.round(value * rng.uniform(0.45, 0.7, len(mortgaged)), -3)
    released = (end < today) | (rng.random(len(mortgaged)) < 0.12)
    mortgages = Rows(
        {
            "mortgage_no": certificate_numbers(ctx, _year(start), "mortgage"),
            "certificate_no": current_no.take(mortgaged),
            "mortgagee": pick(rng, BANKS, len(mortgaged), BANK_WEIGHTS),
            "amount": lazy(yuan, amount),
            "start_date": lazy(dates_text, start),
            "end_date": lazy(dates_text, end),
            "status": np.where(released, "已注销", "有效"),
            "updated_at": lazy(timestamps_text, moments_between(rng, start, day0_close())),
        }
    )

    tables = {
        UNITS.resource: units,
        RIGHTS.resource: rights,
        MORTGAGES.resource: mortgages,
        CONTRACTS.resource: contracts,
    }
    deeds = status == "已备案"
    firm_rows = np.flatnonzero(is_firm)
    return tables, HousingFacts(
        deed_buyer=buyer_id[deeds],
        deed_certificate=current_no.text(sold[deeds]),
        deed_price=price[deeds],
        deed_date=current_date[sold][deeds],
        owner_persons=np.unique(np.concatenate([person[~is_firm], seller])),
        firm_certificate=current_no.text(cert[firm_rows]).astype(str),
        firm_owner=world.firm_code[firm_pick[cert[firm_rows]]],
        firm_area=area[registered][cert[firm_rows]],
    )


def contract_numbers(
    ctx: Context, district: npt.NDArray[np.str_], years: npt.NDArray[np.int64]
) -> npt.NDArray[np.str_]:
    """合同备案号 HT + district + year + sequence of the year, e.g. HT3602032024000123."""
    sequence = np.zeros(len(years), dtype=np.int64)
    for year in np.unique(years):
        here = years == year
        sequence[here] = ctx.next_numbers(f"contract:{year}", int(here.sum()))
    return np.strings.add(
        np.strings.add(np.strings.add("HT", district), years.astype("<U4")), digits(sequence, 6)
    )


def manifests() -> dict[str, ResourceManifest]:
    return {
        spec.resource: ResourceManifest(
            system="housing",
            location=spec.table,
            key=list(spec.key),
            id_column=spec.id_column,
            fault_columns=list(spec.fault_columns),
        )
        for spec in SPECS
    }


def advance(ctx: Context) -> None:
    """One day at the registration centre: new buildings, registrations, mortgages, sales.

    Today's new certificates are left in ``ctx.notes["certificates"]`` for the tax bureau.
    """
    world = ctx.world
    today = ctx.today
    adults = world.adults(today, 20, 90)
    store = SqlStore(ctx.settings.sim_housing_url)
    try:
        # the pools of the day, read a chunk at a time and kept as bytes
        unit_pool = TextPool(part["unit_id"] for part in store.scan(UNITS.table, ["unit_id"]))
        certificate_pool = TextPool(
            part["certificate_no"][part["status"] == "现势"]
            for part in store.scan(RIGHTS.table, ["certificate_no", "status"])
        )
        new_certificates: list[Rows] = []

        def new_units(rng: np.random.Generator, n: int) -> Rows:
            return make_units(ctx, rng, n, built_year=int(_year(np.array([today]))[0]))[0]

        def change_units(rng: np.random.Generator, rows: Rows) -> Rows:
            area = np.array([float(v) for v in rows["floor_area"]]) * rng.uniform(
                0.97, 1.03, len(rows)
            )
            return Rows({"floor_area": yuan(np.round(area, 2))})

        def new_rights(rng: np.random.Generator, n: int) -> Rows:
            person = adults[rng.integers(0, len(adults), n)]
            rows = Rows(
                {
                    "certificate_no": certificate_numbers(
                        ctx, np.full(n, _year(np.array([today]))[0]), "certificate"
                    ),
                    "unit_id": unit_pool[rng.integers(0, len(unit_pool), n)]
                    if len(unit_pool)
                    else np.full(n, None),
                    "owner_id": world.person_id[person],
                    "owner_name": world.person_name[person],
                    "share": np.full(n, "1.0000"),
                    "co_ownership": np.full(n, "单独所有"),
                    "registered_date": np.full(n, str(today)),
                    "status": np.full(n, "现势"),
                    "updated_at": timestamps_text(office_hours(rng, ctx.day, n)),
                }
            )
            # a copy: the faults injected next are typing errors of housing, not of tax
            new_certificates.append(
                Rows({name: rows[name].copy() for name in ("certificate_no", "owner_id")})
            )
            return rows

        def change_rights(rng: np.random.Generator, rows: Rows) -> Rows:
            return Rows({"status": np.full(len(rows), "历史")})

        def new_mortgages(rng: np.random.Generator, n: int) -> Rows:
            years = rng.choice(np.array([10, 15, 20, 25, 30]), n)
            end = today + np.rint(years * 365.25).astype("timedelta64[D]")
            pool = certificate_pool if len(certificate_pool) else TextPool([np.array(["-"])])
            return Rows(
                {
                    "mortgage_no": certificate_numbers(
                        ctx, np.full(n, _year(np.array([today]))[0]), "mortgage"
                    ),
                    "certificate_no": pool[rng.integers(0, len(pool), n)],
                    "mortgagee": pick(rng, BANKS, n, BANK_WEIGHTS),
                    "amount": yuan(np.round(rng.uniform(200_000, 1_200_000, n), -3)),
                    "start_date": np.full(n, str(today)),
                    "end_date": dates_text(end),
                    "status": np.full(n, "有效"),
                    "updated_at": timestamps_text(office_hours(rng, ctx.day, n)),
                }
            )

        def change_mortgages(rng: np.random.Generator, rows: Rows) -> Rows:
            return Rows({"status": np.full(len(rows), "已注销")})

        def new_contracts(rng: np.random.Generator, n: int) -> Rows:
            buyer = adults[rng.integers(0, len(adults), n)]
            seller = adults[rng.integers(0, len(adults), n)]
            developers = np.flatnonzero(world.firm_kind == "1")
            new_build = rng.random(n) < 0.5
            seller_id = np.where(
                new_build,
                world.firm_code[developers[rng.integers(0, len(developers), n)]],
                world.person_id[seller],
            )
            units_today = (
                unit_pool[rng.integers(0, len(unit_pool), n)] if len(unit_pool) else np.full(n, "")
            )
            unit_district = np.array([str(u)[:6] for u in units_today], dtype="<U6")
            price = np.round(rng.uniform(60, 160, n) * rng.normal(7500, 1200, n), -2)
            return Rows(
                {
                    "contract_no": contract_numbers(
                        ctx, unit_district, np.full(n, _year(np.array([today]))[0])
                    ),
                    "unit_id": units_today,
                    "seller_id": seller_id,
                    "buyer_id": world.person_id[buyer],
                    "price": yuan(np.maximum(price, 100_000)),
                    "signed_date": np.full(n, str(today)),
                    "contract_type": np.where(new_build, "新建商品房", "存量房"),
                    "status": np.full(n, "已备案"),
                    "updated_at": timestamps_text(office_hours(rng, ctx.day, n)),
                }
            )

        def change_contracts(rng: np.random.Generator, rows: Rows) -> Rows:
            return Rows({"status": np.full(len(rows), "已撤销")})

        plans = (
            DayPlan(UNITS, new_units, change_units, ("floor_area",)),
            DayPlan(RIGHTS, new_rights, change_rights),
            DayPlan(MORTGAGES, new_mortgages, change_mortgages),
            DayPlan(CONTRACTS, new_contracts, change_contracts),
        )
        for plan in plans:
            spec = plan.spec
            result = apply_day(
                store,
                plan,
                ctx.rng(f"housing.{spec.resource}"),
                ctx.day,
                ctx.rates,
                count_lines=False,
            )
            record_day(ctx, spec, result.counts, result.injected, store)
        ctx.notes["certificates"] = (
            Rows.concat(new_certificates)
            if new_certificates
            else Rows.empty(["certificate_no", "owner_id"])
        )
    finally:
        store.close()
