with

source as (

    select * from {{ source('ops', 'gate_runs') }}

),

renamed as (

    select
        gate_run_id,
        resource,
        candidate_rows,
        candidate_max_batch,
        passed,
        started_at,
        finished_at,
        docs_path

    from source

)

select * from renamed
