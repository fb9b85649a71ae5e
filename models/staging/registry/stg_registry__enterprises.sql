with

source as (

    select * from {{ source('registry', 'enterprises') }}

),

renamed as (

    select
        {{ clean_identifier('credit_code') }} as credit_code,
        {{ clean_text('name') }} as name,
        {{ clean_identifier('legal_representative_id') }} as legal_representative_id,
        {{ clean_text('legal_representative_name') }} as legal_representative_name,
        {{ clean_text('enterprise_type') }} as enterprise_type,
        cast(registered_capital as {{ catalog_type('decimal(18,2)') }}) as registered_capital,
        cast(established_date as {{ catalog_type('date') }}) as established_date,
        {{ clean_text('address') }} as address,
        {{ clean_text('status') }} as status,
        cast(updated_at as {{ catalog_type('timestamp') }}) as updated_at,
        lower(trim(_op)) as _op,
        _batch_id,
        _extracted_at

    from source

)

select * from renamed
