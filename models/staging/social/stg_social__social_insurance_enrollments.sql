with

source as (

    select * from {{ source('social', 'social_insurance_enrollments') }}

),

renamed as (

    select
        {{ clean_identifier('citizen_id') }} as citizen_id,
        {{ clean_text('name') }} as name,
        {{ clean_text('insurance_type') }} as insurance_type,
        {{ clean_identifier('employer_credit_code') }} as employer_credit_code,
        cast(start_date as {{ catalog_type('date') }}) as start_date,
        {{ clean_text('status') }} as status,
        cast(updated_at as {{ catalog_type('timestamp') }}) as updated_at,
        lower(trim(_op)) as _op,
        _batch_id,
        _extracted_at

    from source

)

select * from renamed
