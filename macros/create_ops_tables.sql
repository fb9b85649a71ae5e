{#
    ops.gate_runs and ops.publish_log as hub/warehouse.py defines them (GATE_RUNS_DDL,
    PUBLISH_LOG_DDL; tests/build/test_ops_tables.py checks that both agree). The catalog
    reads both; on a fresh warehouse dbt may run before the gate or publish, so create
    them empty here. Runs as on-run-start.
#}
{% macro create_ops_tables() %}
    create schema if not exists ops;
    create table if not exists ops.gate_runs (
        gate_run_id varchar primary key,
        resource varchar not null,
        candidate_rows bigint not null,
        candidate_max_batch varchar,
        passed boolean not null,
        started_at timestamp not null,
        finished_at timestamp not null,
        docs_path varchar
    );
    create table if not exists ops.publish_log (
        resource varchar not null,
        version integer not null,
        gate_run_id varchar not null,
        "rows" bigint not null,
        data_as_of timestamp,
        published_at timestamp not null,
        is_current boolean not null,
        status varchar not null,
        primary key (resource, version)
    );
{% endmacro %}
