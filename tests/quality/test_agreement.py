"""Cross-source agreement on both warehouses, with known disagreements injected:

- persons: 10 people, person 3 declares a birth date its ID does not encode (1);
- enterprises: 2, the second names its legal representative 王五, not 李二 (1);
- property_rights: 4 owned by persons (person 2's name misspelt: 1), 1 by enterprise 1,
  its name with a trailing space (trimmed: agrees);
- taxpayers: persons 1-5 (person 5 misspelt: 1), enterprise 2 under another name (1);
- social_insurance_enrollments: persons 1-6, person 1 twice (two insurance types), person 6
  without a name (not compared), person 4 misspelt (1).
"""

from __future__ import annotations

from datetime import date, datetime

from quality_data import make_table

from hub.catalog import Catalog
from hub.quality.agreement import by_department_pair, check_agreement, latest_results
from hub.settings import Settings
from hub.storage.interface import open_warehouse

NAMES = ["张一", "李二", "王三", "赵四", "钱五", "孙六", "周七", "吴八", "郑九", "冯十"]


def person_id(i: int) -> str:
    return f"36020219900101{i:03d}X"


ENTERPRISES = [
    ("91360200MA00000011", "景德镇瓷业有限公司"),
    ("91360200MA00000022", "景德镇陶瓷有限公司"),
]


def test_disagreements_are_counted_per_attribute_and_department_pair(
    quality_settings: Settings, catalog: Catalog
) -> None:
    persons = [
        {"citizen_id": person_id(i), "name": NAMES[i - 1],
         "birth_date": date(1990, 2, 1) if i == 3 else date(1990, 1, 1)}
        for i in range(1, 11)
    ]  # fmt: skip
    enterprises = [
        {"credit_code": ENTERPRISES[0][0], "name": ENTERPRISES[0][1],
         "legal_representative_id": person_id(1), "legal_representative_name": NAMES[0]},
        {"credit_code": ENTERPRISES[1][0], "name": ENTERPRISES[1][1],
         "legal_representative_id": person_id(2), "legal_representative_name": "王五"},
    ]  # fmt: skip
    rights = [
        {"certificate_no": f"C{i}", "owner_id": person_id(i),
         "owner_name": "李贰" if i == 2 else NAMES[i - 1]}
        for i in range(1, 5)
    ] + [{"certificate_no": "C9", "owner_id": ENTERPRISES[0][0],
          "owner_name": ENTERPRISES[0][1] + " "}]  # fmt: skip
    taxpayers = [
        {"taxpayer_id": person_id(i), "name": "钱伍" if i == 5 else NAMES[i - 1]}
        for i in range(1, 6)
    ] + [{"taxpayer_id": ENTERPRISES[1][0], "name": "景德镇陶瓷公司"}]  # fmt: skip
    enrollments = [
        {"citizen_id": person_id(i), "insurance_type": "养老",
         "name": None if i == 6 else ("赵肆" if i == 4 else NAMES[i - 1])}
        for i in range(1, 7)
    ] + [{"citizen_id": person_id(1), "insurance_type": "医疗", "name": NAMES[0]}]  # fmt: skip
    tables = {
        "persons": persons,
        "enterprises": enterprises,
        "property_rights": rights,
        "taxpayers": taxpayers,
        "social_insurance_enrollments": enrollments,
    }
    with open_warehouse(quality_settings.warehouse_url) as warehouse:
        for code, rows in tables.items():
            make_table(warehouse, f'shared."{code}"', catalog.resource(code), rows)
        results = check_agreement(warehouse, catalog, datetime(2026, 12, 2, 3, 0))
        found = {(r.resource, r.field, r.authority): (r.compared, r.disagreeing) for r in results}
        assert found == {
            ("enterprises", "legal_representative_name", "persons.name"): (2, 1),
            ("persons", "birth_date", "id_birth_date"): (10, 1),
            ("property_rights", "owner_name", "enterprises.name"): (1, 0),
            ("property_rights", "owner_name", "persons.name"): (4, 1),
            ("social_insurance_enrollments", "name", "persons.name"): (6, 1),
            ("taxpayers", "name", "enterprises.name"): (1, 1),
            ("taxpayers", "name", "persons.name"): (5, 1),
        }
        pairs = {
            (p["department"], p["authoritative_department"]): (p["compared"], p["disagreeing"])
            for p in by_department_pair(results)
        }
        assert pairs == {
            ("housing", "registry"): (5, 1),
            ("registry", "registry"): (12, 2),
            ("social", "registry"): (6, 1),
            ("tax", "registry"): (6, 2),
        }
        rejects = {
            code: warehouse.query(f'SELECT count(*) FROM rejects."{code}__agreement"')[0][0]
            for code in tables
        }
        assert rejects == {
            "persons": 1,
            "enterprises": 1,
            "property_rights": 1,
            "taxpayers": 2,
            "social_insurance_enrollments": 1,
        }
        (row,) = warehouse.query(
            "SELECT certificate_no, value, authoritative_value, department, "
            'authoritative_department FROM rejects."property_rights__agreement"'
        )
        assert row == ("C2", "李贰", "李二", "housing", "registry")
        (birth,) = warehouse.query(
            'SELECT value, authoritative_value FROM rejects."persons__agreement"'
        )
        assert birth == ("1990-02-01", "19900101")
        assert len(latest_results(warehouse)) == 7
        # the authoritative side is never rejected: nothing in the gate's tables changed
        assert not warehouse.table_columns("rejects", "persons")
