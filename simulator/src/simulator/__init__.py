"""Simulated department systems of Jingdezhen (景德镇, 360200) for the demo and the tests.

``simulate`` builds four systems from a seed and a scale factor, with faults injected at
known rates; ``advance_day`` applies one simulated day of changes; the manifest
(``systems_dir/manifest.json``) says exactly what each system holds and what changed:

- housing: SQL database at ``HUB_SIM_HOUSING_URL`` (SQLite default, PostgreSQL);
- tax: SQL database at ``HUB_SIM_TAX_URL`` (SQLite default, MariaDB/MySQL);
- social: daily CSV drops under ``systems_dir/sftp/root/drops`` (served over SFTP);
- registry: ``systems_dir/registry.db``, served as a paged JSON API with the token in
  ``systems_dir/secrets/registry``.

At scale 1 the city has about 10,000 persons and 800 enterprises; every table grows
linearly with ``scale``.

The hub never imports this package: ``hub simulate`` and the demo's department systems
reach it through the ``exchange_hub.simulator`` entry point (:mod:`simulator.hub_plugin`),
and the hub finds the systems' connections in ``systems_dir/demo.env`` under its demo
profile (``HUB_PROFILE=demo``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hub.catalog import Catalog, load_catalog
from hub.settings import Settings
from simulator import housing, registry, social, tax
from simulator.clock import DAY0, day_date
from simulator.faults import FaultRates, SimulationError
from simulator.identities import make_firms, make_people
from simulator.manifest import Manifest, read_manifest, save_manifest
from simulator.settings import SimulatorSettings, simulator_settings, write_demo_env
from simulator.world import (
    FIRMS_FILE,
    PERSONS_FILE,
    STATE_FILE,
    CitizenIds,
    Coded,
    Context,
    World,
    read_state,
)

__all__ = ["FaultRates", "SimulationError", "advance_day", "load_manifest", "simulate"]

PERSONS_AT_SCALE_1 = 10_000
ENTERPRISES_AT_SCALE_1 = 800


def _catalog(settings: SimulatorSettings) -> Catalog:
    """The catalog, checked against the tables and files the simulator writes.

    Raises SimulationError when a resource the simulator feeds is missing or points
    elsewhere (the catalog is the contract for table and column names).
    """
    catalog = load_catalog(settings.catalog_dir)
    expected = {
        **{spec.resource: spec.table for spec in (*housing.SPECS, *tax.SPECS)},
        **{spec.resource: f"/{spec.table}" for spec in registry.SPECS},
    }
    for code, where in expected.items():
        try:
            resource = catalog.resource(code)
        except KeyError as exc:
            raise SimulationError(f"the catalog has no resource {code!r}") from exc
        found = resource.source.table or resource.source.path
        if found != where:
            raise SimulationError(
                f"catalog resource {code}: source is {found!r}, expected {where!r}"
            )
    for code, entry in social.manifests().items():
        try:
            pattern = catalog.resource(code).source.file_pattern
        except KeyError as exc:
            raise SimulationError(f"the catalog has no resource {code!r}") from exc
        if pattern != entry.location:
            raise SimulationError(
                f"catalog resource {code}: file_pattern is {pattern!r}, expected {entry.location!r}"
            )
    return catalog


def _clear(settings: SimulatorSettings) -> None:
    """Remove what an earlier run of the simulator left (not other services' files)."""
    folder = settings.systems_dir
    folder.mkdir(parents=True, exist_ok=True)
    for name in (STATE_FILE, PERSONS_FILE, FIRMS_FILE, social.LEDGER_FILE, "manifest.json"):
        (folder / name).unlink(missing_ok=True)


def simulate(
    settings: Settings, *, scale: float = 1.0, seed: int = 7, faults: FaultRates | None = None
) -> dict[str, Any]:
    """Build fresh department systems (day 0) and return the manifest, also written to
    ``settings.systems_dir / "manifest.json"``.

    Existing simulated tables are dropped and created again, the drops folder and the
    registry tables replaced. Raises ValueError for a scale that is not positive,
    SimulationError when the catalog does not match or a database is unreachable.
    """
    if not scale > 0:
        raise ValueError(f"scale: expected a positive number, got {scale}")
    settings = simulator_settings(settings)
    rates = faults or FaultRates()
    catalog = _catalog(settings)
    _clear(settings)
    manifest = Manifest(
        seed=seed,
        scale=scale,
        day=0,
        clock=str(DAY0),
        fault_rates=rates.as_dict(),
        resources=dict(
            sorted(
                {
                    **housing.manifests(),
                    **tax.manifests(),
                    **social.manifests(),
                    **registry.manifests(),
                }.items()
            )
        ),
    )
    ctx = Context(
        settings=settings,
        catalog=catalog,
        rates=rates,
        seed=seed,
        scale=scale,
        day=0,
        world=_empty_world(),
        manifest=manifest,
    )
    rng = ctx.rng("world")
    people = make_people(rng, ctx.size(PERSONS_AT_SCALE_1, 50), DAY0)
    firms = make_firms(rng, ctx.size(ENTERPRISES_AT_SCALE_1, 5), DAY0)
    ctx.world = World(
        person_id=CitizenIds(people.citizen_id_body),
        person_name=people.name,
        person_sex=Coded.of(people.sex),
        person_birth=people.birth_date,
        person_district=Coded.of(people.district),
        firm_code=firms.credit_code,
        firm_name=firms.name,
        firm_kind=firms.kind,
        firm_established=firms.established,
    )
    del people, firms  # their addresses are not needed
    registry.build(ctx)
    facts = housing.build(ctx)
    tax.build(ctx, facts)
    social.build(ctx)
    ctx.save_state()
    write_demo_env(settings)
    return save_manifest(settings.systems_dir, manifest)


def advance_day(settings: Settings) -> dict[str, Any]:
    """Apply one simulated day of changes to the existing systems; return the updated
    manifest (also written).

    Raises FileNotFoundError when ``simulate`` has not run under this HUB_HOME,
    SimulationError when a database is unreachable.
    """
    settings = simulator_settings(settings)
    manifest = read_manifest(settings.systems_dir)
    state = read_state(settings.systems_dir)
    day = manifest.day + 1
    ctx = Context(
        settings=settings,
        catalog=_catalog(settings),
        rates=FaultRates.from_dict(manifest.fault_rates),
        seed=manifest.seed,
        scale=manifest.scale,
        day=day,
        world=World.load(settings.systems_dir),
        manifest=manifest,
        counters={str(k): int(v) for k, v in state["counters"].items()},
    )
    registry.advance(ctx)
    housing.advance(ctx)
    tax.advance(ctx)
    social.advance(ctx)
    manifest.day = day
    manifest.clock = str(day_date(day))
    ctx.save_state()
    return save_manifest(settings.systems_dir, manifest)


def load_manifest(settings: Settings) -> dict[str, Any]:
    """The manifest of the simulated systems. Raises FileNotFoundError when there is none."""
    return read_manifest(settings.systems_dir).model_dump(mode="json")


def _empty_world() -> World:
    text = np.zeros(0, dtype=str)
    dates = np.zeros(0, dtype="datetime64[D]")
    nobody = CitizenIds(np.zeros(0, dtype=np.int64))
    return World(nobody, text, Coded.of(text), dates, Coded.of(text), text, text, text, dates)
