with

source as (

    select * from {{ source('ops', 'publish_log') }}

),

renamed as (

    select
        resource,
        version,
        gate_run_id,
        "rows" as published_rows,
        data_as_of,
        published_at,
        is_current,
        status

    from source

)

select * from renamed
