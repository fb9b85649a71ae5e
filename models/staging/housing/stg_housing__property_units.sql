with

source as (

    select * from {{ source('housing', 'property_units') }}

),

renamed as (

    select
        {{ clean_identifier('unit_id') }} as unit_id,
        {{ clean_text('district_code') }} as district_code,
        {{ clean_text('address') }} as address,
        cast(floor_area as {{ catalog_type('decimal(10,2)') }}) as floor_area,
        {{ clean_text('usage') }} as usage,
        cast(built_year as {{ catalog_type('integer') }}) as built_year,
        cast(updated_at as {{ catalog_type('timestamp') }}) as updated_at,
        lower(trim(_op)) as _op,
        _batch_id,
        _extracted_at

    from source

)

select * from renamed
