"""The tax bureau: a SQL database (MariaDB in production, SQLite embedded).

Tables ``taxpayers`` (persons by citizen ID, organisations by credit code),
``tax_payments`` (deed tax for the property registrations of the housing department,
property tax of enterprise-owned property, individual income tax, VAT) and
``tax_clearances``. On the first simulated day the bureau's system is upgraded:
``tax_payments`` gains a column ``invoice_code`` that the catalog does not know
(schema drift the connector must ignore and report).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from simulator.changes import DayPlan, TableSpec, apply_day, record_day, write_day0
from simulator.clock import (
    dates_text,
    day0_close,
    moments_between,
    office_hours,
    replace,
    timestamps_text,
    yuan,
)
from simulator.housing import HousingFacts
from simulator.identities import digits, id_bodies, party_valid_check, pick, ric_valid_check
from simulator.manifest import ResourceManifest
from simulator.rows import Lazy, Lookup, Rows, lazy, rank_within
from simulator.sqlstore import SqlStore
from simulator.world import CitizenIds, Context

TAXPAYERS = TableSpec(
    resource="taxpayers",
    table="taxpayers",
    key=("taxpayer_id",),
    id_column="taxpayer_id",
    fault_columns=("name", "registered_date"),
    lengths={"taxpayer_id": 18, "taxpayer_type": 8, "name": 100, "status": 8},
)
PAYMENTS = TableSpec(
    resource="tax_payments",
    table="tax_payments",
    key=("payment_id",),
    id_column="taxpayer_id",
    fault_columns=("amount", "paid_date"),
    lengths={
        "payment_id": 20,
        "taxpayer_id": 18,
        "tax_type": 16,
        "tax_period": 7,
        "certificate_no": 64,
    },
)
CLEARANCES = TableSpec(
    resource="tax_clearances",
    table="tax_clearances",
    key=("clearance_no",),
    id_column="taxpayer_id",
    fault_columns=("issued_date", "result"),
    lengths={"clearance_no": 32, "taxpayer_id": 18, "result": 8},
)
SPECS = (TAXPAYERS, PAYMENTS, CLEARANCES)
DRIFT_COLUMN = "invoice_code"
DRIFT_DAY = 1
TAXPAYER_SHARE = 0.7  # of the city's persons


def payment_ids(paid: npt.NDArray[np.datetime64]) -> Lazy:
    """电子税票号码: 336 + payment date + sequence of the day (18 digits)."""
    day = paid.astype("datetime64[D]")
    return lazy(_render_payment_id, day, rank_within(day.astype(np.int64)) + 1)


def _render_payment_id(
    day: npt.NDArray[np.datetime64], sequence: npt.NDArray[np.int64]
) -> npt.NDArray[np.str_]:
    stamp = replace(dates_text(day), "-", "")
    return np.strings.add(np.strings.add("336", stamp), digits(sequence, 7))


def clearance_numbers(ctx: Context, issued: npt.NDArray[np.datetime64]) -> npt.NDArray[np.str_]:
    """证明编号 WQ + 360200 + year + sequence of the year, e.g. WQ3602002026000123."""
    years = issued.astype("datetime64[Y]").astype(np.int64) + 1970
    sequence = np.zeros(len(issued), dtype=np.int64)
    for year in np.unique(years):
        here = years == year
        sequence[here] = ctx.next_numbers(f"clearance:{year}", int(here.sum()))
    return np.strings.add(np.strings.add("WQ360200", years.astype("<U4")), digits(sequence, 6))


def _months_text(months: npt.NDArray[np.datetime64]) -> npt.NDArray[np.str_]:
    return np.datetime_as_string(months.astype("datetime64[M]"), unit="M")


def _income_and_vat(
    rng: np.random.Generator,
    persons: npt.NDArray[np.int64],
    firms: int,
    n: int,
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Monthly withholding: individual income tax (3/4) and enterprises' VAT (1/4).

    Returns which are VAT, the payers (an enterprise's index for VAT, else the world index
    of a person among ``persons``) and the amounts.
    """
    is_vat = (rng.random(n) < 0.25) & (firms > 0)
    if len(persons) == 0:
        is_vat[:] = True
    # both draws are made, as the text of both choices was before
    firm = rng.integers(0, max(firms, 1), n) if firms else np.zeros(n, dtype=np.int64)
    person = (
        persons[rng.integers(0, max(len(persons), 1), n)]
        if len(persons)
        else np.zeros(n, dtype=np.int64)
    )
    payer = np.where(is_vat, firm, person)
    amount = np.where(
        is_vat, np.exp(rng.normal(np.log(6000), 1.1, n)), np.exp(rng.normal(np.log(350), 1.0, n))
    )
    return is_vat, payer, np.clip(np.round(amount, 2), 1, 5_000_000)


def build(ctx: Context, facts: HousingFacts) -> None:
    """Create the tax tables with day 0's records."""
    # each table is made by a function of its own (its working arrays are gone once it
    # is made), written as soon as it is made and then let go (memory: one table at a
    # time); its own random streams keep the values those of any order
    taxpayers, person_index = _taxpayers(ctx, facts)
    taxpayer_ids = taxpayers.columns["taxpayer_id"]
    assert isinstance(taxpayer_ids, Lazy)
    taxpayer_ids = taxpayer_ids.copy()  # the clearances name them before faults
    store = SqlStore(ctx.settings.sim_tax_url)
    try:
        write_day0(ctx, store, TAXPAYERS, taxpayers, "tax")
        del taxpayers
        write_day0(ctx, store, PAYMENTS, _payments(ctx, facts, person_index), "tax")
        write_day0(ctx, store, CLEARANCES, _clearances(ctx, taxpayer_ids), "tax")
    finally:
        store.close()


def _taxpayers(ctx: Context, facts: HousingFacts) -> tuple[Rows, npt.NDArray[np.int64]]:
    """Day 0's taxpayers, and the world indexes of the persons among them."""
    world = ctx.world
    today = ctx.today
    rng = ctx.rng("tax.taxpayers")
    # owners and buyers of property pay taxes; fill up with other adults to ~70%
    adults = world.adults(today, 18, 100)
    # every deed buyer owns a current right: the owners include them
    owners = np.zeros(len(world.person_id), dtype=bool)
    owners[facts.owner_persons] = True
    target = round(TAXPAYER_SHARE * len(world.person_id))
    others = rng.permutation(adults[~owners[adults]])
    person_index = np.sort(
        np.concatenate([np.flatnonzero(owners), others[: max(0, target - int(owners.sum()))]])
    )
    n_persons = len(person_index)
    n_firms = len(world.firm_code)
    adult_day = world.person_birth[person_index] + np.timedelta64(18 * 365 + 5, "D")
    person_since = np.maximum(adult_day, np.datetime64("1994-01-01"))
    person_span = np.maximum((today - person_since).astype(np.int64), 1)
    person_registered = person_since + (rng.random(n_persons) * person_span).astype(
        "timedelta64[D]"
    )
    firm_registered = np.minimum(
        world.firm_established + rng.integers(0, 30, n_firms).astype("timedelta64[D]"), today - 1
    )
    registered = np.concatenate([person_registered, firm_registered]).astype("datetime64[D]")
    n = n_persons + n_firms
    # persons first (table 0), then enterprises (table 1)
    table = np.repeat(np.array([0, 1], dtype=np.int8), [n_persons, n_firms])
    which = np.concatenate([person_index, np.arange(n_firms)])
    taxpayers = Rows(
        {
            "taxpayer_id": Lookup(world.person_id, world.firm_code).of(which, table),
            "taxpayer_type": np.concatenate(
                [np.full(n_persons, "自然人"), np.full(n_firms, "单位")]
            ),
            "name": Lookup(world.person_name, world.firm_name).of(which, table),
            "registered_date": lazy(dates_text, registered),
            "status": pick(rng, ("正常", "非正常", "注销"), n, (0.93, 0.04, 0.03)),
            "updated_at": lazy(timestamps_text, moments_between(rng, registered, day0_close())),
        }
    )
    return taxpayers, person_index


def _payments(ctx: Context, facts: HousingFacts, person_index: npt.NDArray[np.int64]) -> Rows:
    """Day 0's payments: deed tax, enterprises' property tax, monthly withholding."""
    world = ctx.world
    today = ctx.today
    rng = ctx.rng("tax.payments")
    # deed tax: the buyer pays 1-3 % of the price shortly before the registration
    deed_paid = facts.deed_date - rng.integers(0, 6, len(facts.deed_date)).astype("timedelta64[D]")
    deed_rate = rng.choice(np.array([0.01, 0.015, 0.03]), len(deed_paid), p=[0.55, 0.3, 0.15])
    # property tax: enterprises, for 2025 and 2026, paid in May
    years = np.repeat(np.array([2025, 2026]), len(facts.firm_certificate))
    house_paid = (
        (years - 1970).astype("datetime64[Y]").astype("datetime64[D]")
        + 120
        + rng.integers(9, 25, len(years)).astype("timedelta64[D]")
    )
    house_amount = np.tile(facts.firm_area, 2) * 7000 * 0.7 * 0.012
    # monthly withholding for the last twelve months, paid by the 15th of the next month
    rest = max(0, ctx.size(15000) - len(deed_paid) - len(years))
    # last month's tax is paid from the 1st of this month on: that is day-to-day business
    month = today.astype("datetime64[M]") - rng.integers(2, 14, rest).astype("timedelta64[M]")
    is_vat, payer, amount = _income_and_vat(rng, person_index, len(world.firm_code), rest)
    tax_type = np.where(is_vat, "增值税", "个人所得税")
    monthly_paid = (month + 1).astype("datetime64[D]") + rng.integers(0, 15, rest).astype(
        "timedelta64[D]"
    )
    paid = np.concatenate([deed_paid, house_paid, monthly_paid]).astype("datetime64[D]")
    period = np.concatenate(
        [
            deed_paid.astype("datetime64[M]"),
            (years - 1970).astype("datetime64[Y]").astype("datetime64[M]"),
            month.astype("datetime64[M]"),
        ]
    )
    # deed buyers (table 0), enterprise owners (1), enterprises (2), persons (3)
    n_deeds, n_house = len(deed_paid), len(years)
    table = np.concatenate(
        [
            np.zeros(n_deeds, dtype=np.int8),
            np.ones(n_house, dtype=np.int8),
            np.where(is_vat, 2, 3).astype(np.int8),
        ]
    )
    which = np.concatenate(
        [np.arange(n_deeds), np.tile(np.arange(len(facts.firm_owner)), 2), payer]
    )
    payers = Lookup(facts.deed_buyer, facts.firm_owner, world.firm_code, world.person_id)
    return Rows(
        {
            "payment_id": payment_ids(paid),
            "taxpayer_id": payers.of(which, table),
            "tax_type": np.concatenate(
                [np.full(len(deed_paid), "契税"), np.full(len(years), "房产税"), tax_type]
            ),
            "amount": lazy(
                yuan,
                np.concatenate([facts.deed_price * deed_rate, np.round(house_amount, 2), amount]),
            ),
            "paid_date": lazy(dates_text, paid),
            "tax_period": lazy(_months_text, period),
            "certificate_no": np.concatenate(
                [
                    facts.deed_certificate,
                    np.tile(facts.firm_certificate, 2).astype(object),
                    np.full(rest, None, dtype=object),
                ]
            ),
            "updated_at": lazy(timestamps_text, moments_between(rng, paid, day0_close())),
        }
    )


def _clearances(ctx: Context, taxpayer_ids: Lazy) -> Rows:
    """Day 0's tax clearance certificates of some taxpayers."""
    today = ctx.today
    rng = ctx.rng("tax.clearances")
    n_clear = ctx.size(1000)
    who = rng.integers(0, len(taxpayer_ids), n_clear)
    issued = today - rng.integers(1, 730, n_clear).astype("timedelta64[D]")
    return Rows(
        {
            "clearance_no": clearance_numbers(ctx, issued),
            "taxpayer_id": taxpayer_ids.take(who),
            "issued_date": lazy(dates_text, issued),
            "valid_until": lazy(dates_text, issued + 90),
            "result": pick(rng, ("无欠税", "有欠税"), n_clear, (0.96, 0.04)),
            "updated_at": lazy(timestamps_text, moments_between(rng, issued, day0_close())),
        }
    )


def manifests() -> dict[str, ResourceManifest]:
    return {
        spec.resource: ResourceManifest(
            system="tax",
            location=spec.table,
            key=list(spec.key),
            id_column=spec.id_column,
            fault_columns=list(spec.fault_columns),
        )
        for spec in SPECS
    }


def invoice_codes(rng: np.random.Generator, n: int) -> npt.NDArray[np.str_]:
    """全电发票号码: 20 digits (year, province 36, then a serial number)."""
    return np.strings.add("2636200000", digits(rng.integers(0, 10**10, n), 10))


def advance(ctx: Context) -> None:
    """One day at the tax bureau: new taxpayers (today's new owners first), payments
    (deed tax for today's registrations), clearances; the schema upgrade on day 1."""
    world = ctx.world
    today = ctx.today
    store = SqlStore(ctx.settings.sim_tax_url)
    try:
        payments = ctx.resource(PAYMENTS.resource)
        if DRIFT_COLUMN not in store.columns(PAYMENTS.table) and ctx.day >= DRIFT_DAY:
            store.add_column(PAYMENTS.table, DRIFT_COLUMN, "VARCHAR(20)")
            payments.drift.append(f"day {ctx.day}: {PAYMENTS.table}.{DRIFT_COLUMN} added")
        drifted = DRIFT_COLUMN in store.columns(PAYMENTS.table)
        certificates: Rows = ctx.notes.get("certificates") or Rows.empty(
            ["certificate_no", "owner_id"]
        )

        known: list[tuple[CitizenIds, npt.NDArray[np.str_]]] = []

        def known_taxpayers() -> tuple[CitizenIds, npt.NDArray[np.str_]]:
            """Persons (their ID bodies) and organisations with a valid ID, once today's
            taxpayers are in; read a chunk at a time."""
            if not known:
                persons: list[npt.NDArray[np.int64]] = []
                firms: list[npt.NDArray[np.str_]] = []
                for rows in store.scan(TAXPAYERS.table, ["taxpayer_id", "taxpayer_type"]):
                    valid = party_valid_check(rows["taxpayer_id"])
                    ids = rows["taxpayer_id"].astype(str)
                    person = rows["taxpayer_type"] == "自然人"
                    persons.append(id_bodies(ids[valid & person]))
                    firms.append(ids[valid & ~person])
                known.append(
                    (
                        CitizenIds(np.concatenate([np.zeros(0, dtype=np.int64), *persons])),
                        np.concatenate([np.zeros(0, dtype="<U18"), *firms]),
                    )
                )
            return known[0]

        def is_known(
            ids: npt.NDArray[np.str_], persons: CitizenIds, others: npt.NDArray[np.str_]
        ) -> npt.NDArray[np.bool_]:
            """``np.isin(ids, [*persons, *others])``: a valid citizen ID (not a credit
            code) equals one of ``persons`` exactly when its body does."""
            if len(ids) == 0:
                return np.zeros(0, dtype=bool)
            person = ric_valid_check(ids) & ~np.strings.startswith(ids, "9")
            bodies = id_bodies(np.where(person, ids, "0" * 18))
            found: npt.NDArray[np.bool_] = (person & np.isin(bodies, persons.bodies)) | np.isin(
                ids, others
            )
            return found

        def new_taxpayers(rng: np.random.Generator, n: int) -> Rows:
            # every taxpayer ID, read a chunk at a time: valid citizen IDs as their bodies
            existing_persons: list[npt.NDArray[np.int64]] = []
            existing_others: list[npt.NDArray[np.str_]] = []
            for rows in store.scan(TAXPAYERS.table, ["taxpayer_id"]):
                ids = rows["taxpayer_id"].astype(str)
                person = ric_valid_check(ids) & ~np.strings.startswith(ids, "9")
                existing_persons.append(id_bodies(ids[person]))
                existing_others.append(ids[~person])
            existing = CitizenIds(np.concatenate([np.zeros(0, dtype=np.int64), *existing_persons]))
            existing_other = np.concatenate([np.zeros(0, dtype="<U18"), *existing_others])
            adults = world.adults(today, 18, 100)
            candidates = np.concatenate(
                [
                    certificates["owner_id"].astype(str),
                    world.firm_code[::-1],  # today's new enterprises are at the end
                    world.person_id[rng.permutation(adults)[: 4 * n]],
                ]
            )
            _, first = np.unique(candidates, return_index=True)
            candidates = candidates[np.sort(first)]
            chosen = candidates[~is_known(candidates, existing, existing_other)][:n]
            is_firm = np.strings.startswith(chosen, "9")
            # the names of the chosen persons only (every person of the world chosen is
            # found by the body of the ID)
            bodies = id_bodies(chosen[~is_firm])
            found = np.flatnonzero(np.isin(world.person_id.bodies, bodies))
            person_name = dict(
                zip(world.person_id[found].tolist(), world.person_name[found].tolist(), strict=True)
            )
            firm_name = dict(zip(world.firm_code.tolist(), world.firm_name.tolist(), strict=True))
            names = [firm_name[c] if c.startswith("9") else person_name[c] for c in chosen.tolist()]
            m = len(chosen)
            return Rows(
                {
                    "taxpayer_id": chosen,
                    "taxpayer_type": np.where(is_firm, "单位", "自然人"),
                    "name": np.array(names, dtype=object),
                    "registered_date": np.full(m, str(today)),
                    "status": np.full(m, "正常"),
                    "updated_at": timestamps_text(office_hours(rng, ctx.day, m)),
                }
            )

        def change_taxpayers(rng: np.random.Generator, rows: Rows) -> Rows:
            return Rows(
                {"status": pick(rng, ("非正常", "注销", "正常"), len(rows), (0.5, 0.3, 0.2))}
            )

        def new_payments(rng: np.random.Generator, n: int) -> Rows:
            persons, firms = known_taxpayers()
            payer_ok = is_known(certificates["owner_id"].astype(str), persons, firms)
            deeds = np.flatnonzero(payer_ok)[: n // 5]
            rest = n - len(deeds)
            last_month = today.astype("datetime64[M]") - 1
            is_vat, which, amount = _income_and_vat(rng, np.arange(len(persons)), len(firms), rest)
            payer = np.where(
                is_vat,
                firms[np.where(is_vat, which, 0)] if len(firms) else np.full(rest, ""),
                persons[np.where(is_vat, 0, which)] if len(persons) else np.full(rest, ""),
            )
            tax_type = np.where(is_vat, "增值税", "个人所得税")
            deed_amount = (
                rng.uniform(60, 160, len(deeds)) * rng.normal(7500, 1200, len(deeds)) * 0.015
            )
            columns: dict[str, npt.ArrayLike | Lazy] = {
                "payment_id": payment_ids(np.full(n, today)),
                "taxpayer_id": np.concatenate([certificates["owner_id"][deeds].astype(str), payer]),
                "tax_type": np.concatenate([np.full(len(deeds), "契税"), tax_type]),
                "amount": yuan(np.concatenate([np.round(deed_amount, 2), amount])),
                "paid_date": np.full(n, str(today)),
                "tax_period": np.concatenate(
                    [np.full(len(deeds), str(today)[:7]), np.full(rest, str(last_month))]
                ),
                "certificate_no": np.concatenate(
                    [certificates["certificate_no"][deeds], np.full(rest, None, dtype=object)]
                ),
                "updated_at": timestamps_text(office_hours(rng, ctx.day, n)),
            }
            if drifted:
                columns[DRIFT_COLUMN] = invoice_codes(rng, n)
            return Rows(columns)

        def change_payments(rng: np.random.Generator, rows: Rows) -> Rows:
            amount = np.array([float(v) for v in rows["amount"]]) * rng.uniform(0.9, 1.0, len(rows))
            return Rows({"amount": yuan(np.round(amount, 2))})

        def new_clearances(rng: np.random.Generator, n: int) -> Rows:
            persons, firms = known_taxpayers()
            # positions in persons, then firms (as in the two one after the other)
            chosen = rng.integers(0, len(persons) + len(firms), n)
            is_person = chosen < len(persons)
            taxpayer_id = np.empty(n, dtype="<U18")
            taxpayer_id[is_person] = persons[chosen[is_person]]
            taxpayer_id[~is_person] = firms[chosen[~is_person] - len(persons)]
            return Rows(
                {
                    "clearance_no": clearance_numbers(ctx, np.full(n, today)),
                    "taxpayer_id": taxpayer_id,
                    "issued_date": np.full(n, str(today)),
                    "valid_until": np.full(n, str(today + 90)),
                    "result": pick(rng, ("无欠税", "有欠税"), n, (0.96, 0.04)),
                    "updated_at": timestamps_text(office_hours(rng, ctx.day, n)),
                }
            )

        def change_clearances(rng: np.random.Generator, rows: Rows) -> Rows:
            until = np.array([str(v) for v in rows["valid_until"]], dtype="datetime64[D]") + 90
            return Rows({"valid_until": dates_text(until)})

        plans = (
            DayPlan(TAXPAYERS, new_taxpayers, change_taxpayers),
            DayPlan(PAYMENTS, new_payments, change_payments, ("amount",)),
            DayPlan(CLEARANCES, new_clearances, change_clearances, ("valid_until",)),
        )
        for plan in plans:
            spec = plan.spec
            result = apply_day(
                store,
                plan,
                ctx.rng(f"tax.{spec.resource}"),
                ctx.day,
                ctx.rates,
                count_lines=False,
            )
            record_day(ctx, spec, result.counts, result.injected, store)
    finally:
        store.close()
