"""The hub's own tables, defined once (SQLAlchemy Core), grouped by the store that holds them.

Three stores, each with its own line of migrations (``hub/storage/migrations``, one Alembic
branch per store, the applied revisions kept in ``ops.hub_schema_version`` of each):

- ``warehouse``: the ``ops`` schema of the warehouse (DuckDB file or PostgreSQL): sync
  state and runs, loads, gate runs and results, the publish log, freshness, agreement results.
- ``access``: demands, grants, API keys, signing keys, the portal's users, sessions, actions
  and reminders, publish holds and disputes. In the PostgreSQL warehouse's ``ops`` schema, or
  beside an embedded DuckDB warehouse in ``HUB_HOME/ops/access.sqlite`` (attached as ``ops``).
- ``audit``: the hash-chained audit log and its anchors, append-only. In PostgreSQL
  (``HUB_AUDIT_URL``, else the warehouse) or ``HUB_HOME/ops/audit.sqlite``.

A column change is a new revision in ``hub/storage/migrations/versions`` and a change here;
tests/storage checks that both give the same tables on every engine. Columns are declared as
the first release's hand-written DDL did (a one-column key without NOT NULL: on SQLite it stays
nullable, elsewhere a key is never NULL), so that a store made by that release and a new one
are the same.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

OPS = "ops"
# the warehouse's schemas (DESIGN.md); the warehouse branch's baseline creates them
WAREHOUSE_SCHEMAS = ("raw", "staging", "audit", "rejects", "shared", "catalog", "ops")
VERSION_TABLE = "hub_schema_version"
STORES = ("warehouse", "access", "audit")
# each store's revisions, oldest first (tests/storage checks them against the scripts)
REVISIONS = {
    "warehouse": ("warehouse_0001", "warehouse_0002"),
    "access": ("access_0001", "access_0002", "access_0003", "access_0004"),
    "audit": ("audit_0001", "audit_0002"),
}
HEADS = {store: revisions[-1] for store, revisions in REVISIONS.items()}
# a table each branch's baseline made: found without a version table, the store predates it
BASELINE_MARKERS = {"warehouse": "gate_runs", "access": "demands", "audit": "audit_log"}

FORMAT_V1 = "exchange-hub/audit/v1"
ANCHOR_FORMAT_V1 = "exchange-hub/audit-anchor/v1"

Text = sa.String  # VARCHAR on every engine, as the hand-written DDL had it
Stamp = sa.TIMESTAMP  # "TIMESTAMP": the SQLite ops store converts that declared type
Double = sa.DOUBLE_PRECISION


def _key(name: str, type_: Any) -> sa.Column[Any]:
    """A one-column primary key as ``name TYPE PRIMARY KEY`` declared it."""
    return sa.Column(name, type_, primary_key=True, nullable=True, autoincrement=False)


def _req(name: str, type_: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=False)


def _opt(name: str, type_: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=True)


# ---------------------------------------------------------------- warehouse (ops schema)

WAREHOUSE = sa.MetaData(schema=OPS)

sync_state = sa.Table(
    "sync_state", WAREHOUSE,
    _key("resource", Text), _req("department", Text), _opt("watermark", Text),
    _req("state", Text), _req("updated_at", Stamp),
)  # fmt: skip
load_log = sa.Table(
    "load_log", WAREHOUSE,
    _key("batch_id", Text), _req("resource", Text), _req("kind", Text),
    _req("rows_loaded", sa.BigInteger), _req("rows_quarantined", sa.BigInteger),
    _req("loaded_at", Stamp),
)  # fmt: skip
sync_runs = sa.Table(
    "sync_runs", WAREHOUSE,
    _req("run_id", Text), _req("resource", Text), _req("department", Text),
    _req("started_at", Stamp), _opt("finished_at", Stamp), _req("status", Text),
    _opt("rows_read", sa.BigInteger), _opt("rows_landed", sa.BigInteger),
    _opt("rows_quarantined", sa.BigInteger), _opt("rows_deleted", sa.BigInteger),
    _opt("watermark", Text), _opt("error", Text),
    sa.PrimaryKeyConstraint("run_id", "resource"),
)  # fmt: skip
# written by the Airflow failure callback, read by `hub status`
task_failures = sa.Table(
    "task_failures", WAREHOUSE,
    _opt("task_failure_id", Text), _opt("dag_id", Text), _opt("task_id", Text),
    _opt("resource", Text), _opt("run_id", Text), _opt("map_index", sa.Integer),
    _opt("try_number", sa.Integer), _opt("failed_at", Stamp), _opt("error", Text),
)  # fmt: skip
# the gate (hub.gate): one row per run, one per expectation of a run
gate_runs = sa.Table(
    "gate_runs", WAREHOUSE,
    _key("gate_run_id", Text), _req("resource", Text), _req("candidate_rows", sa.BigInteger),
    _opt("candidate_max_batch", Text), _req("passed", sa.Boolean), _req("started_at", Stamp),
    _req("finished_at", Stamp), _opt("docs_path", Text),
)  # fmt: skip
gate_results = sa.Table(
    "gate_results", WAREHOUSE,
    _req("gate_run_id", Text), _req("resource", Text), _req("expectation", Text),
    _opt("column", Text), _req("severity", Text), _req("mostly", Double),
    _req("success", sa.Boolean), _opt("unexpected_count", sa.BigInteger),
    _opt("unexpected_percent", Double), _opt("sample_values", Text),
    _opt("observed_value", Text),
)  # fmt: skip
# publish (hub.publish): every version of every resource, the current one marked
publish_log = sa.Table(
    "publish_log", WAREHOUSE,
    _req("resource", Text), _req("version", sa.Integer), _req("gate_run_id", Text),
    sa.Column("rows", sa.BigInteger, nullable=False, quote=True), _opt("data_as_of", Stamp),
    _req("published_at", Stamp),
    _req("is_current", sa.Boolean), _req("status", Text),
    sa.PrimaryKeyConstraint("resource", "version"),
)  # fmt: skip
freshness = sa.Table(
    "freshness", WAREHOUSE,
    _opt("resource", Text), _opt("department", Text), _opt("update_cycle", Text),
    _opt("checked_for", Stamp), _opt("last_success", Stamp), _opt("age_hours", Double),
    _opt("stale", sa.Boolean),
)  # fmt: skip
# cross-source agreement (hub.quality.agreement): one row per pair and check
agreement_results = sa.Table(
    "agreement_results", WAREHOUSE,
    _req("check_id", Text), _req("checked_at", Stamp), _req("resource", Text),
    _req("field", Text), _req("department", Text), _req("authority", Text),
    _req("authoritative_department", Text), _req("compared", sa.BigInteger),
    _req("disagreeing", sa.BigInteger),
)  # fmt: skip

# ---------------------------------------------------------------- access (ops store)

ACCESS = sa.MetaData(schema=OPS)

# supply and demand (hub.demand): the current state of each demand and grant, and every
# change of state in demand_events (who, when, why)
demands = sa.Table(
    "demands", ACCESS,
    _key("demand_id", Text), _req("application", Text), _req("scenario", Text),
    _req("resource", Text), _opt("provider", Text), _req("fields", Text),
    _req("row_scope", Text), _req("purpose", Text), _req("legal_basis", Text),
    _req("status", Text), _opt("status_reason", Text), _req("submitted_by", Text),
    _req("submitted_at", Stamp), _opt("deadline", Stamp), _opt("answered_at", Stamp),
    _opt("answered_by", Text), _opt("grant_id", Text), _req("updated_at", Stamp),
)  # fmt: skip
demand_events = sa.Table(
    "demand_events", ACCESS,
    _key("event_id", Text), _req("demand_id", Text), _req("occurred_at", Stamp),
    _req("actor", Text), _req("action", Text), _opt("from_status", Text),
    _req("to_status", Text), _opt("reason", Text), _opt("details", Text),
)  # fmt: skip
grants = sa.Table(
    "grants", ACCESS,
    _key("grant_id", Text), _req("demand_id", Text), _req("application", Text),
    _req("resource", Text), _req("fields", Text), _req("row_scope", Text),
    _req("purpose", Text), _req("basis", Text), _req("granted_at", Stamp),
    _req("granted_by", Text), _opt("expires_at", Stamp), _req("status", Text),
    _opt("ended_at", Stamp), _opt("ended_by", Text), _opt("end_reason", Text),
)  # fmt: skip
# API keys of applications and departments: only a SHA-256 of the secret is kept
api_keys = sa.Table(
    "api_keys", ACCESS,
    _key("key_id", Text), _req("principal_kind", Text), _req("principal", Text),
    _req("secret_sha256", Text), _req("created_at", Stamp), _req("created_by", Text),
    _opt("revoked_at", Stamp),
)  # fmt: skip
# every public key the hub has signed evidence or anchors with (hub.keys_registry)
signing_keys = sa.Table(
    "signing_keys", ACCESS,
    _key("key_id", Text), _req("purpose", Text), _req("algorithm", Text),
    _req("public_jwk", Text), _req("first_used_at", Stamp),
)  # fmt: skip
# the portal (hub.portal): users with Argon2 password hashes, server-side sessions (only a
# SHA-256 of the cookie token), every action, and the reminders' outbox
portal_users = sa.Table(
    "portal_users", ACCESS,
    _key("username", Text), _req("password_hash", Text), _req("role", Text),
    _opt("department", Text), _opt("application", Text), _opt("email", Text),
    _opt("display_name", Text), _req("created_at", Stamp), _req("created_by", Text),
    _req("failed_logins", sa.Integer), _opt("locked_until", Stamp),
    _opt("last_login_at", Stamp), _opt("disabled_at", Stamp),
)  # fmt: skip
portal_sessions = sa.Table(
    "portal_sessions", ACCESS,
    _key("token_sha256", Text), _req("username", Text), _req("csrf_token", Text),
    _req("created_at", Stamp), _req("expires_at", Stamp), _req("last_seen_at", Stamp),
)  # fmt: skip
portal_actions = sa.Table(
    "portal_actions", ACCESS,
    _key("action_id", Text), _req("occurred_at", Stamp), _req("username", Text),
    _req("role", Text), _req("action", Text), _opt("target", Text), _opt("reason", Text),
    _req("outcome", Text), _opt("details", Text),
)  # fmt: skip
reminder_outbox = sa.Table(
    "reminder_outbox", ACCESS,
    _key("reminder_id", Text), _req("demand_id", Text), _req("threshold", Text),
    _req("channel", Text), _req("recipients", Text), _req("subject", Text),
    _req("body", Text), _req("created_at", Stamp), _opt("sent_at", Stamp),
    _req("attempts", sa.Integer), _opt("last_error", Text),
    sa.UniqueConstraint("demand_id", "threshold", "channel"),
)  # fmt: skip
# the quality loop with providers (hub.quality): publishes held by the consumer-impact check
# and the provider's decision; disputes (疑义) on records and every step of each
publish_holds = sa.Table(
    "publish_holds", ACCESS,
    _key("gate_run_id", Text), _req("resource", Text), _req("provider", Text),
    _req("status", Text), _req("threshold", Double), _req("worst_share", Double),
    _opt("compared_version", sa.Integer), _req("summary", Text), _req("held_at", Stamp),
    _opt("decided_at", Stamp), _opt("decided_by", Text), _opt("reason", Text),
)  # fmt: skip
disputes = sa.Table(
    "disputes", ACCESS,
    _key("dispute_id", Text), _req("resource", Text), _req("provider", Text),
    _req("record_key", Text), _opt("subject", Text), _req("field", Text),
    _opt("published_value", Text), _req("proposed_value", Text), _req("evidence", Text),
    _req("filed_by", Text), _opt("application", Text), _opt("grant_id", Text),
    _req("filed_at", Stamp), _opt("filed_version", sa.Integer), _req("status", Text),
    _req("deadline", Stamp), _opt("answered_at", Stamp), _opt("answered_by", Text),
    _opt("answer_reason", Text), _opt("escalated_at", Stamp),
    _opt("corrected_version", sa.Integer), _req("updated_at", Stamp),
)  # fmt: skip
# open disputes of a resource: read by record lookups (the flags) and by publish (settling)
sa.Index("disputes_resource_status", disputes.c.resource, disputes.c.status)
dispute_events = sa.Table(
    "dispute_events", ACCESS,
    _key("event_id", Text), _req("dispute_id", Text), _req("occurred_at", Stamp),
    _req("actor", Text), _req("action", Text), _opt("from_status", Text),
    _req("to_status", Text), _opt("reason", Text), _opt("details", Text),
)  # fmt: skip

# ---------------------------------------------------------------- audit (append-only)

AUDIT = sa.MetaData(schema=OPS)

# PostgreSQL types as the first release wrote them; SQLite keeps text and integers
AuditInt = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
AuditTime = sa.DateTime(timezone=True).with_variant(sa.TEXT(), "sqlite")
AuditText = sa.Text().with_variant(sa.TEXT(), "sqlite")
AuditList = postgresql.ARRAY(sa.Text()).with_variant(sa.TEXT(), "sqlite")

audit_log = sa.Table(
    "audit_log", AUDIT,
    _key("seq", AuditInt), _req("request_id", AuditText), _req("at", AuditTime),
    _opt("application", AuditText), _opt("end_user", AuditText), _opt("purpose", AuditText),
    _opt("scenario", AuditText), _opt("resource", AuditText), _opt("version", AuditInt),
    _opt("action", AuditText), _req("fields", AuditList), _req("row_count", AuditInt),
    _opt("result_sha256", AuditText), _req("status", sa.Integer),
    _req("prev_hash", AuditText), _req("entry_hash", AuditText),
    # added by audit_0002 (issue 10: who called, under which grant, the hash format)
    _opt("caller_kind", AuditText), _opt("grant_id", AuditText),
    sa.Column("format", AuditText, nullable=False, server_default=FORMAT_V1),
)  # fmt: skip
audit_anchor = sa.Table(
    "audit_anchor", AUDIT,
    _key("seq", AuditInt), _req("entry_hash", AuditText), _req("anchored_at", AuditTime),
    _req("key_id", AuditText), _req("signature", AuditText),
    # added by audit_0002: numbered, chained anchors, the reason and the signature's algorithm
    _opt("anchor_no", AuditInt), _opt("prev_anchor", AuditText), _opt("reason", AuditText),
    sa.Column("format", AuditText, nullable=False, server_default=ANCHOR_FORMAT_V1),
    sa.Column("algorithm", AuditText, nullable=False, server_default="EdDSA"),
)  # fmt: skip
sa.Index("audit_anchor_no", audit_anchor.c.anchor_no, unique=True)

# UPDATE, DELETE (and on PostgreSQL TRUNCATE) refused on both tables, whoever asks
AUDIT_APPEND_ONLY = {
    "postgresql": [
        """CREATE OR REPLACE FUNCTION ops.audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ops.% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$""",
        *(
            f"CREATE OR REPLACE TRIGGER {table}_{name} BEFORE {ops} ON ops.{table} "
            f"FOR EACH {each} EXECUTE FUNCTION ops.audit_append_only()"
            for table in ("audit_log", "audit_anchor")
            for name, ops, each in (
                ("append_only", "UPDATE OR DELETE", "ROW"),
                ("no_truncate", "TRUNCATE", "STATEMENT"),
            )
        ),
    ],
    "sqlite": [
        f"CREATE TRIGGER IF NOT EXISTS ops.{table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
        for table in ("audit_log", "audit_anchor")
        for op in ("UPDATE", "DELETE")
    ],
}

METADATA = {"warehouse": WAREHOUSE, "access": ACCESS, "audit": AUDIT}
EXTRA_DDL: dict[str, dict[str, list[str]]] = {"audit": AUDIT_APPEND_ONLY}


def dialect_of(engine: str) -> sa.engine.Dialect:
    """The SQLAlchemy dialect that writes an engine's DDL: DuckDB speaks PostgreSQL's."""
    from sqlalchemy.dialects import sqlite

    if engine == "sqlite":
        return sqlite.pysqlite.SQLiteDialect_pysqlite()
    return postgresql.psycopg.PGDialect_psycopg()  # type: ignore[no-untyped-call]


def create_statements(store: str, engine: str) -> list[str]:
    """The DDL that makes ``store``'s tables as they are today on ``engine`` (each
    ``IF NOT EXISTS``), with the indexes and triggers."""
    dialect = dialect_of(engine)
    statements: list[str] = []
    if store == "warehouse":
        statements += [f"CREATE SCHEMA IF NOT EXISTS {s}" for s in WAREHOUSE_SCHEMAS]
    elif engine != "sqlite":
        statements.append("CREATE SCHEMA IF NOT EXISTS ops")
    for table in METADATA[store].sorted_tables:
        statements.append(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)))
    statements += EXTRA_DDL.get(store, {}).get(dialect.name, [])
    return [s.strip() for s in statements]


def table_ddl(name: str, store: str = "warehouse", engine: str = "postgres") -> str:
    """``CREATE TABLE IF NOT EXISTS ops.<name>`` as ``store``'s MetaData defines it."""
    table = METADATA[store].tables[f"{OPS}.{name}"]
    return str(CreateTable(table, if_not_exists=True).compile(dialect=dialect_of(engine))).strip()


# the dbt on-run-start macro: the tables the catalog models read, which dbt may build
# before the gate or publish ever ran
DBT_TABLES = ("gate_runs", "publish_log")


def dbt_macro() -> str:
    """``macros/create_ops_tables.sql`` as generated from :data:`WAREHOUSE`
    (``hub db dbt-macro`` writes it; tests/storage checks the committed file)."""
    dialect = dialect_of("postgres")
    body = []
    for name in DBT_TABLES:
        ddl = str(
            CreateTable(WAREHOUSE.tables[f"{OPS}.{name}"], if_not_exists=True).compile(
                dialect=dialect
            )
        )
        lines = [line.rstrip().rstrip(",") for line in ddl.strip().splitlines()]
        head, columns, tail = lines[0], lines[1:-1], lines[-1]
        columns = [c.strip() for c in columns]
        text = "\n".join(
            [f"    {head.lower()}", *(f"        {c}," for c in columns[:-1]),
             f"        {columns[-1]}", f"    {tail};"]
        )  # fmt: skip
        body.append(text)
    return (
        "{#\n"
        "    Generated by `hub db dbt-macro` from hub/storage/schema.py (the warehouse store's\n"
        "    MetaData); tests/storage checks this file equals what it generates. The catalog\n"
        "    reads these tables; on a fresh warehouse dbt may run before the gate or publish,\n"
        "    so create them empty here. Runs as on-run-start.\n"
        "#}\n"
        "{% macro create_ops_tables() %}\n"
        "    create schema if not exists ops;\n" + "\n".join(body) + "\n{% endmacro %}\n"
    )
