"""The catalog published in the national resource-catalog layout and as DCAT-AP.

**National layout.** One row per resource with the core metadata items of the
《政务信息资源目录编制指南（试行）》 (发改高技〔2017〕1272号), named as the guide names them:
信息资源分类, 信息资源名称, 信息资源代码, 信息资源提供方, 信息资源提供方代码,
信息资源摘要, 信息资源格式, 信息项信息, 共享类型, 共享条件, 共享方式, 是否向社会开放,
开放条件, 更新周期, 发布日期, 关联资源代码; and a second table (sheet) of 信息项 (one row
per field, with its type and sensitivity). CSV (UTF-8 with BOM) or XLSX.

**DCAT-AP.** A ``dcat:Catalog`` in JSON-LD with one ``dcat:Dataset`` per resource:
identifier, titles in Chinese and English, description, publisher, access rights and
frequency from the EU authority tables, the distribution (the hub's API), the related
resources and the current version's date when a status is given.

The related resources are the ones a resource's quality suite checks references against
(``exists_in`` in ``expectations/``): the catalog's own lineage between resources.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from hub.catalog.models import Catalog, Resource, SharingType

CATEGORY = "部门信息资源"  # 资源属性分类 of the guide: every resource here is a department's
RESOURCE_FORMAT = "数据库/结构化数据（接口、批量导出 Parquet）"
SHARING_MODE = "共享平台接口（HTTP API）、批量导出"
SHARING_ZH = {
    SharingType.unconditional: "无条件共享",
    SharingType.conditional: "有条件共享",
    SharingType.none: "不予共享",
}
CYCLE_ZH = {
    "realtime": "实时",
    "hourly": "每小时",
    "daily": "每日",
    "weekly": "每周",
    "monthly": "每月",
    "quarterly": "每季度",
    "yearly": "每年",
}
TYPE_ZH = {
    "string": "字符型",
    "integer": "数值型（整数）",
    "boolean": "布尔型",
    "date": "日期型",
    "timestamp": "日期时间型",
}
SENSITIVITY_ZH = {"public": "公开", "internal": "内部", "personal": "个人信息", "sensitive": "敏感"}
RESOURCE_COLUMNS = (
    "信息资源分类",
    "信息资源名称",
    "信息资源代码",
    "信息资源提供方",
    "信息资源提供方代码",
    "信息资源摘要",
    "信息资源格式",
    "信息项信息",
    "共享类型",
    "共享条件",
    "共享方式",
    "是否向社会开放",
    "开放条件",
    "更新周期",
    "发布日期",
    "关联资源代码",
)
FIELD_COLUMNS = ("信息资源代码", "信息项名称", "信息项标识", "数据类型", "敏感级别", "说明")
_EU = "http://publications.europa.eu/resource/authority"
FREQUENCY_EU = {
    "realtime": "CONT",
    "hourly": "HOURLY",
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "monthly": "MONTHLY",
    "quarterly": "QUARTERLY",
    "yearly": "ANNUAL",
}
ACCESS_EU = {
    SharingType.unconditional: "PUBLIC",
    SharingType.conditional: "RESTRICTED",
    SharingType.none: "NON_PUBLIC",
}


def type_zh(field_type: str) -> str:
    if field_type.startswith("decimal"):
        return f"数值型（{field_type}）"
    return TYPE_ZH.get(field_type, field_type)


def related_resources(catalog: Catalog, expectations_dir: Path) -> dict[str, list[str]]:
    """Per resource, the resources its suite checks references against (``exists_in``),
    and those that check against it, by code."""
    from hub.gate.suites import load_suites

    related: dict[str, set[str]] = {r.code: set() for r in catalog.resources}
    if not expectations_dir.exists():
        return {k: [] for k in related}
    for code, suite in load_suites(expectations_dir, catalog).items():
        for item in suite.expectations:
            for target, _key in getattr(item, "references", ()):
                if target in related and target != code:
                    related.setdefault(code, set()).add(target)
                    related[target].add(code)
    return {k: sorted(v) for k, v in related.items()}


def _published(statuses: dict[str, Any] | None, code: str) -> str:
    status = (statuses or {}).get(code)
    moment = getattr(status, "data_as_of", None)
    return moment.strftime("%Y-%m-%d") if isinstance(moment, datetime) else ""


def national_rows(
    catalog: Catalog,
    related: dict[str, list[str]],
    statuses: dict[str, Any] | None = None,
) -> list[dict[str, str]]:
    """One row per resource, keyed by the guide's item names (RESOURCE_COLUMNS)."""
    rows = []
    for resource in sorted(catalog.resources, key=lambda r: r.catalog_no):
        department = catalog.department(resource.provider)
        rows.append(
            {
                "信息资源分类": f"{CATEGORY}/{department.name_zh}",
                "信息资源名称": resource.name_zh,
                "信息资源代码": resource.catalog_no,
                "信息资源提供方": department.name_zh,
                "信息资源提供方代码": department.code,
                "信息资源摘要": " ".join(resource.description.split()),
                "信息资源格式": RESOURCE_FORMAT,
                "信息项信息": "；".join(
                    f"{f.name_zh}（{f.name}，{type_zh(f.type)}）" for f in resource.fields
                ),
                "共享类型": SHARING_ZH[resource.sharing_type],
                "共享条件": resource.sharing_conditions or "",
                "共享方式": "" if resource.sharing_type is SharingType.none else SHARING_MODE,
                "是否向社会开放": "否",
                "开放条件": "政务内部共享，不向社会开放",
                "更新周期": CYCLE_ZH[resource.update_cycle.value],
                "发布日期": _published(statuses, resource.code),
                "关联资源代码": "；".join(
                    catalog.resource(c).catalog_no for c in related.get(resource.code, [])
                ),
            }
        )
    return rows


def field_rows(catalog: Catalog) -> list[dict[str, str]]:
    return [
        {
            "信息资源代码": r.catalog_no,
            "信息项名称": f.name_zh,
            "信息项标识": f.name,
            "数据类型": type_zh(f.type),
            "敏感级别": SENSITIVITY_ZH[f.sensitivity.value],
            "说明": f.description,
        }
        for r in sorted(catalog.resources, key=lambda r: r.catalog_no)
        for f in r.fields
    ]


def to_csv(rows: Iterable[dict[str, str]], columns: tuple[str, ...]) -> bytes:
    """UTF-8 with a byte-order mark, which spreadsheet programs need for Chinese."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(resources: list[dict[str, str]], fields: list[dict[str, str]]) -> bytes:
    """Two sheets: 信息资源目录 and 信息项."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    for index, (title, columns, rows) in enumerate(
        (("信息资源目录", RESOURCE_COLUMNS, resources), ("信息项", FIELD_COLUMNS, fields))
    ):
        sheet = book.active if index == 0 else book.create_sheet()
        assert sheet is not None
        sheet.title = title
        sheet.append(list(columns))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append([row.get(c, "") for c in columns])
        for column in sheet.columns:
            letter = column[0].column_letter
            sheet.column_dimensions[letter].width = min(
                60, max(10, *(len(str(c.value or "")) * 1.6 for c in column[:50]))
            )
            for cell in column[1:]:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
        sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def dcat_catalog(
    catalog: Catalog,
    related: dict[str, list[str]],
    *,
    base_url: str = "",
    statuses: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The catalog as a DCAT-AP ``dcat:Catalog`` (JSON-LD)."""
    root = base_url.rstrip("/") or "urn:exchange-hub"

    def dataset_id(resource: Resource) -> str:
        return f"{root}/catalog/{resource.code}"

    datasets = []
    for resource in sorted(catalog.resources, key=lambda r: r.catalog_no):
        department = catalog.department(resource.provider)
        dataset: dict[str, Any] = {
            "@id": dataset_id(resource),
            "@type": "dcat:Dataset",
            "dct:identifier": resource.catalog_no,
            "dct:title": [
                {"@value": resource.name_zh, "@language": "zh"},
                {"@value": resource.name_en, "@language": "en"},
            ],
            "dct:description": {
                "@value": " ".join(resource.description.split()),
                "@language": "zh",
            },
            "dct:publisher": {
                "@type": "foaf:Agent",
                "foaf:name": [
                    {"@value": department.name_zh, "@language": "zh"},
                    {"@value": department.name_en, "@language": "en"},
                ],
                "dct:identifier": department.code,
            },
            "dct:accessRights": {"@id": f"{_EU}/access-right/{ACCESS_EU[resource.sharing_type]}"},
            "dct:accrualPeriodicity": {
                "@id": f"{_EU}/frequency/{FREQUENCY_EU[resource.update_cycle.value]}"
            },
            "dcat:keyword": [{"@value": f.name_zh, "@language": "zh"} for f in resource.fields],
            "dct:rights": {
                "@type": "dct:RightsStatement",
                "rdfs:label": {"@value": resource.legal_basis, "@language": "zh"},
            },
            "dct:relation": [
                {"@id": dataset_id(catalog.resource(c))} for c in related.get(resource.code, [])
            ],
        }
        if resource.sharing_conditions:
            dataset["adms:note"] = {"@value": resource.sharing_conditions, "@language": "zh"}
        published = _published(statuses, resource.code)
        if published:
            dataset["dct:modified"] = {"@value": published, "@type": "xsd:date"}
        if resource.sharing_type is not SharingType.none:
            dataset["dcat:distribution"] = [
                {
                    "@type": "dcat:Distribution",
                    "dcat:accessURL": {"@id": f"{root}/v1/resources/{resource.code}/records"},
                    "dct:format": {"@id": f"{_EU}/file-type/JSON"},
                    "dct:title": {"@value": "共享接口", "@language": "zh"},
                },
                {
                    "@type": "dcat:Distribution",
                    "dcat:accessURL": {"@id": f"{root}/v1/resources/{resource.code}/export"},
                    "dct:format": {"@id": f"{_EU}/file-type/PARQUET"},
                    "dct:title": {"@value": "批量导出", "@language": "zh"},
                },
            ]
        datasets.append(dataset)
    return {
        "@context": {
            "dcat": "http://www.w3.org/ns/dcat#",
            "dct": "http://purl.org/dc/terms/",
            "foaf": "http://xmlns.com/foaf/0.1/",
            "adms": "http://www.w3.org/ns/adms#",
            "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
        },
        "@id": f"{root}/catalog",
        "@type": "dcat:Catalog",
        "dct:title": [
            {"@value": "政务数据共享交换平台资源目录", "@language": "zh"},
            {"@value": "Government data exchange hub: resource catalog", "@language": "en"},
        ],
        "dct:description": {
            "@value": "各部门提供的共享信息资源（政务信息资源目录）",
            "@language": "zh",
        },
        "dcat:dataset": datasets,
    }


def export_catalog(
    catalog: Catalog,
    fmt: str,
    expectations_dir: Path,
    *,
    base_url: str = "",
    statuses: dict[str, Any] | None = None,
) -> tuple[bytes, str, str]:
    """``(body, media type, file name)`` for ``fmt`` csv, xlsx or dcat. Raises ValueError
    for another format."""
    related = related_resources(catalog, expectations_dir)
    if fmt == "csv":
        body = to_csv(national_rows(catalog, related, statuses), RESOURCE_COLUMNS)
        return body, "text/csv; charset=utf-8", "catalog.csv"
    if fmt == "xlsx":
        body = to_xlsx(national_rows(catalog, related, statuses), field_rows(catalog))
        return (
            body,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "catalog.xlsx",
        )
    if fmt == "dcat":
        document = dcat_catalog(catalog, related, base_url=base_url, statuses=statuses)
        body = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
        return body, "application/ld+json", "catalog.jsonld"
    raise ValueError(f"format {fmt!r}: expected csv, xlsx or dcat")
