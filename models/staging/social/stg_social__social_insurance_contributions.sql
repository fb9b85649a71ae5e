with

source as (

    select * from {{ source('social', 'social_insurance_contributions') }}

),

renamed as (

    select
        {{ clean_identifier('citizen_id') }} as citizen_id,
        {{ clean_text('insurance_type') }} as insurance_type,
        {{ month_yyyymm('period') }} as period,
        cast(contribution_base as {{ catalog_type('decimal(12,2)') }}) as contribution_base,
        cast(personal_amount as {{ catalog_type('decimal(12,2)') }}) as personal_amount,
        cast(employer_amount as {{ catalog_type('decimal(12,2)') }}) as employer_amount,
        cast(paid_date as {{ catalog_type('date') }}) as paid_date,
        cast(updated_at as {{ catalog_type('timestamp') }}) as updated_at,
        lower(trim(_op)) as _op,
        _batch_id,
        _extracted_at

    from source

)

select * from renamed
