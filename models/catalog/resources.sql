-- A view, not a table: the gate and publish steps run after dbt, and the catalog must
-- show their latest results (published version, row count, freshness) when it is read.
{{ config(materialized='view') }}

with

resources as (

    select * from {{ ref('catalog_resources') }}

),

providers as (

    select * from {{ ref('catalog_providers') }}

),

update_cycles as (

    select * from {{ ref('catalog_update_cycles') }}

),

gate_runs_by_recency as (

    select
        *,
        row_number() over (
            partition by resource
            order by coalesce(finished_at, started_at) desc nulls last, gate_run_id desc
        ) as recency
    from {{ ref('stg_ops__gate_runs') }}

),

last_gate_run as (

    select * from gate_runs_by_recency
    where recency = 1

),

current_versions_by_recency as (

    select
        *,
        row_number() over (partition by resource order by version desc) as recency
    from {{ ref('stg_ops__publish_log') }}
    where is_current

),

current_version as (

    select * from current_versions_by_recency
    where recency = 1

),

final as (

    select
        resources.code,
        resources.catalog_no,
        resources.name_zh,
        resources.name_en,
        resources.provider,
        providers.name_zh as provider_name_zh,
        providers.name_en as provider_name_en,
        resources.description,
        resources.sharing_type,
        resources.sharing_conditions,
        resources.legal_basis,
        resources.update_cycle,
        update_cycles.max_age_seconds,
        resources.primary_key,
        resources.field_count,
        resources.source_connector,
        resources.raw_table,
        resources.candidate_table,
        resources.shared_table,
        resources.quality_suite,
        current_version.version as published_version,
        current_version.published_rows as row_count,
        current_version.data_as_of,
        current_version.published_at,
        last_gate_run.gate_run_id as last_gate_run_id,
        case
            when last_gate_run.gate_run_id is null then 'not run'
            when last_gate_run.passed then 'passed'
            else 'failed'
        end as last_gate_result,
        last_gate_run.finished_at as last_gate_finished_at,
        last_gate_run.candidate_rows as last_gate_candidate_rows,
        -- the rule and labels of hub/freshness.py (macros/freshness.sql)
        {{ freshness_status(
            published='current_version.version is not null',
            data_as_of='current_version.data_as_of',
            max_age_seconds='update_cycles.max_age_seconds',
        ) }} as freshness_status

    from resources
    left join providers
        on resources.provider = providers.code
    left join update_cycles
        on resources.update_cycle = update_cycles.code
    left join last_gate_run
        on resources.code = last_gate_run.resource
    left join current_version
        on resources.code = current_version.resource

)

select * from final
