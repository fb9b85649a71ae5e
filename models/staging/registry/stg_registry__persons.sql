with

source as (

    select * from {{ source('registry', 'persons') }}

),

renamed as (

    select
        {{ clean_identifier('citizen_id') }} as citizen_id,
        {{ clean_text('name') }} as name,
        {{ standard_sex('sex') }} as sex,
        cast(birth_date as {{ catalog_type('date') }}) as birth_date,
        {{ clean_text('ethnicity') }} as ethnicity,
        {{ clean_text('district_code') }} as district_code,
        {{ clean_text('household_address') }} as household_address,
        {{ clean_text('registration_status') }} as registration_status,
        cast(updated_at as {{ catalog_type('timestamp') }}) as updated_at,
        lower(trim(_op)) as _op,
        _batch_id,
        _extracted_at

    from source

)

select * from renamed
