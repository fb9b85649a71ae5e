with

source as (

    select * from {{ source('tax', 'tax_clearances') }}

),

renamed as (

    select
        {{ clean_identifier('clearance_no') }} as clearance_no,
        {{ clean_identifier('taxpayer_id') }} as taxpayer_id,
        cast(issued_date as {{ catalog_type('date') }}) as issued_date,
        cast(valid_until as {{ catalog_type('date') }}) as valid_until,
        {{ clean_text('result') }} as result,
        cast(updated_at as {{ catalog_type('timestamp') }}) as updated_at,
        lower(trim(_op)) as _op,
        _batch_id,
        _extracted_at

    from source

)

select * from renamed
