"""The demo's portal: one user per role with a generated password, and a few demands
left pending so that a department has something to answer in the browser.

The passwords are written to ``HUB_HOME/portal-users.txt`` (mode 0600) and printed: a
demo convenience; real users are made with ``hub user add``, which never shows one.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from hub.catalog import Catalog
from hub.catalog.models import DemandSpec, RowScope
from hub.demand import DemandBook
from hub.portal.users import Role, UserError, add_user, set_password
from hub.settings import Settings
from hub.storage.interface import open_ops


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: Role
    department: str | None = None
    application: str | None = None
    display_name: str = ""


DEMO_USERS = (
    DemoUser("bureau", Role.data_bureau, display_name="市数据局 督办员"),
    DemoUser(
        "housing.officer",
        Role.department,
        department="housing",
        display_name="不动产登记中心 数据专员",
    ),
    DemoUser("tax.officer", Role.department, department="tax", display_name="税务局 数据专员"),
    DemoUser(
        "window.owner",
        Role.application_owner,
        application="housing_transfer_window",
        display_name="一窗受理系统 负责人",
    ),
    DemoUser("auditor", Role.auditor, display_name="审计员"),
)

# asked after the scripted answers, so they stay pending for the portal
PENDING_DEMANDS = (
    (
        "housing_transfer_window",
        DemandSpec(
            scenario="second_hand_housing_transfer",
            resource="property_rights",
            fields=("certificate_no", "owner_id", "owner_name", "registered_date", "status"),
            purpose="核验共有人登簿日期及权属状态",
            legal_basis="《不动产登记暂行条例》第二十七条",
            rows=RowScope.applicant,
        ),
    ),
    (
        "housing_transfer_window",
        DemandSpec(
            scenario="second_hand_housing_transfer",
            resource="taxpayers",
            fields=("taxpayer_id", "name", "status"),
            purpose="核验买卖双方纳税人登记状态",
            legal_basis="《税收征收管理法》第十五条",
            rows=RowScope.applicant,
        ),
    ),
)


def demo_portal(settings: Settings, catalog: Catalog) -> tuple[Path, list[tuple[DemoUser, str]]]:
    """Create (or reset the passwords of) the demo users and leave the pending demands;
    returns the password file and the users with their passwords."""
    made = []
    with open_ops(settings) as store:
        for user in DEMO_USERS:
            password = secrets.token_urlsafe(12)
            try:
                add_user(
                    store,
                    user.username,
                    password,
                    user.role,
                    department=user.department,
                    application=user.application,
                    display_name=user.display_name,
                    by="demo",
                )
            except UserError:  # made by an earlier demo: a new password
                set_password(store, user.username, password)
            made.append((user, password))
        book = DemandBook.for_settings(store, catalog, settings)
        for application, spec in PENDING_DEMANDS:
            if catalog.has_resource(spec.resource):
                offered = {f.name for f in catalog.resource(spec.resource).fields}
                if set(spec.fields) <= offered:
                    book.submit(application, spec, by="demo:window.owner")
    path = settings.home / "portal-users.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write("# exchange-hub demo portal users (generated; do not reuse)\n")
        for user, password in made:
            scope = user.department or user.application or ""
            out.write(f"{user.username}\t{password}\t{user.role}\t{scope}\n")
    path.chmod(0o600)  # an existing file keeps its mode on open: make sure
    return path, made
