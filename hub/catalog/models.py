"""Pydantic models of the resource catalog (``catalogs/``).

One YAML file per department and per shared resource. Field names follow the
government resource-catalog practice (政务数据资源目录): code, names, provider,
sharing type, update cycle, primary key, fields with sensitivity, source, legal basis.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CODE_PATTERN = r"^[a-z][a-z0-9_]*$"
MAX_DEMAND_FIELDS = 200  # no resource has more; a longer list is refused before any work
_DECIMAL = re.compile(r"^decimal\((\d{1,2}),(\d{1,2})\)$")
_AUTHORITY = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
ID_BIRTH_DATE = "id_birth_date"  # agrees_with: the birth date a citizen ID encodes


def printable_text(value: str) -> str:
    """Text a person wrote: control characters (a NUL that PostgreSQL refuses, escape
    sequences for a terminal) are refused; line breaks and tabs are kept."""
    bad = next((c for c in value if (ord(c) < 32 and c not in "\n\t") or c == "\x7f"), None)
    if bad is not None:
        raise ValueError(f"control character U+{ord(bad):04X} is not allowed in text")
    return value


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a YAML key must not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SharingType(StrEnum):
    unconditional = "unconditional"  # 无条件共享
    conditional = "conditional"  # 有条件共享
    none = "none"  # 不予共享


class Sensitivity(StrEnum):
    public = "public"
    internal = "internal"
    personal = "personal"
    sensitive = "sensitive"


class Masking(StrEnum):
    """How a personal field outside a grant is shown (hub.serve.masking)."""

    redact = "redact"  # nothing of the value shows
    partial = "partial"  # long identifiers and addresses: the two ends of 15+ characters


class Identifier(StrEnum):
    """What kind of identifier a field holds: its canonical form and check (hub.identifiers)."""

    citizen_id = "citizen_id"
    credit_code = "credit_code"
    party_id = "party_id"  # a person's citizen ID or an enterprise's credit code
    code = "code"  # certificate, contract and unit numbers: canonical form only


class UpdateCycle(StrEnum):
    realtime = "realtime"
    hourly = "hourly"
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"
    quarterly = "quarterly"
    yearly = "yearly"

    @property
    def interval(self) -> timedelta:
        """How old the data may be before it counts as stale."""
        return {
            "realtime": timedelta(minutes=15),
            "hourly": timedelta(hours=1),
            "daily": timedelta(days=1),
            "weekly": timedelta(weeks=1),
            "monthly": timedelta(days=31),
            "quarterly": timedelta(days=92),
            "yearly": timedelta(days=366),
        }[self.value]


class ConnectorKind(StrEnum):
    sql = "sql"
    sftp = "sftp"
    http = "http"


FieldType = str  # string | integer | boolean | date | timestamp | decimal(p,s)


class ResourceField(Strict):
    name: str = Field(pattern=CODE_PATTERN)
    name_zh: str
    type: FieldType
    description: str = ""
    sensitivity: Sensitivity
    nullable: bool = True
    source_column: str | None = Field(
        default=None, description="Column name in the source when it differs from `name`."
    )
    aliases: tuple[str, ...] = Field(
        default=(), description="Other source column names seen for this field (schema drift)."
    )
    date_format: str | None = Field(
        default=None, description="strptime format for text sources, when not ISO 8601."
    )
    identifier: Identifier | None = Field(
        default=None,
        description="An identifier field: filters and claims on it are compared in canonical "
        "form (full-width, spaces, case) and checked for its kind.",
    )
    masking: Masking = Field(
        default=Masking.redact,
        description="How the value is shown to a reader whose grant does not include it "
        "(personal and sensitive fields only).",
    )
    agrees_with: tuple[str, ...] = Field(
        default=(),
        description="Cross-source agreement (一数一源): the authoritative `resource.field` "
        "(or `id_birth_date`, the birth date the citizen ID in `matched_by` encodes) this "
        "field must equal for the same identifier (hub.quality.agreement).",
    )
    matched_by: str | None = Field(
        default=None,
        description="With `agrees_with`: the field of this resource holding the identifier "
        "(citizen ID or credit code) that is the authoritative resource's key.",
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        value = value.replace(" ", "")
        if value in {"string", "integer", "boolean", "date", "timestamp"}:
            return value
        match = _DECIMAL.match(value)
        if match and 0 <= int(match[2]) <= int(match[1]) <= 38 and int(match[1]) > 0:
            return value
        raise ValueError(
            "expected one of string, integer, boolean, date, timestamp, decimal(p,s) "
            f"with 0 <= s <= p <= 38; got {value!r}"
        )

    @model_validator(mode="after")
    def _masking_of_personal_fields(self) -> ResourceField:
        if self.masking is Masking.partial and self.sensitivity not in {
            Sensitivity.personal,
            Sensitivity.sensitive,
        }:
            raise ValueError("masking: partial applies to personal and sensitive fields only")
        return self

    @model_validator(mode="after")
    def _agreement(self) -> ResourceField:
        for target in self.agrees_with:
            if target != ID_BIRTH_DATE and not _AUTHORITY.match(target):
                raise ValueError(
                    f"agrees_with entries are resource.field or {ID_BIRTH_DATE}, got {target!r}"
                )
        if bool(self.agrees_with) != (self.matched_by is not None):
            raise ValueError("`agrees_with` and `matched_by` go together")
        return self

    @property
    def is_personal(self) -> bool:
        return self.sensitivity in {Sensitivity.personal, Sensitivity.sensitive}

    @property
    def source_names(self) -> tuple[str, ...]:
        """Every column name this field may carry in the source, preferred first."""
        return (self.source_column or self.name, *self.aliases)

    @property
    def decimal_precision(self) -> tuple[int, int] | None:
        match = _DECIMAL.match(self.type)
        return (int(match[1]), int(match[2])) if match else None


class Source(Strict):
    connector: ConnectorKind
    table: str | None = Field(default=None, description="sql: table (or schema.table).")
    path: str | None = Field(default=None, description="http: endpoint path under the base URL.")
    file_pattern: str | None = Field(
        default=None, description="sftp: glob of the files of this resource inside a drop."
    )
    encoding: Literal["auto", "utf-8", "gbk"] = Field(
        default="auto", description="sftp: text encoding; auto tells UTF-8 from GBK per file."
    )
    cursor: str | None = Field(
        default=None, description="Incremental cursor column (a field of the resource)."
    )
    deletes: Literal["reconcile", "tombstone", "none"] = Field(
        default="none",
        description="reconcile: compare key sets; tombstone: the source marks deleted rows.",
    )
    tombstone_field: str | None = Field(
        default=None, description="tombstone: the source column that is true for deleted rows."
    )
    delete_log: str | None = Field(
        default=None,
        description="sql, deletes: reconcile: a table (or schema.table) of the source where "
        "each deletion is recorded with the key's columns and `delete_log_cursor`; a reconcile "
        "then reads only the keys logged since the last one instead of hashing every key.",
    )
    delete_log_cursor: str = Field(
        default="deleted_at", description="delete_log: its column holding when a key was deleted."
    )

    @model_validator(mode="after")
    def _where_to_read(self) -> Source:
        needed = {"sql": "table", "http": "path", "sftp": "file_pattern"}[self.connector.value]
        if getattr(self, needed) is None:
            raise ValueError(f"a {self.connector.value} source needs `{needed}`")
        if self.deletes == "tombstone" and self.tombstone_field is None:
            raise ValueError("deletes: tombstone needs `tombstone_field`")
        if self.delete_log is not None and (
            self.connector.value != "sql" or self.deletes != "reconcile"
        ):
            raise ValueError("`delete_log` is for a sql source with deletes: reconcile")
        return self


class Resource(Strict):
    """One shared resource: a row of the government data resource catalog."""

    code: str = Field(pattern=CODE_PATTERN)
    catalog_no: str = Field(description="Catalog number, e.g. 360200-HOUSING-0002.")
    name_zh: str
    name_en: str
    provider: str = Field(pattern=CODE_PATTERN, description="Department code.")
    description: str
    sharing_type: SharingType
    sharing_conditions: str | None = None
    legal_basis: str
    update_cycle: UpdateCycle
    primary_key: tuple[str, ...] = Field(min_length=1)
    fields: tuple[ResourceField, ...] = Field(min_length=1)
    source: Source
    quality_suite: str | None = None
    subject_fields: tuple[str, ...] = Field(
        default=(),
        description="Fields naming the person or enterprise a row is about: an applicant-only "
        "grant returns the rows where one of them equals the applicant's ID.",
    )
    decision_fields: tuple[str, ...] = Field(
        default=(),
        description="Fields consumers decide on (property status, tax-clearance result, "
        "contribution months): the gate holds a candidate that changes too many of them "
        "against the published version (hub.quality.impact) for the provider's confirmation.",
    )
    dispute_working_days: int | None = Field(
        default=None,
        ge=1,
        le=60,
        description="Working days the provider has to answer a dispute (疑义) on a record; "
        "default: the calendar's `dispute_working_days`.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Resource:
        names = [f.name for f in self.fields]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"field names repeat: {duplicates}")
        for key in self.primary_key:
            if key not in names:
                raise ValueError(f"primary_key names {key!r}, which is not a field")
        if self.source.cursor is not None and self.source.cursor not in names:
            raise ValueError(f"source.cursor names {self.source.cursor!r}, which is not a field")
        if self.sharing_type is SharingType.conditional and not self.sharing_conditions:
            raise ValueError("a conditional resource needs `sharing_conditions`")
        if self.sharing_type is SharingType.none and not self.sharing_conditions:
            raise ValueError("a resource not shared needs `sharing_conditions` saying why")
        for name in self.subject_fields:
            if name not in names:
                raise ValueError(f"subject_fields names {name!r}, which is not a field")
        for name in self.decision_fields:
            if name not in names:
                raise ValueError(f"decision_fields names {name!r}, which is not a field")
        for spec in self.fields:
            if spec.matched_by is not None and spec.matched_by not in names:
                raise ValueError(f"{spec.name}.matched_by names {spec.matched_by!r}, not a field")
        return self

    @property
    def raw_table(self) -> str:
        """The warehouse table the load step appends to (without the ``raw.`` schema)."""
        return f"{self.provider}__{self.code}"

    def field(self, name: str) -> ResourceField:
        for item in self.fields:
            if item.name == name:
                return item
        raise KeyError(f"{self.code} has no field {name!r}")


class SystemRef(Strict):
    kind: ConnectorKind
    connection: str = Field(
        pattern=CODE_PATTERN, description="Resolved from HUB_CONN_<NAME> (see hub.settings)."
    )
    description: str = ""


class Department(Strict):
    code: str = Field(pattern=CODE_PATTERN)
    name_zh: str
    name_en: str
    system: SystemRef
    data_officer: str = Field(description="The department's data officer (数据专员), a role.")


class RowScope(StrEnum):
    all = "all"  # every row of the resource
    applicant = "applicant"  # only rows whose subject field is the applicant's ID


class DemandSpec(Strict):
    """A demand as an application registers it: which fields of which resource, for which
    one-stop scenario, why, and on what legal basis."""

    scenario: str = Field(pattern=CODE_PATTERN)
    resource: str = Field(
        pattern=CODE_PATTERN,
        description="A resource code. One the catalog lacks, or a field it does not offer, "
        "makes the demand `unmatched`: a gap the data bureau chases with the department.",
    )
    fields: tuple[str, ...] = Field(min_length=1, max_length=MAX_DEMAND_FIELDS)
    purpose: str = Field(min_length=4, max_length=2_000)
    legal_basis: str = Field(min_length=4, max_length=2_000)
    rows: RowScope = RowScope.all

    @field_validator("purpose", "legal_basis")
    @classmethod
    def _text(cls, value: str) -> str:
        return printable_text(value)

    @field_validator("fields")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        repeated: set[str] = set()
        for name in value:  # one pass: a long list costs what it is long
            if len(name) > 64:
                raise ValueError(f"field name {name[:64]!r}... is longer than 64 characters")
            (repeated if name in seen else seen).add(name)
        if repeated:
            raise ValueError(f"fields repeat: {sorted(repeated)}")
        return value


class Application(Strict):
    """An application (e.g. a one-stop service system) that reads shared records."""

    code: str = Field(pattern=CODE_PATTERN)
    name_zh: str
    name_en: str
    owner: str = Field(description="The organisation that runs the application.")
    owner_department: str | None = Field(
        default=None, pattern=CODE_PATTERN, description="Its department code, if in departments/."
    )
    contact: str = Field(description="A role and office line, not a person's private data.")
    purpose: str
    scenarios: tuple[str, ...] = Field(min_length=1)
    demands: tuple[DemandSpec, ...] = ()


class Replacement(Strict):
    """Fields of one shared resource that stand in for (part of) a paper material."""

    resource: str = Field(pattern=CODE_PATTERN)
    fields: tuple[str, ...] = Field(min_length=1)


class Material(Strict):
    """A paper material citizens bring today. It can be waived when every replacement
    in ``replaced_by`` is granted, published, fresh and passed its last gate."""

    code: str = Field(pattern=CODE_PATTERN)
    name_zh: str
    name_en: str
    issued_by: str
    replaced_by: tuple[Replacement, ...] = Field(
        default=(), description="Empty: no shared data replaces it yet."
    )
    note: str = ""


class Scenario(Strict):
    """A one-stop service (一件事一次办) and the paper materials it asks for today."""

    code: str = Field(pattern=CODE_PATTERN)
    name_zh: str
    name_en: str
    lead: str = Field(description="The organisation that runs the one-stop service.")
    description: str
    materials: tuple[Material, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct_materials(self) -> Scenario:
        codes = [m.code for m in self.materials]
        repeated = sorted({c for c in codes if codes.count(c) > 1})
        if repeated:
            raise ValueError(f"material codes repeat: {repeated}")
        return self


class WorkingCalendar(Strict):
    """Local overrides of the national working-day calendar (``catalogs/calendar.yml``):
    extra days off and extra working days, and the default approval deadline."""

    approval_working_days: int = Field(default=10, ge=1, le=60)
    dispute_working_days: int = Field(
        default=5, ge=1, le=60, description="Working days a provider has to answer a dispute."
    )
    holidays: tuple[date, ...] = ()
    workdays: tuple[date, ...] = ()
    note: str = ""

    @model_validator(mode="after")
    def _disjoint(self) -> WorkingCalendar:
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            raise ValueError(f"dates both holidays and workdays: {[str(d) for d in both]}")
        return self


class Catalog(Strict):
    departments: tuple[Department, ...]
    resources: tuple[Resource, ...]
    applications: tuple[Application, ...] = ()
    scenarios: tuple[Scenario, ...] = ()
    calendar: WorkingCalendar = WorkingCalendar()

    def application(self, code: str) -> Application:
        for item in self.applications:
            if item.code == code:
                return item
        raise KeyError(f"no application {code!r} in the catalog")

    def scenario(self, code: str) -> Scenario:
        for item in self.scenarios:
            if item.code == code:
                return item
        raise KeyError(f"no scenario {code!r} in the catalog")

    def has_resource(self, code: str) -> bool:
        return any(r.code == code for r in self.resources)

    def resource(self, code: str) -> Resource:
        for item in self.resources:
            if item.code == code:
                return item
        raise KeyError(f"no resource {code!r} in the catalog")

    def department(self, code: str) -> Department:
        for item in self.departments:
            if item.code == code:
                return item
        raise KeyError(f"no department {code!r} in the catalog")

    def resources_of(self, department: str) -> tuple[Resource, ...]:
        return tuple(r for r in self.resources if r.provider == department)
