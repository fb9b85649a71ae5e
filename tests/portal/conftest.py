"""The portal over a published warehouse (tests/serve/conftest.py's ``published``): one
user per role, pending demands for two departments, and helpers to sign in."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from hub.catalog.models import DemandSpec, RowScope
from hub.demand import DemandBook
from hub.portal.users import Role, add_user
from hub.storage.interface import open_ops
from tests.serve.conftest import Published
from tests.serve.conftest import published as published  # the fixture, re-exported

PASSWORD = "correct-horse-battery-staple"
USERS = {
    "bureau": (Role.data_bureau, None, None),
    "housing.officer": (Role.department, "housing", None),
    "tax.officer": (Role.department, "tax", None),
    "window.owner": (Role.application_owner, None, "housing_transfer_window"),
    "talent.owner": (Role.application_owner, None, "talent_housing"),
    "auditor": (Role.auditor, None, None),
}


@dataclass
class Portal:
    published: Published
    pending: dict[str, str]  # housing / tax -> a pending demand id

    @property
    def client(self) -> TestClient:
        return self.published.client


@pytest.fixture
def portal(published: Published) -> Portal:
    with open_ops(published.settings) as store:
        for name, (role, department, application) in USERS.items():
            add_user(
                store,
                name,
                PASSWORD,
                role,
                department=department,
                application=application,
                by="test",
            )
        from hub.catalog import load_catalog

        book = DemandBook(store, load_catalog(published.settings.catalog_dir))
        pending = {}
        for key, resource, fields in (
            ("housing", "property_rights", ("certificate_no", "owner_id", "owner_name", "status")),
            ("tax", "taxpayers", ("taxpayer_id", "name", "status")),
        ):
            spec = DemandSpec(
                scenario="second_hand_housing_transfer",
                resource=resource,
                fields=fields,
                purpose="核验买卖双方信息",
                legal_basis="《政务信息资源共享管理暂行办法》",
                rows=RowScope.applicant,
            )
            demand, _ = book.submit("housing_transfer_window", spec, by="test")
            pending[key] = demand.demand_id
    return Portal(published, pending)


def login_token(client: TestClient) -> str:
    page = client.get("/portal/login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign ``client`` in; returns the session's CSRF token (from the page it lands on)."""
    client.cookies.clear()
    answer = client.post(
        "/portal/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": login_token(client),
            "next": "/portal/",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    page = client.get(answer.headers["location"])
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)
