"""``hub share profile`` and ``hub share refresh``."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.catalog import Catalog
from hub.catalog.models import DemandSpec, RowScope
from hub.cli import app
from hub.demand import DemandBook
from hub.keys import authenticate
from hub.settings import Settings, reset_settings
from hub.sharing.layout import read_shape, shape_dir
from hub.sharing.shapes import GrantShape
from hub.storage.interface import open_ops
from tests.sharing.conftest import APP, GRANTED, SCENARIO, World


def test_profile_for_an_application_with_bulk_grants(
    settings: Settings, catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    unknown = runner.invoke(app, ["share", "profile", "no_such_app"])
    assert unknown.exit_code == 1 and "provident_fund_system" in unknown.output
    bad = runner.invoke(app, ["share", "profile", APP, "--endpoint", "ftp://hub", "--out",
                              str(tmp_path / "x.share")])  # fmt: skip
    assert bad.exit_code == 1 and "http" in bad.output

    nothing = runner.invoke(app, ["share", "profile", APP, "--out", str(tmp_path / "a.share")])
    assert nothing.exit_code == 0, nothing.output
    assert "no table is shared" in nothing.output
    document = json.loads((tmp_path / "a.share").read_text())
    assert set(document) == {"shareCredentialsVersion", "endpoint", "bearerToken"}
    assert document["endpoint"] == "http://127.0.0.1:8000/delta-sharing"

    expires = datetime(2027, 6, 30, 12, 0)
    with open_ops(settings) as store:
        book = DemandBook(store, catalog)
        spec = DemandSpec(
            scenario=SCENARIO,
            resource="persons",
            fields=GRANTED,
            purpose="批量核验身份",
            legal_basis="《住房公积金管理条例》",
            rows=RowScope.all,
        )
        demand, _ = book.submit(APP, spec, by="dev")
        made = book.approve(demand.demand_id, department="registry", by="o", expires_at=expires)
    monkeypatch.setenv("HUB_PUBLIC_URL", "https://hub.example.gov.cn/")
    reset_settings()
    done = runner.invoke(app, ["share", "profile", APP, "--out", str(tmp_path / "b.share")])
    assert done.exit_code == 0, done.output
    profile = tmp_path / "b.share"
    document = json.loads(profile.read_text())
    assert document["endpoint"] == "https://hub.example.gov.cn/delta-sharing"
    assert document["expirationTime"] == "2027-06-30T12:00:00Z"
    assert oct(profile.stat().st_mode & 0o777) == "0o600"
    assert f"{APP}.persons.{made.grant_id.lower().replace('-', '_')}" in done.output
    # the token is a new key of the application's, stored hashed only
    with open_ops(settings) as store:
        principal = authenticate(store, document["bearerToken"])
        assert (principal.code, principal.kind.value) == (APP, "application")
        stored = store.query("SELECT secret_sha256 FROM ops.api_keys WHERE key_id = ?",
                             (principal.key_id,))  # fmt: skip
    assert document["bearerToken"].split("_", 2)[2] not in str(stored)


def test_refresh_writes_what_is_missing_and_removes_what_ended(world: World) -> None:
    resource = world.catalog.resource("persons")
    shape = GrantShape.of(resource, GRANTED)
    folder = shape_dir(world.settings, "persons", 1, shape.shape_id)
    assert read_shape(world.settings, "persons", 1, shape.shape_id) is not None
    shutil.rmtree(folder)  # a step that failed to write it

    store, book = world.book()
    with store:  # the other application's grant ends: its shape is no one's now
        other = next(d for d in book.demands(application="talent_housing"))
        book.revoke(other.demand_id, by="department:registry/o", reason="ended")
    other_shape = GrantShape.of(world.catalog.resource("persons"),
                                ("citizen_id", "registration_status"))  # fmt: skip
    orphan = shape_dir(world.settings, "persons", 1, other_shape.shape_id)
    assert orphan.exists()
    old = time.time() - 7200  # older than the grace a concurrent approval gets
    os.utime(orphan, (old, old))

    result = CliRunner().invoke(app, ["share", "refresh", "persons"])
    assert result.exit_code == 0, result.output
    assert read_shape(world.settings, "persons", 1, shape.shape_id) is not None
    assert not orphan.exists()
    assert CliRunner().invoke(app, ["share", "refresh", "nothing"]).exit_code == 1
    again = CliRunner().invoke(app, ["share", "refresh"])  # every resource, nothing to do
    assert again.exit_code == 0, again.output
