with

source as (

    select * from {{ source('tax', 'taxpayers') }}

),

renamed as (

    select
        {{ clean_identifier('taxpayer_id') }} as taxpayer_id,
        {{ clean_text('taxpayer_type') }} as taxpayer_type,
        {{ clean_text('name') }} as name,
        cast(registered_date as {{ catalog_type('date') }}) as registered_date,
        {{ clean_text('status') }} as status,
        cast(updated_at as {{ catalog_type('timestamp') }}) as updated_at,
        lower(trim(_op)) as _op,
        _batch_id,
        _extracted_at

    from source

)

select * from renamed
